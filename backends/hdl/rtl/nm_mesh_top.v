// nm_mesh_top: the synthesis top of the mesh. nm_mesh with the program's sizes (nm_params.vh),
// without the simulation trace ports and with the testbench's stall knob tied to zero; the
// cores' memories load mem/cNN/*.hex, so run the synthesiser in the project folder.
`default_nettype none
module nm_mesh_top
`include "nm_params.vh"
(
    input  wire                     clk,
    input  wire                     rst,
    input  wire                     start,
    input  wire                     first,
    output wire                     done,
    output wire                     busy,
    input  wire                     h_valid,
    output wire                     h_ready,
    input  wire                     h_end,
    input  wire [XB+YB+LW+IW+VALW-1:0] h_data,
    output wire [R*C-1:0]           out_valid,
    output wire [R*C*LW-1:0]        out_layer,
    output wire [R*C*IW-1:0]        out_idx,
    output wire [R*C*24-1:0]        out_value,
    input  wire [CCW-1:0]           cnt_core,
    input  wire [CSW-1:0]           cnt_sel,
    output wire [CNTW-1:0]          cnt_data,
    input  wire [RCW-1:0]           rc_sel,
    output wire [31:0]              rc_data
);
    // the trace ports are left open (Yosys removes their logic); no link is ever stalled
    nm_mesh #(
`include "nm_mesh_inst.vh"
    ) mesh (
        .clk(clk), .rst(rst), .start(start), .first(first), .done(done), .busy(busy),
        .h_valid(h_valid), .h_ready(h_ready), .h_end(h_end), .h_data(h_data),
        .out_valid(out_valid), .out_layer(out_layer), .out_idx(out_idx),
        .out_value(out_value), .tr_valid(), .tr_u(), .tr_v(),
        .cnt_core(cnt_core), .cnt_sel(cnt_sel), .cnt_data(cnt_data), .rc_sel(rc_sel),
        .rc_data(rc_data), .stall({R*C*4{1'b0}}));
endmodule
`default_nettype wire
