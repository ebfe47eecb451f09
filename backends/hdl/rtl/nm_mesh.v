// nm_mesh: R x C copies of the generic core (nm_core, MESH = 1) joined by a 2-D mesh of
// routers (nm_router: XY routing, valid/ready, nothing dropped), the way a mapped graph runs
// on an FPGA (docs/hdl.md, "The mesh").
//
// Core (x, y) is core number y * C + x of the mapping and loads its program from
// mem/cNN/ (NN = its number, two digits). Packets are {x, y, layer, index, value}: the
// destination core, and the layer (a receiving input of that core's program) and neuron
// the event is for. The host's input events enter through the west port of router (0, 0).
//
// A step runs in waves (the program's o_wave): the host streams the step's input packets and
// closes them with h_end; then, each time every core waits and every router is empty (the
// barrier), one go pulse starts the next wave on every core. Wave k's spikes reach their
// cores before wave k + 1 reads them, so a zero-delay edge between cores is exact; the go
// after the last wave ends the step, and every core's done comes on the same clock.
//
// stall is a testbench knob: bit 4 * core + (0 east, 1 west, 2 north, 3 south) holds that
// router output's link busy (neither side sees the other); synthesis ties it to zero.
`default_nettype none
module nm_mesh
`include "nm_params.vh"
(
    input  wire                     clk,
    input  wire                     rst,
    input  wire                     start,
    input  wire                     first,
    output wire                     done,
    output wire                     busy,
    // the host port: input packets of the step; a beat with h_end = 1 closes them
    input  wire                     h_valid,
    output wire                     h_ready,
    input  wire                     h_end,
    input  wire [XB+YB+LW+IW+VALW-1:0] h_data,
    // every core's output events and traces, side by side (core k at bits k * width)
    output wire [R*C-1:0]           out_valid,
    output wire [R*C*LW-1:0]        out_layer,
    output wire [R*C*IW-1:0]        out_idx,
    output wire [R*C*24-1:0]        out_value,
    output wire [R*C-1:0]           tr_valid,
    output wire [R*C*UW-1:0]        tr_u,
    output wire [R*C*24-1:0]        tr_v,
    // counters: core cnt_core's counter cnt_sel; router counter rc_sel (5 * core + port,
    // ports 0 local, 1 east, 2 west, 3 north, 4 south: packets out; 5 * R * C: host packets in)
    input  wire [CCW-1:0]           cnt_core,
    input  wire [CSW-1:0]           cnt_sel,
    output wire [CNTW-1:0]          cnt_data,
    input  wire [RCW-1:0]           rc_sel,
    output wire [31:0]              rc_data,
    input  wire [R*C*4-1:0]         stall
);
    localparam NC = R * C;
    localparam DW = LW + IW + VALW;
    localparam PKW = XB + YB + DW;
    localparam PL = 0, PE = 1, PW_ = 2, PN = 3, PS = 4;

    // port p of router k is bit 5 * k + p
    wire [NC*5-1:0]      iv, ir, ov, orr;
    wire [NC*5*PKW-1:0]  id, od;
    wire [NC*5*32-1:0]   rcnt;
    wire [NC-1:0]        r_idle, c_wait, c_done, c_busy;
    wire [NC*CNTW-1:0]   c_cnt;
    reg                  go, host_done;
    reg  [31:0]          host_packets;

    genvar gx, gy;
    generate for (gy = 0; gy < R; gy = gy + 1) begin : g_row
        for (gx = 0; gx < C; gx = gx + 1) begin : g_col
            localparam K = gy * C + gx;
            localparam [7:0] D1 = 8'h30 + K / 10, D0 = 8'h30 + K % 10;
            localparam [8*8-1:0] DIR = {"mem/c", D1, D0, "/"};
            wire [PKW-1:0] rx = od[(5 * K + PL) * PKW +: PKW];
            nm_core #(
