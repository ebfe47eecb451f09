// The clock for nm_mesh_tb under Icarus Verilog.
`timescale 1ns / 1ps
module nm_mesh_tb_icarus;
    reg clk = 1'b0;
    always #5 clk = ~clk;
    nm_mesh_tb tb (.clk(clk));
endmodule
