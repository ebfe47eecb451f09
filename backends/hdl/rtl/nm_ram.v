// nm_ram: one synchronous-read, synchronous-write memory (simple dual port), the shape every
// FPGA block RAM implements, so that Yosys infers SB_RAM40_4K (iCE40) or RAMB18/36 (Xilinx).
//
// A read issued on one clock edge (re = 1) returns data after that edge; a read and a write of
// the same address on the same edge return the OLD data (read-first). The core's accumulate
// pipeline forwards around this itself. INIT = 1 loads the contents from FILE with $readmemh
// (a path relative to the simulator's or synthesiser's working directory); INIT = 0 starts
// from zeros.
`default_nettype none
module nm_ram #(
    parameter W = 8,            // word width
    parameter DEPTH = 16,       // words
    parameter AW = 4,           // address width, 2^AW >= DEPTH
    parameter INIT = 0,         // 1: load FILE
    parameter FILE = "mem.hex"
) (
    input  wire          clk,
    input  wire          re,
    input  wire [AW-1:0] raddr,
    output reg  [W-1:0]  rdata,
    input  wire          we,
    input  wire [AW-1:0] waddr,
    input  wire [W-1:0]  wdata
);
    reg [W-1:0] mem [0:DEPTH-1];
    integer i;
    initial begin
        rdata = {W{1'b0}};
        if (INIT) $readmemh(FILE, mem);
        else for (i = 0; i < DEPTH; i = i + 1) mem[i] = {W{1'b0}};
    end
    always @(posedge clk) begin
        if (we) mem[waddr] <= wdata;
        if (re) rdata <= mem[raddr];
    end
endmodule
`default_nettype wire
