// The mesh's parameters, passed from the program's nm_params.vh (nm_mesh_tb, nm_mesh_top).
`include "nm_core_inst.vh"
    , .R(R), .C(C), .XB(XB), .YB(YB), .WVW(WVW), .D_DEPTH(D_DEPTH), .DAW(DAW),
    .DR_DEPTH(DR_DEPTH), .DRAW(DRAW), .DLENW(DLENW), .CCW(CCW), .RCW(RCW)
