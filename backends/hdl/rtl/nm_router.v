// nm_router: one router of a 2-D mesh network-on-chip that joins the nm_core tiles of a
// multi-core build; packets {dx, dy, payload} travel from core to core over valid/ready links.
//
// Five ports, numbered L = 0 (the local core), E = 1, W = 2, N = 3, S = 4, each an input side
// (i_*) and an output side (o_*). Routing is dimension order (XY): a packet first moves along
// its row to column dx (e if dx > X, w if dx < X), then along the column to row dy (s if
// dy > Y, rows grow southward; n if dy < Y), then leaves by l. XY routing of one-word packets
// with store-and-forward buffers cannot deadlock: no packet ever turns from a column back into
// a row, so the links never wait on each other in a cycle.
//
// Each input has a FIFO of DEPTH words (flip-flops: a RAM's read latency would cost a clock
// per hop); i_*_ready = FIFO not full, which depends on no o_*_ready, so a chain of routers
// has no combinational path through ready. Each output has one register, so o_*_valid and
// o_*_data come straight from flip-flops. An output register that is empty, or is being
// emptied this clock, loads the head of one input FIFO routed to it, chosen round-robin, and
// that FIFO pops in the same clock: one packet per clock per output while downstream is ready.
// cnt_* count the packets that left each output (o_valid && o_ready), for traffic statistics.
// Verilog-2001, no vendor primitives.
`default_nettype none
module nm_router #(
    parameter X = 0,            // this router's column
    parameter Y = 0,            // this router's row
    parameter XB = 1,           // bits of a column address
    parameter YB = 1,           // bits of a row address
    parameter DW = 8,           // payload bits
    parameter DEPTH = 2         // words of each input FIFO (>= 2: a push and a pop per clock)
) (
    input  wire                   clk,
    input  wire                   rst,        // synchronous, active high
    // local core
    input  wire                   i_l_valid,
    output wire                   i_l_ready,
    input  wire [XB+YB+DW-1:0]    i_l_data,
    output wire                   o_l_valid,
    input  wire                   o_l_ready,
    output wire [XB+YB+DW-1:0]    o_l_data,
    // east neighbour (column X + 1)
    input  wire                   i_e_valid,
    output wire                   i_e_ready,
    input  wire [XB+YB+DW-1:0]    i_e_data,
    output wire                   o_e_valid,
    input  wire                   o_e_ready,
    output wire [XB+YB+DW-1:0]    o_e_data,
    // west neighbour (column X - 1)
    input  wire                   i_w_valid,
    output wire                   i_w_ready,
    input  wire [XB+YB+DW-1:0]    i_w_data,
    output wire                   o_w_valid,
    input  wire                   o_w_ready,
    output wire [XB+YB+DW-1:0]    o_w_data,
    // north neighbour (row Y - 1)
    input  wire                   i_n_valid,
    output wire                   i_n_ready,
    input  wire [XB+YB+DW-1:0]    i_n_data,
    output wire                   o_n_valid,
    input  wire                   o_n_ready,
    output wire [XB+YB+DW-1:0]    o_n_data,
    // south neighbour (row Y + 1)
    input  wire                   i_s_valid,
    output wire                   i_s_ready,
    input  wire [XB+YB+DW-1:0]    i_s_data,
    output wire                   o_s_valid,
    input  wire                   o_s_ready,
    output wire [XB+YB+DW-1:0]    o_s_data,
    output wire                   idle,       // no packet held anywhere in this router
    // packets sent out of each output port (wrap at 2^32)
    output reg  [31:0]            cnt_l,
    output reg  [31:0]            cnt_e,
    output reg  [31:0]            cnt_w,
    output reg  [31:0]            cnt_n,
    output reg  [31:0]            cnt_s
);
    localparam PKW = XB + YB + DW;      // packet width
    localparam L = 0, E = 1, W = 2, N = 3, S = 4;

    // ceil(log2(n)), for the FIFO pointer and count widths
    function integer clog2;
        input integer n;
        integer k;
        begin
            clog2 = 0;
            for (k = n - 1; k > 0; k = k >> 1) clog2 = clog2 + 1;
        end
    endfunction
    localparam AW = clog2(DEPTH);       // FIFO pointer width (DEPTH >= 2, so >= 1)
    localparam CW = clog2(DEPTH + 1);   // FIFO count width, holds 0..DEPTH
    // the constants at the widths they are compared with (the low bits of 32-bit values)
    localparam [31:0] LAST32 = DEPTH - 1, FULL32 = DEPTH, X32 = X, Y32 = Y;
    localparam [AW-1:0] LAST = LAST32[AW-1:0];
    localparam [CW-1:0] FULL = FULL32[CW-1:0];
    localparam [XB-1:0] XA = X32[XB-1:0];      // this router's address, unsigned
    localparam [YB-1:0] YA = Y32[YB-1:0];

    // the five ports packed into vectors, bit / word p = port p, so the logic below is loops
    wire [4:0] in_valid = {i_s_valid, i_n_valid, i_w_valid, i_e_valid, i_l_valid};
    wire [5*PKW-1:0] in_data = {i_s_data, i_n_data, i_w_data, i_e_data, i_l_data};
    wire [4:0] out_ready = {o_s_ready, o_n_ready, o_w_ready, o_e_ready, o_l_ready};
    wire [4:0] in_ready;                // FIFO not full
    wire [4:0] nonempty;
    wire [5*PKW-1:0] head;              // the word each FIFO would pop
    wire [4:0] pop;                     // FIFO p's head is loaded into an output register
    reg  [4:0] out_valid;               // output register full
    reg  [5*PKW-1:0] out_data;

    assign i_l_ready = in_ready[L];
    assign i_e_ready = in_ready[E];
    assign i_w_ready = in_ready[W];
    assign i_n_ready = in_ready[N];
    assign i_s_ready = in_ready[S];
    assign o_l_valid = out_valid[L];
    assign o_e_valid = out_valid[E];
    assign o_w_valid = out_valid[W];
    assign o_n_valid = out_valid[N];
    assign o_s_valid = out_valid[S];
    assign o_l_data = out_data[L*PKW +: PKW];
    assign o_e_data = out_data[E*PKW +: PKW];
    assign o_w_data = out_data[W*PKW +: PKW];
    assign o_n_data = out_data[N*PKW +: PKW];
    assign o_s_data = out_data[S*PKW +: PKW];

    // ---------------------------------------------------------------- input FIFOs
    // A circular buffer with a word count: a full FIFO refuses a push even while it pops, so
    // that ready stays a function of this FIFO's registers alone.
    genvar gp;
    generate for (gp = 0; gp < 5; gp = gp + 1) begin : g_fifo
        reg [PKW-1:0] mem [0:DEPTH-1];
        reg [AW-1:0]  wp, rp;
        reg [CW-1:0]  n;
        wire push = in_valid[gp] && n != FULL;
        assign in_ready[gp] = n != FULL;
        assign nonempty[gp] = n != 0;
        assign head[gp*PKW +: PKW] = mem[rp];
        always @(posedge clk)
            if (push) mem[wp] <= in_data[gp*PKW +: PKW];
        always @(posedge clk)
            if (rst) begin
                wp <= 0;
                rp <= 0;
                n <= 0;
            end else begin
                if (push) wp <= wp == LAST ? {AW{1'b0}} : wp + 1'b1;
                if (pop[gp]) rp <= rp == LAST ? {AW{1'b0}} : rp + 1'b1;
                if (push && !pop[gp]) n <= n + 1'b1;
                else if (!push && pop[gp]) n <= n - 1'b1;
            end
    end endgenerate

    // ---------------------------------------------------------------- routing
    // req[o*5 + p]: FIFO p's head wants output o (one output per head, a one-hot column).
    // A packet never goes back out of the neighbour port it came in by (XY routing never
    // needs it, and it saves a mux input); l to l is a real case, a core sending to itself.
    wire [24:0] req;
    generate for (gp = 0; gp < 5; gp = gp + 1) begin : g_route
        wire [XB-1:0] hx = head[gp*PKW + DW + YB +: XB];
        wire [YB-1:0] hy = head[gp*PKW + DW +: YB];
        wire east = hx > XA;
        wire west = !east && hx != XA;              // hx < XA
        wire col = hx == XA;                        // in the right column: now along it
        wire south = col && hy > YA;
        wire north = col && !south && hy != YA;     // hy < YA
        wire [4:0] want = {south, north, west, east, col && hy == YA};
        genvar o;
        for (o = 0; o < 5; o = o + 1) begin : g_req
            assign req[o*5 + gp] = nonempty[gp] && want[o] && (o != gp || gp == L);
        end
    end endgenerate

    // ---------------------------------------------------------------- output registers
    // Round-robin per output: mask[o] has a 1 for each input after the last winner. The
    // lowest requesting input inside the mask wins, or, if none requests there, the lowest
    // requesting input of all (the wrap-around); the mask then moves past the winner, so
    // every waiting input is served within five grants of its output.
    reg [24:0] mask;
    wire [24:0] gnt;                    // gnt[o*5 + p]: output o loads FIFO p's head
    genvar go;
    generate for (go = 0; go < 5; go = go + 1) begin : g_out
        wire [4:0] r = req[go*5 +: 5];
        wire [4:0] m = r & mask[go*5 +: 5];
        wire [4:0] c = m != 5'd0 ? m : r;
        // free: empty, or being emptied this clock (the register holds one packet, and may
        // take the next on the same clock edge that hands this one on)
        wire free = !out_valid[go] || out_ready[go];
        reg [4:0] g;                    // the lowest set bit of c, when free
        reg [4:0] above;                // the inputs after the winner: the next mask
        reg [PKW-1:0] d;                // the winner's head
        reg seen;
        integer k;
        always @* begin
            seen = 1'b0;
            d = {PKW{1'b0}};
            for (k = 0; k < 5; k = k + 1) begin
                above[k] = seen;
                g[k] = free && c[k] && !seen;
                seen = seen || c[k];
                d = d | ({PKW{g[k]}} & head[k*PKW +: PKW]);
            end
        end
        assign gnt[go*5 +: 5] = g;
        always @(posedge clk) begin
            if (g != 5'd0) out_data[go*PKW +: PKW] <= d;
            if (rst) begin
                out_valid[go] <= 1'b0;
                mask[go*5 +: 5] <= 5'd0;
            end else if (g != 5'd0) begin
                out_valid[go] <= 1'b1;
                mask[go*5 +: 5] <= above;
            end else if (out_ready[go])
                out_valid[go] <= 1'b0;
        end
    end endgenerate

    // each head requests a single output, so it is granted by at most one
    generate for (gp = 0; gp < 5; gp = gp + 1) begin : g_pop
        assign pop[gp] = gnt[0*5 + gp] | gnt[1*5 + gp] | gnt[2*5 + gp] | gnt[3*5 + gp]
                       | gnt[4*5 + gp];
    end endgenerate

    assign idle = nonempty == 5'd0 && out_valid == 5'd0;

    // ---------------------------------------------------------------- counters
    always @(posedge clk)
        if (rst) begin
            cnt_l <= 32'd0;
            cnt_e <= 32'd0;
            cnt_w <= 32'd0;
            cnt_n <= 32'd0;
            cnt_s <= 32'd0;
        end else begin
            if (o_l_valid && o_l_ready) cnt_l <= cnt_l + 32'd1;
            if (o_e_valid && o_e_ready) cnt_e <= cnt_e + 32'd1;
            if (o_w_valid && o_w_ready) cnt_w <= cnt_w + 32'd1;
            if (o_n_valid && o_n_ready) cnt_n <= cnt_n + 32'd1;
            if (o_s_valid && o_s_ready) cnt_s <= cnt_s + 32'd1;
        end
endmodule
`default_nettype wire