`include "nm_core_inst.vh"
                , .MESH(1), .X(gx), .Y(gy), .XB(XB), .YB(YB), .WVW(WVW),
                .D_DEPTH(D_DEPTH), .DAW(DAW), .DR_DEPTH(DR_DEPTH), .DRAW(DRAW),
                .DLENW(DLENW), .MEMDIR(DIR)
            ) core (
                .clk(clk), .rst(rst), .start(start), .first(first), .done(c_done[K]),
                .busy(c_busy[K]),
                .in_valid(ov[5 * K + PL]), .in_ready(orr[5 * K + PL]), .in_end(1'b0),
                .in_src(rx[DW-1 -: LW]), .in_idx(rx[IW+VALW-1 -: IW]), .in_val(rx[VALW-1:0]),
                .out_valid(out_valid[K]), .out_layer(out_layer[K * LW +: LW]),
                .out_idx(out_idx[K * IW +: IW]), .out_value(out_value[K * 24 +: 24]),
                .tr_valid(tr_valid[K]), .tr_u(tr_u[K * UW +: UW]), .tr_v(tr_v[K * 24 +: 24]),
                .cnt_sel(cnt_sel), .cnt_data(c_cnt[K * CNTW +: CNTW]),
                .go(go), .waiting(c_wait[K]), .tx_valid(iv[5 * K + PL]),
                .tx_ready(ir[5 * K + PL]), .tx_data(id[(5 * K + PL) * PKW +: PKW]));
            nm_router #(.X(gx), .Y(gy), .XB(XB), .YB(YB), .DW(DW)) router (
                .clk(clk), .rst(rst),
                .i_l_valid(iv[5*K+PL]), .i_l_ready(ir[5*K+PL]), .i_l_data(id[(5*K+PL)*PKW +: PKW]),
                .o_l_valid(ov[5*K+PL]), .o_l_ready(orr[5*K+PL]), .o_l_data(od[(5*K+PL)*PKW +: PKW]),
                .i_e_valid(iv[5*K+PE]), .i_e_ready(ir[5*K+PE]), .i_e_data(id[(5*K+PE)*PKW +: PKW]),
                .o_e_valid(ov[5*K+PE]), .o_e_ready(orr[5*K+PE]), .o_e_data(od[(5*K+PE)*PKW +: PKW]),
                .i_w_valid(iv[5*K+PW_]), .i_w_ready(ir[5*K+PW_]), .i_w_data(id[(5*K+PW_)*PKW +: PKW]),
                .o_w_valid(ov[5*K+PW_]), .o_w_ready(orr[5*K+PW_]), .o_w_data(od[(5*K+PW_)*PKW +: PKW]),
                .i_n_valid(iv[5*K+PN]), .i_n_ready(ir[5*K+PN]), .i_n_data(id[(5*K+PN)*PKW +: PKW]),
                .o_n_valid(ov[5*K+PN]), .o_n_ready(orr[5*K+PN]), .o_n_data(od[(5*K+PN)*PKW +: PKW]),
                .i_s_valid(iv[5*K+PS]), .i_s_ready(ir[5*K+PS]), .i_s_data(id[(5*K+PS)*PKW +: PKW]),
                .o_s_valid(ov[5*K+PS]), .o_s_ready(orr[5*K+PS]), .o_s_data(od[(5*K+PS)*PKW +: PKW]),
                .idle(r_idle[K]),
                .cnt_l(rcnt[(5*K+PL)*32 +: 32]), .cnt_e(rcnt[(5*K+PE)*32 +: 32]),
                .cnt_w(rcnt[(5*K+PW_)*32 +: 32]), .cnt_n(rcnt[(5*K+PN)*32 +: 32]),
                .cnt_s(rcnt[(5*K+PS)*32 +: 32]));
            // each output port feeds the neighbour's opposite input; an edge's output is
            // never routed to (XY), and its input is idle. West of (0, 0): the host.
            if (gx < C - 1) begin : g_east
                assign iv[5*(K+1)+PW_] = ov[5*K+PE] & ~stall[4*K+0];
                assign id[(5*(K+1)+PW_)*PKW +: PKW] = od[(5*K+PE)*PKW +: PKW];
                assign orr[5*K+PE] = ir[5*(K+1)+PW_] & ~stall[4*K+0];
            end else begin : g_east_edge
                assign orr[5*K+PE] = 1'b1;
                assign iv[5*K+PE] = 1'b0;
                assign id[(5*K+PE)*PKW +: PKW] = {PKW{1'b0}};
            end
            if (gx > 0) begin : g_west
                assign iv[5*(K-1)+PE] = ov[5*K+PW_] & ~stall[4*K+1];
                assign id[(5*(K-1)+PE)*PKW +: PKW] = od[(5*K+PW_)*PKW +: PKW];
                assign orr[5*K+PW_] = ir[5*(K-1)+PE] & ~stall[4*K+1];
            end else begin : g_west_edge
                assign orr[5*K+PW_] = 1'b1;
                if (K == 0) begin : g_host
                    assign iv[PW_] = h_valid && !h_end;
                    assign id[PW_*PKW +: PKW] = h_data;
                end else begin : g_none
                    assign iv[5*K+PW_] = 1'b0;
                    assign id[(5*K+PW_)*PKW +: PKW] = {PKW{1'b0}};
                end
            end
            if (gy < R - 1) begin : g_south
                assign iv[5*(K+C)+PN] = ov[5*K+PS] & ~stall[4*K+3];
                assign id[(5*(K+C)+PN)*PKW +: PKW] = od[(5*K+PS)*PKW +: PKW];
                assign orr[5*K+PS] = ir[5*(K+C)+PN] & ~stall[4*K+3];
            end else begin : g_south_edge
                assign orr[5*K+PS] = 1'b1;
                assign iv[5*K+PS] = 1'b0;
                assign id[(5*K+PS)*PKW +: PKW] = {PKW{1'b0}};
            end
            if (gy > 0) begin : g_north
                assign iv[5*(K-C)+PS] = ov[5*K+PN] & ~stall[4*K+2];
                assign id[(5*(K-C)+PS)*PKW +: PKW] = od[(5*K+PN)*PKW +: PKW];
                assign orr[5*K+PN] = ir[5*(K-C)+PS] & ~stall[4*K+2];
            end else begin : g_north_edge
                assign orr[5*K+PN] = 1'b1;
                assign iv[5*K+PN] = 1'b0;
                assign id[(5*K+PN)*PKW +: PKW] = {PKW{1'b0}};
            end
        end
    end endgenerate

    assign h_ready = h_end | ir[PW_];
    assign busy = |c_busy;
    assign done = &c_done;
    assign cnt_data = c_cnt[cnt_core * CNTW +: CNTW];
    assign rc_data = (rc_sel == 5 * NC) ? host_packets : rcnt[rc_sel * 32 +: 32];

    // the barrier: every core waits at the end of its wave and nothing is on its way (the
    // host's inputs closed, every router empty); go is a one-clock pulse
    always @(posedge clk) begin
        go <= !go && host_done && (&c_wait) && (&r_idle);
        if (h_valid && h_end) host_done <= 1'b1;  // (on start's clock too: no inputs)
        else if (start) host_done <= 1'b0;
        if (h_valid && !h_end && ir[PW_]) host_packets <= host_packets + 1'b1;
        if (rst) begin
            go <= 1'b0;
            host_done <= 1'b0;
            host_packets <= 32'd0;
        end
    end
endmodule
`default_nettype wire
