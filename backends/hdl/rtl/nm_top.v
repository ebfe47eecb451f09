// nm_top: the synthesis top. nm_core with the program's sizes (nm_params.vh) and without the
// simulation trace port; the memories load mem/*.hex, so run the synthesiser in the project
// folder.
`default_nettype none
module nm_top
`include "nm_params.vh"
(
    input  wire              clk,
    input  wire              rst,
    input  wire              start,
    input  wire              first,
    output wire              done,
    output wire              busy,
    input  wire              in_valid,
    output wire              in_ready,
    input  wire              in_end,
    input  wire [LW-1:0]     in_src,
    input  wire [IW-1:0]     in_idx,
    input  wire [VALW-1:0]   in_val,
    output wire              out_valid,
    output wire [LW-1:0]     out_layer,
    output wire [IW-1:0]     out_idx,
    output wire [23:0]       out_value,
    input  wire [CSW-1:0]    cnt_sel,
    output wire [CNTW-1:0]   cnt_data
);
    wire tr_valid;
    wire [UW-1:0] tr_u;
    wire [23:0] tr_v;
    nm_core #(
`include "nm_core_inst.vh"
    ) core (
        .clk(clk), .rst(rst), .start(start), .first(first), .done(done), .busy(busy),
        .in_valid(in_valid), .in_ready(in_ready), .in_end(in_end), .in_src(in_src),
        .in_idx(in_idx), .in_val(in_val), .out_valid(out_valid), .out_layer(out_layer),
        .out_idx(out_idx), .out_value(out_value), .tr_valid(tr_valid), .tr_u(tr_u),
        .tr_v(tr_v), .cnt_sel(cnt_sel), .cnt_data(cnt_data));
endmodule
`default_nettype wire
