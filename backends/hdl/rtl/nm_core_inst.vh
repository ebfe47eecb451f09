// The core's parameters, passed from the program's nm_params.vh (shared by nm_tb and nm_top).
    .NL(NL), .LW(LW), .NP(NP), .PW(PW), .NO(NO), .OW(OW), .IW(IW), .VALW(VALW), .GRADED(GRADED), .WW(WW),
    .EXPW(EXPW), .LENW(LENW), .DLW(DLW), .W_DEPTH(W_DEPTH), .WAW(WAW), .T_DEPTH(T_DEPTH),
    .TAW(TAW), .ROW_DEPTH(ROW_DEPTH), .ROWAW(ROWAW), .E_DEPTH(E_DEPTH), .EAW(EAW),
    .A_DEPTH(A_DEPTH), .AAW(AAW), .S_DEPTH(S_DEPTH), .SAW(SAW), .P_DEPTH(P_DEPTH), .PAW(PAW),
    .ACCW(ACCW), .AW(AW), .UW(UW), .HAS_TH(HAS_TH), .CNTW(CNTW), .CSW(CSW), .TW(TW),
    .LANES(LANES)
