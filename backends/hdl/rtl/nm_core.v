// nm_core: a small time-multiplexed neuromorphic processor that runs any quantised nmcompile
// graph bit for bit as backends/emulator does (docs/fixed_point.md, docs/hdl.md).
//
// The network is data, not logic: layer and projection tables, fan-out synapse lists,
// neuron parameters and memory sizes come from mem/*.hex files ($readmemh) and from the
// parameters below, so one build of this RTL runs every graph that fits its sizes.
//
// One time step:
//   ADVANCE  each event ring and accumulator ring moves to this step's region
//   INPUT    input events arrive on the in_* stream (valid/ready), are stored in the rings
//   then the op list, in the graph's schedule order:
//   projection p (source s, event delay d0, dendritic delay d1; nothing while t < d0):
//       for each event (i, x) that s emitted at step t - d0 (read from s's ring):
//         for each synapse (j, w) of source neuron i in p's fan-out list:
//           ACC[p][t + d1][j] += w * x          one synapse per clock, pipelined
//   update of layer L:
//     for each neuron j of L:                   pipelined: one accumulator read per clock,
//                                               so a neuron per clock per projection into L
//       a = sum over p into L of shift(ACC[p][t][j], exp_p); ACC[p][t][j] = 0 (each ACC
//       word carries a flag: a synapse reached j, for the active-update counter)
//       u, v, (th) updated as docs/fixed_point.md section 2; spikes go to L's ring and out_*
// ACC[p] is a ring of d1 + 1 slots (Loihi's dendritic delay), so a projection computes, and
// counts its events, at step t_source + d0, as the emulator's projection node does.
// A step on a mesh (MESH = 1, nm_mesh.v): after ADVANCE the core waits at the barrier; the
// host's and other cores' events arrive as packets into its receiving layers' rings (taken
// while it waits or sends); each go runs the ops of the next wave (o_wave), a send op walks a
// layer's spikes of this step and sends each to its destination list; the go after the last
// wave ends the step.
// Clock cycles per step: docs/hdl.md ("Cycles per step"), checked by tests/test_hdl.py.
// Verilog-2001, no vendor primitives; every large memory is an nm_ram (block RAM).
`default_nettype none
module nm_core #(
    parameter NL = 2,            // layer table entries (inputs and neuron layers)
    parameter LW = 1,            // layer index width
    parameter NP = 1,            // projections
    parameter PW = 1,            // projection index width
    parameter NO = 2,            // ops (projections and layer updates) per step
    parameter OW = 1,            // op index width
    parameter IW = 7,            // neuron index width inside a layer
    parameter VALW = 1,          // input event value width (signed when GRADED)
    parameter GRADED = 0,        // 0: every event carries the value 1 (spikes)
    parameter WW = 8,            // weight mantissa width (signed)
    parameter EXPW = 6,          // projection exponent width (signed)
    parameter LENW = 8,          // fan-out length width
    parameter DLW = 1,           // delay width
    parameter W_DEPTH = 64, parameter WAW = 6,     // synapse weights
    parameter T_DEPTH = 1,  parameter TAW = 1,     // synapse targets (list projections)
    parameter ROW_DEPTH = 64, parameter ROWAW = 6, // fan-out list (start, length) per source neuron
    parameter E_DEPTH = 64, parameter EAW = 6,     // event rings
    parameter A_DEPTH = 8,  parameter AAW = 3,     // accumulators, one per (projection, target)
    parameter S_DEPTH = 8,  parameter SAW = 3,     // neuron state
    parameter P_DEPTH = 1,  parameter PAW = 1,     // neuron parameter sets
    parameter ACCW = 16,         // accumulator width
    parameter AW = 20,           // synaptic input a width
    parameter UW = 25,           // current u width (25 holds +2^23)
    parameter HAS_TH = 0,        // adaptive thresholds present (QALIF)
    parameter CNTW = 32,         // counter width
    parameter CSW = 3,           // counter select width
    parameter TW = 32,           // step counter width
    // a core of a mesh (nm_mesh, MESH = 1): inputs and other cores' spikes arrive as packets
    // on in_*, spikes leave as packets on tx_* (send ops), and a step runs in waves, each
    // closed by the mesh's barrier (go); see "A step on a mesh" below
    parameter MESH = 0,
    // synapses per clock (1, 2, 4): the weights and targets in LANES banks (lane l holds
    // entry l of each slot of LANES entries), the accumulators in LANES banks (address mod
    // LANES); the program places every list synapse in the lane of its target's bank (pads
    // where a bank has fewer), so lanes never conflict and each slot takes one clock
    parameter LANES = 1,
    parameter X = 0, parameter Y = 0,              // this core's place in the mesh
    parameter XB = 1, parameter YB = 1,            // mesh column and row address widths
    parameter WVW = 1,                             // wave number width
    parameter D_DEPTH = 1,  parameter DAW = 1,     // destinations (core, layer, index)
    parameter DR_DEPTH = 1, parameter DRAW = 1,    // destination list (start, length) per neuron
    parameter DLENW = 1,                           // destination list length width
    parameter MEMDIR = "mem/"                      // where this core's memory images lie
) (
    input  wire                   clk,
    input  wire                   rst,
    // step control: a start pulse begins one step (first = 1: a new sample, state cleared)
    input  wire                   start,
    input  wire                   first,
    output reg                    done,       // one-clock pulse at the end of the step
    output wire                   busy,
    // input events of this step; a beat with in_end = 1 closes the step's inputs
    input  wire                   in_valid,
    output wire                   in_ready,
    input  wire                   in_end,
    input  wire [LW-1:0]          in_src,
    input  wire [IW-1:0]          in_idx,
    input  wire [VALW-1:0]        in_val,
    // output events: a spike (value 1) or a non-spiking layer's voltage
    output reg                    out_valid,
    output reg  [LW-1:0]          out_layer,
    output reg  [IW-1:0]          out_idx,
    output reg  signed [23:0]     out_value,
    // every neuron update (simulation trace; unconnected in synthesis)
    output reg                    tr_valid,
    output reg  signed [UW-1:0]   tr_u,
    output reg  signed [23:0]     tr_v,
    // hardware counters: per layer spikes, updates, unsafe updates, active updates; per
    // projection synaptic events and those on a non-zero weight (cnt_data is registered:
    // valid on the second clock edge after cnt_sel is set)
    input  wire [CSW-1:0]         cnt_sel,
    output reg  [CNTW-1:0]        cnt_data,
    // mesh only (MESH = 1): the barrier, and packets {x, y, layer, index, value} to send
    input  wire                   go,
    output wire                   waiting,
    output wire                   tx_valid,
    input  wire                   tx_ready,
    output wire [XB+YB+LW+IW+VALW-1:0] tx_data
);
    localparam EPW = EAW + 1;           // ring pointer width
    localparam EVW = IW + VALW;         // ring word: {value, index} or a count
    localparam PRW = GRADED ? WW + VALW : WW;
    localparam XW = ((UW + 1 > AW + 6) ? UW + 1 : AW + 6) + 2;
    localparam YW = XW + 1;

    wire [VALW-1:0] ONE_VAL = 1;
    wire signed [AW-1:0] ZERO_A = 0;
    wire signed [XW:0] ZERO_Y = 0;
    localparam K_INPUT = 2'd0, K_LIF = 2'd1, K_ALIF = 2'd2, K_LI = 2'd3;

    // ---------------------------------------------------------------- tables (small, async)
    reg [1:0]       l_kind   [0:NL-1];
    reg             l_sub    [0:NL-1];
    reg [IW:0]      l_n      [0:NL-1];
    reg [SAW-1:0]   l_sbase  [0:NL-1];
    reg [PAW-1:0]   l_pbase  [0:NL-1];
    reg             l_pern   [0:NL-1];
    reg             l_ring   [0:NL-1];
    reg [EPW-1:0]   l_rbase  [0:NL-1];
    reg [EPW-1:0]   l_rsize  [0:NL-1];
    reg [EPW-1:0]   l_rend   [0:NL-1];
    reg [PW:0]      l_np     [0:NL-1];
    reg [PW-1:0]    l_pfirst [0:NL-1];
    reg [LW-1:0]    p_src    [0:NP-1];
    reg [DLW-1:0]   p_delay  [0:NP-1];     // event delay d0
    reg [AAW:0]     p_aoff   [0:NP-1];     // d1 * n: the slot written, from the slot read
    reg [AAW:0]     p_aend   [0:NP-1];     // end of the accumulator ring
    reg [IW:0]      p_an     [0:NP-1];     // words per slot (the target layer's size)
    reg [EPW-1:0]   p_off    [0:NP-1];
    reg [EXPW-1:0]  p_exp    [0:NP-1];
    reg             p_list   [0:NP-1];
    reg [ROWAW-1:0] p_rowbase[0:NP-1];
    reg [AAW-1:0]   p_accbase[0:NP-1];
    reg             p_count  [0:NP-1];
    reg [1:0]       o_kind   [0:NO-1];     // 0: none, 1: projection, 2: layer update
    reg [(LW > PW ? LW : PW)-1:0] o_idx [0:NO-1];
    reg [WVW-1:0]   o_wave   [0:NO-1];     // mesh: the wave an op runs in
    reg [DRAW-1:0]  l_drow   [0:NL-1];     // mesh: the layer's destination lists
    reg [WVW:0]     m_waves  [0:0];        // mesh: waves per step
    generate if (MESH) begin : g_mtab
        initial begin
            $readmemh({MEMDIR, "o_wave.hex"}, o_wave);
            $readmemh({MEMDIR, "l_drow.hex"}, l_drow);
            $readmemh({MEMDIR, "m_waves.hex"}, m_waves);
        end
    end endgenerate
    initial begin
        $readmemh({MEMDIR, "l_kind.hex"}, l_kind);
        $readmemh({MEMDIR, "l_sub.hex"}, l_sub);
        $readmemh({MEMDIR, "l_n.hex"}, l_n);
        $readmemh({MEMDIR, "l_sbase.hex"}, l_sbase);
        $readmemh({MEMDIR, "l_pbase.hex"}, l_pbase);
        $readmemh({MEMDIR, "l_pern.hex"}, l_pern);
        $readmemh({MEMDIR, "l_ring.hex"}, l_ring);
        $readmemh({MEMDIR, "l_rbase.hex"}, l_rbase);
        $readmemh({MEMDIR, "l_rsize.hex"}, l_rsize);
        $readmemh({MEMDIR, "l_rend.hex"}, l_rend);
        $readmemh({MEMDIR, "l_np.hex"}, l_np);
        $readmemh({MEMDIR, "l_pfirst.hex"}, l_pfirst);
        $readmemh({MEMDIR, "p_src.hex"}, p_src);
        $readmemh({MEMDIR, "p_delay.hex"}, p_delay);
        $readmemh({MEMDIR, "p_aoff.hex"}, p_aoff);
        $readmemh({MEMDIR, "p_aend.hex"}, p_aend);
        $readmemh({MEMDIR, "p_an.hex"}, p_an);
        $readmemh({MEMDIR, "p_off.hex"}, p_off);
        $readmemh({MEMDIR, "p_exp.hex"}, p_exp);
        $readmemh({MEMDIR, "p_list.hex"}, p_list);
        $readmemh({MEMDIR, "p_rowbase.hex"}, p_rowbase);
        $readmemh({MEMDIR, "p_accbase.hex"}, p_accbase);
        $readmemh({MEMDIR, "p_count.hex"}, p_count);
        $readmemh({MEMDIR, "o_kind.hex"}, o_kind);
        $readmemh({MEMDIR, "o_idx.hex"}, o_idx);
    end

    // ---------------------------------------------------------------- state of the sequencer
    localparam S_IDLE = 5'd0, S_CLEAR = 5'd1, S_ADV = 5'd2, S_ADVP = 5'd3, S_INPUT = 5'd4,
               S_INCOUNT = 5'd5, S_OP = 5'd6, S_LSTART = 5'd7, S_PSEL = 5'd8, S_PCNT = 5'd9,
               S_EV = 5'd10, S_EVD = 5'd11, S_ROW = 5'd12, S_SYN = 5'd13, S_DRAIN = 5'd14,
               S_NU = 5'd15, S_NU_WAIT = 5'd16, S_NU_CNT = 5'd17, S_DONE = 5'd18,
               S_WAIT = 5'd19, S_SSEL = 5'd20, S_SCNT = 5'd21, S_SEV = 5'd22, S_SEVD = 5'd23,
               S_SROW = 5'd24, S_SDST = 5'd25, S_STX = 5'd26;
    localparam CLR_LAST = (S_DEPTH > A_DEPTH ? S_DEPTH : A_DEPTH) - 1;
    localparam CAW = (SAW > AAW ? SAW : AAW) + 1;
    reg [4:0]        st;
    reg              first_r;
    reg [TW-1:0]     t;                 // step within the sample
    reg [CAW-1:0]    ca;                // clear address
    reg [LW:0]       l;                 // layer being processed
    reg [OW:0]       o;                 // op being executed
    reg [EPW-1:0]    wptr [0:NL-1];     // each ring's region of step t
    reg [IW:0]       icnt [0:NL-1];     // input events stored this step, per input
    reg [AAW:0]      aptr [0:NP-1];     // each accumulator ring's slot of step t
    reg [PW:0]       pa;                // projection being advanced
    reg [AAW-1:0]    acc_wbase;         // the slot the current projection writes
    // the current layer's fields, registered at S_LSTART
    reg [1:0]        L_kind;
    reg              L_sub, L_pern, L_ring;
    reg [IW:0]       L_n;
    reg [SAW-1:0]    L_sbase;
    reg [PAW-1:0]    L_pbase;
    reg [PW:0]       L_np;
    reg [PW-1:0]     L_pfirst;
    reg [EPW-1:0]    L_wptr;
    // projection walk
    reg [PW-1:0]     p;                 // projection being walked
    reg [EPW-1:0]    rptr;              // region of step t - d0 in the source's ring
    reg [IW:0]       ecount, e;         // events in that region, event being walked
    reg [VALW-1:0]   ev_val;
    reg [WAW-1:0]    syn_start;
    reg [LENW-1:0]   syn_len, k;
    // neuron walk (the issue stage of the neuron pipeline)
    reg [IW:0]       j;                 // neuron whose reads are issued
    reg [PW:0]       nq;                // projection whose accumulator is read
    reg [IW:0]       scnt;              // spikes of the layer this step
    // mesh: the barrier's pulses this step (go number g starts wave g - 1), the send walk
    reg [WVW:0]      gos;
    wire [WVW-1:0]   wv = gos - 1'b1;
    reg [DAW-1:0]    dst_start;
    reg [DLENW-1:0]  dst_len, dk;
    reg [CNTW-1:0]   c_msg, c_hops;     // messages sent (to this core too), their mesh hops

    assign busy = (st != S_IDLE);
    // a mesh core takes packets whenever it does not use its ring's write port: while it
    // waits at the barrier and while it sends (so that two cores sending to each other
    // never block each other)
    wire             sending = (st >= S_SSEL) && (st <= S_STX);
    assign in_ready = MESH ? (st == S_WAIT) || sending : (st == S_INPUT);
    assign waiting = (st == S_WAIT);

    // ---------------------------------------------------------------- memories
    // event rings
    reg              e_re, e_we;
    reg [EAW-1:0]    e_raddr, e_waddr;
    reg [EVW-1:0]    e_wdata;
    wire [EVW-1:0]   e_rdata;
    nm_ram #(.W(EVW), .DEPTH(E_DEPTH), .AW(EAW)) ring (
        .clk(clk), .re(e_re), .raddr(e_raddr), .rdata(e_rdata),
        .we(e_we), .waddr(e_waddr), .wdata(e_wdata));

    // fan-out lists: (start, length) per (projection, source neuron)
    wire             row_re = (st == S_EVD);
    wire [ROWAW-1:0] row_addr = p_rowbase[p] + e_rdata[IW-1:0];
    wire [WAW-1:0]   row_start;
    wire [LENW-1:0]  row_len;
    nm_ram #(.W(WAW), .DEPTH(ROW_DEPTH), .AW(ROWAW), .INIT(1), .FILE({MEMDIR, "row_start.hex"})) rows_s (
        .clk(clk), .re(row_re), .raddr(row_addr), .rdata(row_start),
        .we(1'b0), .waddr({ROWAW{1'b0}}), .wdata({WAW{1'b0}}));
    nm_ram #(.W(LENW), .DEPTH(ROW_DEPTH), .AW(ROWAW), .INIT(1), .FILE({MEMDIR, "row_len.hex"})) rows_l (
        .clk(clk), .re(row_re), .raddr(row_addr), .rdata(row_len),
        .we(1'b0), .waddr({ROWAW{1'b0}}), .wdata({LENW{1'b0}}));

    // synapses: weight mantissas, and targets for list projections (dense ones imply them)
    // (with LANES > 1: W_DEPTH and T_DEPTH count slots, a target word carries a valid flag
    // above the index, clear in a pad, and weights<l>.hex, targets<l>.hex are lane l's bank)
    localparam TEW = (LANES > 1) ? IW + 1 : IW;
    wire             syn_re = (st == S_SYN);
    wire [WAW-1:0]   syn_addr = syn_start + k / LANES;
    wire [TAW-1:0]   t_addr = syn_addr;      // list synapses lie below T_DEPTH
    wire [LANES*WW-1:0]  w_rdata;
    wire [LANES*TEW-1:0] t_rdata;
    genvar ln;
    generate for (ln = 0; ln < LANES; ln = ln + 1) begin : g_syn
        localparam [7:0] DIGIT = 8'h30 + ln;
        nm_ram #(.W(WW), .DEPTH(W_DEPTH), .AW(WAW), .INIT(1),
                 .FILE(LANES == 1 ? {MEMDIR, "weights.hex"} : {MEMDIR, "weights", DIGIT, ".hex"})) wmem (
            .clk(clk), .re(syn_re), .raddr(syn_addr), .rdata(w_rdata[ln*WW +: WW]),
            .we(1'b0), .waddr({WAW{1'b0}}), .wdata({WW{1'b0}}));
        nm_ram #(.W(TEW), .DEPTH(T_DEPTH), .AW(TAW), .INIT(1),
                 .FILE(LANES == 1 ? {MEMDIR, "targets.hex"} : {MEMDIR, "targets", DIGIT, ".hex"})) tmem (
            .clk(clk), .re(syn_re), .raddr(t_addr), .rdata(t_rdata[ln*TEW +: TEW]),
            .we(1'b0), .waddr({TAW{1'b0}}), .wdata({TEW{1'b0}}));
    end endgenerate

    // mesh: per neuron of a sending layer, its list of destinations {x, y, layer, index}
    localparam DEW = XB + YB + LW + IW;
    wire [DAW-1:0]   d_start;
    wire [DLENW-1:0] d_len;
    wire [DEW-1:0]   d_ent;
    generate if (MESH) begin : g_dst
        wire [DRAW-1:0] drow_addr = l_drow[l[LW-1:0]] + e_rdata[IW-1:0];
        nm_ram #(.W(DAW), .DEPTH(DR_DEPTH), .AW(DRAW), .INIT(1), .FILE({MEMDIR, "d_start.hex"})) ds (
            .clk(clk), .re(st == S_SEVD), .raddr(drow_addr), .rdata(d_start),
            .we(1'b0), .waddr({DRAW{1'b0}}), .wdata({DAW{1'b0}}));
        nm_ram #(.W(DLENW), .DEPTH(DR_DEPTH), .AW(DRAW), .INIT(1), .FILE({MEMDIR, "d_len.hex"})) dl (
            .clk(clk), .re(st == S_SEVD), .raddr(drow_addr), .rdata(d_len),
            .we(1'b0), .waddr({DRAW{1'b0}}), .wdata({DLENW{1'b0}}));
        nm_ram #(.W(DEW), .DEPTH(D_DEPTH), .AW(DAW), .INIT(1), .FILE({MEMDIR, "d_ent.hex"})) de (
            .clk(clk), .re(st == S_SDST), .raddr(dst_start + dk), .rdata(d_ent),
            .we(1'b0), .waddr({DAW{1'b0}}), .wdata({DEW{1'b0}}));
    end else begin : g_nodst
        assign d_start = {DAW{1'b0}};
        assign d_len = {DLENW{1'b0}};
        assign d_ent = {DEW{1'b0}};
    end endgenerate
    localparam [XB-1:0] MX = X;
    localparam [YB-1:0] MY = Y;
    wire [XB-1:0]    ent_x = d_ent[DEW-1 -: XB];
    wire [YB-1:0]    ent_y = d_ent[DEW-XB-1 -: YB];
    wire             tx_local = (ent_x == MX) && (ent_y == MY);  // counted, not sent
    wire [XB:0]      hops_x = (ent_x > MX) ? ent_x - MX : MX - ent_x;
    wire [YB:0]      hops_y = (ent_y > MY) ? ent_y - MY : MY - ent_y;
    assign tx_valid = MESH && (st == S_STX) && !tx_local;
    assign tx_data = {d_ent, ONE_VAL};

    // accumulators: LANES banks of {reached, sum} words (in the accumulate pipeline below)
    localparam BAW = (AAW > 2) ? AAW : 3;  // bank address width (wide enough for any bank)
    localparam B_DEPTH = (A_DEPTH + LANES - 1) / LANES;
    wire [LANES*(ACCW+1)-1:0] bank_rdata;

    // neuron state u, v, th (the adaptive threshold's state)
    wire             s_re = (st == S_NU) && (nq == 0);
    wire [SAW-1:0]   s_raddr = L_sbase + j;
    reg              s_we;
    reg [SAW-1:0]    s_waddr;
    reg [UW-1:0]     u_wdata;
    reg [23:0]       v_wdata;
    reg [24:0]       th_wdata;
    wire [UW-1:0]    u_rdata;
    wire [23:0]      v_rdata;
    wire [24:0]      th_rdata;
    nm_ram #(.W(UW), .DEPTH(S_DEPTH), .AW(SAW)) umem (
        .clk(clk), .re(s_re), .raddr(s_raddr), .rdata(u_rdata),
        .we(s_we), .waddr(s_waddr), .wdata(u_wdata));
    nm_ram #(.W(24), .DEPTH(S_DEPTH), .AW(SAW)) vmem (
        .clk(clk), .re(s_re), .raddr(s_raddr), .rdata(v_rdata),
        .we(s_we), .waddr(s_waddr), .wdata(v_wdata));
    generate if (HAS_TH) begin : g_th
        nm_ram #(.W(25), .DEPTH(S_DEPTH), .AW(SAW)) thmem (
            .clk(clk), .re(s_re), .raddr(s_raddr), .rdata(th_rdata),
            .we(s_we), .waddr(s_waddr), .wdata(th_wdata));
    end else begin : g_noth
        assign th_rdata = 25'd0;
    end endgenerate

    // neuron parameters: one set per layer, or one per neuron
    wire [PAW-1:0]   par_addr = L_pern ? L_pbase + j : L_pbase;
    wire [11:0]      par_du, par_dv, par_da;
    wire [16:0]      par_vth, par_vstep;
    wire [19:0]      par_bias;
    nm_ram #(.W(12), .DEPTH(P_DEPTH), .AW(PAW), .INIT(1), .FILE({MEMDIR, "p_du.hex"})) pdu (
        .clk(clk), .re(s_re), .raddr(par_addr), .rdata(par_du),
        .we(1'b0), .waddr({PAW{1'b0}}), .wdata(12'd0));
    nm_ram #(.W(12), .DEPTH(P_DEPTH), .AW(PAW), .INIT(1), .FILE({MEMDIR, "p_dv.hex"})) pdv (
        .clk(clk), .re(s_re), .raddr(par_addr), .rdata(par_dv),
        .we(1'b0), .waddr({PAW{1'b0}}), .wdata(12'd0));
    nm_ram #(.W(17), .DEPTH(P_DEPTH), .AW(PAW), .INIT(1), .FILE({MEMDIR, "p_vth.hex"})) pvth (
        .clk(clk), .re(s_re), .raddr(par_addr), .rdata(par_vth),
        .we(1'b0), .waddr({PAW{1'b0}}), .wdata(17'd0));
    nm_ram #(.W(20), .DEPTH(P_DEPTH), .AW(PAW), .INIT(1), .FILE({MEMDIR, "p_bias.hex"})) pbias (
        .clk(clk), .re(s_re), .raddr(par_addr), .rdata(par_bias),
        .we(1'b0), .waddr({PAW{1'b0}}), .wdata(20'd0));
    generate if (HAS_TH) begin : g_thp
        nm_ram #(.W(12), .DEPTH(P_DEPTH), .AW(PAW), .INIT(1), .FILE({MEMDIR, "p_da.hex"})) pda (
            .clk(clk), .re(s_re), .raddr(par_addr), .rdata(par_da),
            .we(1'b0), .waddr({PAW{1'b0}}), .wdata(12'd0));
        nm_ram #(.W(17), .DEPTH(P_DEPTH), .AW(PAW), .INIT(1), .FILE({MEMDIR, "p_vstep.hex"})) pvs (
            .clk(clk), .re(s_re), .raddr(par_addr), .rdata(par_vstep),
            .we(1'b0), .waddr({PAW{1'b0}}), .wdata(17'd0));
    end else begin : g_nothp
        assign par_da = 12'd0;
        assign par_vstep = 17'd0;
    end endgenerate

    // ---------------------------------------------------------------- accumulate pipeline
    // stage 1: weight (and target) read back; accumulator read issued
    // stage 2: accumulator read back; ACC[j] = old + w * x written; a write of the previous
    //          clock to the same address is forwarded (the RAM returns the old word)
    // (per lane; lane l of a slot reaches an accumulator of bank l, whose word is the
    // address divided by LANES)
    reg                  s1_v, s1_list, s1_count;
    reg [LANES-1:0]      s1_lv;             // lanes issued with an entry of the row
    reg [PW-1:0]         s1_p;
    reg [LENW-1:0]       s1_k;
    reg [VALW-1:0]       s1_val;
    reg [AAW-1:0]        s1_abase;
    wire [LANES-1:0]     lane_ok, lane_nz, s2_vs;
    wire [2:0]           n_ok, n_nz;        // synapses, and on non-zero weights, this clock
    // the neuron pipeline's accumulator word: read in stage A, cleared in stage B
    wire [AAW-1:0]       nu_addr;
    wire [AAW-1:0]       b_addr;
    integer              lq;

    always @(posedge clk) begin
        s1_v <= syn_re;
        s1_k <= k;
        s1_val <= ev_val;
        s1_list <= p_list[p];
        s1_abase <= acc_wbase;
        s1_count <= p_count[p];
        s1_p <= p;
        for (lq = 0; lq < LANES; lq = lq + 1) s1_lv[lq] <= syn_re && ({1'b0, k} + lq < {1'b0, syn_len});
        if (rst) begin
            s1_v <= 1'b0;
            s1_lv <= {LANES{1'b0}};
        end
    end
    generate for (ln = 0; ln < LANES; ln = ln + 1) begin : g_lane
        wire signed [WW-1:0]  w_l = w_rdata[ln*WW +: WW];
        wire [TEW-1:0]        t_l = t_rdata[ln*TEW +: TEW];
        wire                  ok = s1_lv[ln] && (!s1_list || LANES == 1 || t_l[TEW-1]);
        wire [IW-1:0]         tgt = s1_list ? t_l[IW-1:0] : s1_k + ln;  // sized by assignment
        wire [AAW-1:0]        addr = s1_abase + tgt;
        wire signed [PRW-1:0] prod;
        if (GRADED) begin : g_mul
            assign prod = w_l * $signed(s1_val);
        end else begin : g_nomul
            assign prod = w_l;
        end
        reg                   s2_v, fw_v;
        reg [AAW-1:0]         s2_addr, fw_addr;
        reg signed [PRW-1:0]  s2_prod;
        reg [ACCW-1:0]        fw_data;
        wire [ACCW:0]         rd;
        wire [ACCW-1:0]       s2_old = (fw_v && fw_addr == s2_addr) ? fw_data : rd[ACCW-1:0];
        wire [ACCW-1:0]       s2_sum = $signed(s2_old) + s2_prod;
        always @(posedge clk) begin
            s2_v <= ok;
            s2_addr <= addr;
            s2_prod <= prod;
            fw_v <= s2_v;
            fw_addr <= s2_addr;
            fw_data <= s2_sum;
            if (rst) begin
                s2_v <= 1'b0;
                fw_v <= 1'b0;
            end
        end
        // the bank's ports: the neuron pipeline's read and clear, the clear of a new sample,
        // or this lane's read (stage 1) and write (stage 2)
        reg                   re, we;
        reg [BAW-1:0]         ra, wa;
        reg [ACCW:0]          wd;
        always @* begin
            re = 1'b0; ra = addr / LANES;
            we = 1'b0; wa = s2_addr / LANES; wd = {1'b1, s2_sum};
            if (st == S_NU || b_v) begin
                re = (st == S_NU) && (L_np != 0) && (nu_addr % LANES == ln);
                ra = nu_addr / LANES;
                we = b_v && (L_np != 0) && (b_addr % LANES == ln);
                wa = b_addr / LANES;
                wd = {(ACCW + 1){1'b0}};
            end else if (st == S_CLEAR) begin
                we = (ca < B_DEPTH);
                wa = ca;
                wd = {(ACCW + 1){1'b0}};
            end else begin
                re = ok;
                we = s2_v;
            end
        end
        nm_ram #(.W(ACCW + 1), .DEPTH(B_DEPTH), .AW(BAW)) acc (
            .clk(clk), .re(re), .raddr(ra), .rdata(rd), .we(we), .waddr(wa), .wdata(wd));
        assign bank_rdata[ln*(ACCW+1) +: ACCW+1] = rd;
        assign lane_ok[ln] = ok;
        assign lane_nz[ln] = ok && (w_l != 0);
        assign s2_vs[ln] = s2_v;
    end endgenerate
    function [2:0] ones;
        input [LANES-1:0] bits;
        integer q;
        begin
            ones = 3'd0;
            for (q = 0; q < LANES; q = q + 1) ones = ones + bits[q];
        end
    endfunction
    assign n_ok = ones(lane_ok);
    assign n_nz = ones(lane_nz);

    // ---------------------------------------------------------------- neuron pipeline
    // A (state S_NU): read ACC[p][t][j] for each projection p into the layer, one per clock;
    //    with the first, read the neuron's state and parameters
    // B: a = sum over p of shift(ACC, exp_p), clear ACC; C: decay products;
    // D: decays rounded toward zero, dec(v) + bias; R: u (one conditional wrap), v before
    //    saturation, threshold; E: saturate, spike, reset, write the state back, emit.
    //    docs/fixed_point.md section 2, with dec(x, d) = (p + (p < 0 ? 4095 : 0)) >>> 12
    //    for p = x * keep.
    wire                   nu_last = (L_np == 0) || (nq + 1'b1 == L_np);
    reg                    b_v, b_first, b_last;
    reg [IW:0]             b_j;
    reg [PW:0]             b_q;
    wire [PW-1:0]          b_p = L_pfirst + b_q[PW-1:0];
    wire signed [EXPW-1:0] b_exp = p_exp[b_p];
    wire [EXPW-1:0]        b_nexp = -b_exp;
    wire                   b_acc = b_v && (L_np != 0);  // an accumulator word arrives
    wire [ACCW:0]          a_rdata = bank_rdata[(b_addr % LANES) * (ACCW + 1) +: ACCW + 1];
    wire signed [AW-1:0]   acc_ext = b_acc ? $signed(a_rdata[ACCW-1:0]) : ZERO_A;
    wire signed [AW-1:0]   b_shift = b_exp[EXPW-1] ? (acc_ext >>> b_nexp) : (acc_ext <<< b_exp);
    reg signed [AW-1:0]    b_sum;                 // the projections summed so far
    reg                    b_reached;
    wire signed [AW-1:0]   b_total = (b_first ? ZERO_A : b_sum) + b_shift;
    wire                   b_hit = (!b_first && b_reached) || (b_acc && a_rdata[ACCW]);
    // the state and parameters read with the first accumulator, held for the others
    reg [UW-1:0]           h_u;
    reg [23:0]             h_v;
    reg [24:0]             h_th;
    reg [11:0]             h_du, h_dv, h_da;
    reg [16:0]             h_vth, h_vstep;
    reg [19:0]             h_bias;
    reg                    c_v, c_hit;
    reg [IW:0]             c_j;
    reg signed [AW-1:0]    c_a;
    reg [UW-1:0]           c_u;
    reg [23:0]             c_vs;
    reg [24:0]             c_th;
    reg [11:0]             c_du, c_dv, c_da;
    reg [16:0]             c_vth, c_vstep;
    reg [19:0]             c_bias;
    reg                    d_v, d_hit;
    reg [IW:0]             d_j;
    reg signed [AW-1:0]    d_a;
    reg signed [UW+12:0]   pu;      // u * (4095 - du)
    reg signed [37:0]      pv;      // v * (4096 - dv)
    reg signed [38:0]      pth;     // th * (4096 - da)
    reg [16:0]             d_vth, d_vstep;
    reg [19:0]             d_bias;
    wire signed [UW+12:0]  pu_r = pu + (pu[UW+12] ? 4095 : 0);
    wire signed [37:0]     pv_r = pv + (pv[37] ? 4095 : 0);
    wire signed [38:0]     pth_r = pth + (pth[38] ? 4095 : 0);
    wire signed [UW:0]     u_dec = pu_r >>> 12;
    wire signed [24:0]     v_dec = pv_r >>> 12;
    wire signed [25:0]     th_dec = HAS_TH ? (pth_r >>> 12) : 26'sd0;
    reg                    r_v, r_hit;
    reg [IW:0]             r_j;
    reg signed [AW-1:0]    r_a;
    reg signed [UW:0]      r_udec;
    reg signed [25:0]      r_vb;    // dec(v) + bias
    reg signed [25:0]      r_th;
    reg signed [26:0]      r_theta; // (vth << 6) + dec(th)
    reg [16:0]             r_vstep;

    localparam signed [XW-1:0] P23 = 8388608, P24 = 16777216;
    localparam signed [YW-1:0] VMAX = 8388607;
    wire signed [XW-1:0]   x0 = r_udec + (r_a <<< 6);
    wire                   wrap_hi = x0 > P23;
    wire                   wrap_lo = x0 <= -P23;
    wire signed [XW-1:0]   x1 = wrap_hi ? x0 - P24 : (wrap_lo ? x0 + P24 : x0);
    wire signed [YW-1:0]   y0 = r_vb + x1;
    wire signed [26:0]     theta0 = $signed({4'b0, d_vth, 6'b0}) + th_dec;

    reg                    e_v, e_hit;
    reg [IW:0]             e_j;
    reg signed [UW-1:0]    f_u;
    reg signed [YW-1:0]    f_y;
    reg signed [26:0]      f_theta;
    reg signed [25:0]      f_th;
    reg                    f_wrap;
    reg [16:0]             f_vstep;
    // saturation, threshold and reset on the unsaturated v, side by side: y_c > theta is
    // VMAX > theta when v saturated high, false when low (theta >= 0)
    wire                   sat_hi = f_y > VMAX;
    wire                   sat_lo = f_y < -VMAX;
    wire signed [YW-1:0]   y_c = sat_hi ? VMAX : (sat_lo ? -VMAX : f_y);
    wire                   spiking = (L_kind != K_LI);
    wire                   above = sat_hi ? (VMAX > f_theta) : (!sat_lo && f_y > f_theta);
    wire                   spike = e_v && spiking && above;
    wire signed [YW-1:0]   y_sub = sat_hi ? VMAX - f_theta : f_y - f_theta;
    wire signed [YW-1:0]   v_new = spike ? (L_sub ? y_sub : ZERO_Y) : y_c;
    wire signed [25:0]     th_new = f_th + (spike ? $signed({3'b0, f_vstep, 6'b0}) : 26'sd0);

    // the data registers move only while the pipeline holds a neuron (a clock enable: no
    // toggling, and nothing for a simulator to evaluate, during the synapse walk)
    wire nu_active = (st == S_NU) || b_v || c_v || d_v || r_v || e_v;
    always @(posedge clk) begin
        b_v <= (st == S_NU);
        c_v <= b_v && b_last;
        d_v <= c_v;
        r_v <= d_v;
        e_v <= r_v;
        if (rst) begin
            b_v <= 1'b0;
            c_v <= 1'b0;
            d_v <= 1'b0;
            r_v <= 1'b0;
            e_v <= 1'b0;
        end
    end
    always @(posedge clk) if (nu_active) begin
        b_first <= (nq == 0);
        b_last <= nu_last;
        b_j <= j;
        b_q <= nq;
        if (b_v) begin
            b_sum <= b_total;
            b_reached <= b_hit;
        end
        if (b_v && b_first) begin
            h_u <= u_rdata; h_v <= v_rdata; h_th <= th_rdata;
            h_du <= par_du; h_dv <= par_dv; h_da <= par_da;
            h_vth <= par_vth; h_vstep <= par_vstep; h_bias <= par_bias;
        end
        c_j <= b_j;
        c_a <= b_total;
        c_hit <= b_hit;
        c_u <= b_first ? u_rdata : h_u;
        c_vs <= b_first ? v_rdata : h_v;
        c_th <= b_first ? th_rdata : h_th;
        c_du <= b_first ? par_du : h_du;
        c_dv <= b_first ? par_dv : h_dv;
        c_da <= b_first ? par_da : h_da;
        c_vth <= b_first ? par_vth : h_vth;
        c_vstep <= b_first ? par_vstep : h_vstep;
        c_bias <= b_first ? par_bias : h_bias;
        d_j <= c_j;
        d_a <= c_a;
        d_hit <= c_hit;
        pu <= $signed(c_u) * $signed({1'b0, 12'd4095 - c_du});
        pv <= $signed(c_vs) * $signed({1'b0, 13'd4096 - {1'b0, c_dv}});
        pth <= $signed(c_th) * $signed({1'b0, 13'd4096 - {1'b0, c_da}});
        d_vth <= c_vth;
        d_vstep <= c_vstep;
        d_bias <= c_bias;
        r_j <= d_j;
        r_hit <= d_hit;
        r_a <= d_a;
        r_udec <= u_dec;
        r_vb <= v_dec + $signed(d_bias);
        r_th <= th_dec;
        r_theta <= theta0;
        r_vstep <= d_vstep;
        e_j <= r_j;
        e_hit <= r_hit;
        f_u <= x1[UW-1:0];
        f_y <= y0;
        f_theta <= r_theta;
        f_th <= r_th;
        f_wrap <= wrap_hi | wrap_lo;
        f_vstep <= r_vstep;
    end

    // ---------------------------------------------------------------- memory port control
    wire [EPW-1:0] src_wptr = wptr[p_src[p]];
    wire [EPW-1:0] src_rbase = l_rbase[p_src[p]];
    wire [EPW-1:0] src_rend = l_rend[p_src[p]];
    wire [EPW:0]   src_low = {1'b0, src_rbase} + {1'b0, p_off[p]};
    wire [EPW-1:0] rptr0 = src_wptr - p_off[p];
    wire [EPW-1:0] rptr_now = ({1'b0, src_wptr} < src_low) ? rptr0 + (src_rend - src_rbase) : rptr0;
    wire [LW-1:0]  lcur = l[LW-1:0];
    wire [AAW+1:0] acc_w0 = aptr[p] + p_aoff[p];
    wire [AAW+1:0] acc_wnow = (acc_w0 >= p_aend[p]) ? acc_w0 - (p_aend[p] - p_accbase[p]) : acc_w0;

    always @* begin                    // the event rings' ports
        e_re = 1'b0; e_raddr = rptr_now[EAW-1:0];
        e_we = 1'b0; e_waddr = {EAW{1'b0}}; e_wdata = {EVW{1'b0}};
        case (st)
            S_PSEL: e_re = (t >= p_delay[p]);
            S_EV: begin
                e_re = (e != ecount);
                e_raddr = rptr + 1'b1 + e;
            end
            S_INPUT: begin
                e_we = in_valid && !in_end && l_ring[in_src];
                e_waddr = wptr[in_src] + 1'b1 + icnt[in_src];
                e_wdata = {in_val, in_idx};
            end
            S_INCOUNT: begin
                e_we = (l_kind[lcur] == K_INPUT) && l_ring[lcur];
                e_waddr = wptr[lcur];
                e_wdata = icnt[lcur];
            end
            S_NU_CNT: begin
                e_we = L_ring;
                e_waddr = L_wptr;
                e_wdata = scnt;
            end
            S_SSEL: begin              // mesh send: the count of the layer's events of step t
                e_re = 1'b1;
                e_raddr = wptr[lcur];
            end
            S_SEV: begin
                e_re = (e != ecount);
                e_raddr = rptr + 1'b1 + e;
            end
            default: ;
        endcase
        if (MESH && in_valid && in_ready && l_ring[in_src]) begin  // a packet into its ring
            e_we = 1'b1;
            e_waddr = wptr[in_src] + 1'b1 + icnt[in_src];
            e_wdata = {in_val, in_idx};
        end
        if (spike && L_ring) begin     // pipeline stage E: a spike into the layer's ring
            e_we = 1'b1;
            e_waddr = L_wptr + 1'b1 + scnt;
            e_wdata = {ONE_VAL, e_j[IW-1:0]};
        end
    end
    // stages A and B of the neuron pipeline: read, then clear, accumulators (g_lane's ports)
    assign nu_addr = aptr[L_pfirst + nq[PW-1:0]] + j;
    assign b_addr = aptr[b_p] + b_j;

    always @* begin
        s_we = 1'b0; s_waddr = L_sbase + e_j;
        u_wdata = f_u; v_wdata = v_new[23:0]; th_wdata = th_new[24:0];
        if (st == S_CLEAR) begin
            s_we = (ca < S_DEPTH); s_waddr = ca;
            u_wdata = {UW{1'b0}}; v_wdata = 24'd0; th_wdata = 25'd0;
        end else if (e_v) begin
            s_we = 1'b1;
        end
    end

    // ---------------------------------------------------------------- counters
    integer ii;
    reg [CNTW-1:0] c_spk [0:NL-1];
    reg [CNTW-1:0] c_upd [0:NL-1];
    reg [CNTW-1:0] c_uns [0:NL-1];
    reg [CNTW-1:0] c_act [0:NL-1];
    reg [CNTW-1:0] c_evt [0:NP-1];
    reg [CNTW-1:0] c_nz  [0:NP-1];
    always @(posedge clk) begin        // registered: cnt_data follows cnt_sel by a clock
        cnt_data <= {CNTW{1'b0}};
        if (cnt_sel < NL) cnt_data <= c_spk[cnt_sel];
        else if (cnt_sel < 2 * NL) cnt_data <= c_upd[cnt_sel - NL];
        else if (cnt_sel < 3 * NL) cnt_data <= c_uns[cnt_sel - 2 * NL];
        else if (cnt_sel < 4 * NL) cnt_data <= c_act[cnt_sel - 3 * NL];
        else if (cnt_sel < 4 * NL + NP) cnt_data <= c_evt[cnt_sel - 4 * NL];
        else if (cnt_sel < 4 * NL + 2 * NP) cnt_data <= c_nz[cnt_sel - 4 * NL - NP];
        else if (cnt_sel == 4 * NL + 2 * NP) cnt_data <= c_msg;
        else if (cnt_sel == 4 * NL + 2 * NP + 1) cnt_data <= c_hops;
    end
    always @(posedge clk) begin     // synaptic events, and those on a non-zero weight
        if (s1_v && s1_count) begin
            c_evt[s1_p] <= c_evt[s1_p] + n_ok;
            c_nz[s1_p] <= c_nz[s1_p] + n_nz;
        end
        if (rst) for (ii = 0; ii < NP; ii = ii + 1) begin
            c_evt[ii] <= 0;
            c_nz[ii] <= 0;
        end
    end

    // ---------------------------------------------------------------- the sequencer
    always @(posedge clk) begin
        done <= 1'b0;
        out_valid <= 1'b0;
        tr_valid <= 1'b0;
        case (st)
            S_IDLE: if (start) begin
                first_r <= first;
                l <= 0;
                o <= 0;
                gos <= 0;
                if (first) begin
                    t <= 0;
                    ca <= 0;
                    st <= S_CLEAR;
                end else begin
                    t <= t + 1'b1;
                    st <= S_ADV;
                end
            end
            S_CLEAR: begin
                ca <= ca + 1'b1;         // state and accumulators back to zero
                if (ca == CLR_LAST) st <= S_ADV;
            end
            S_ADV: begin              // move every ring to this step's region
                if (first_r) wptr[lcur] <= l_rbase[lcur];
                else if (l_ring[lcur])
                    wptr[lcur] <= (wptr[lcur] + l_rsize[lcur] == l_rend[lcur]) ? l_rbase[lcur]
                                  : wptr[lcur] + l_rsize[lcur];
                icnt[lcur] <= 0;
                if (l == NL - 1) begin
                    pa <= 0;
                    st <= S_ADVP;
                end else l <= l + 1'b1;
            end
            S_ADVP: begin             // and every accumulator ring to this step's slot
                if (first_r) aptr[pa] <= p_accbase[pa];
                else aptr[pa] <= (aptr[pa] + p_an[pa] == p_aend[pa]) ? p_accbase[pa]
                                 : aptr[pa] + p_an[pa];
                if (pa == NP - 1) st <= MESH ? S_WAIT : S_INPUT;
                else pa <= pa + 1'b1;
            end
            S_INPUT: if (in_valid) begin
                if (in_end) begin
                    l <= 0;
                    st <= S_INCOUNT;
                end else begin
                    icnt[in_src] <= icnt[in_src] + 1'b1;
                end
            end
            S_INCOUNT: begin          // write each input's event count into its region
                if (l == NL - 1) begin
                    if (!MESH) o <= 0;
                    // on a mesh, the go after the last wave ends the step
                    st <= (MESH && gos == m_waves[0] + 1'b1) ? S_DONE : S_OP;
                end else l <= l + 1'b1;
            end
            S_WAIT: if (go) begin     // mesh: every core waits, no packet is on its way
                gos <= gos + 1'b1;
                l <= 0;
                st <= S_INCOUNT;
            end
            S_OP: begin
                if (o == NO) st <= MESH ? S_WAIT : S_DONE;
                else if (MESH && o_wave[o[OW-1:0]] != wv) st <= S_WAIT;
                else case (o_kind[o[OW-1:0]])
                    2'd1: begin
                        p <= o_idx[o[OW-1:0]];
                        st <= S_PSEL;
                    end
                    2'd2: begin
                        l <= o_idx[o[OW-1:0]];
                        st <= S_LSTART;
                    end
                    2'd3: begin       // mesh: send the layer's spikes of this step
                        l <= o_idx[o[OW-1:0]];
                        st <= S_SSEL;
                    end
                    default: o <= o + 1'b1;
                endcase
            end
            S_LSTART: begin
                L_kind <= l_kind[lcur];
                L_sub <= l_sub[lcur];
                L_n <= l_n[lcur];
                L_sbase <= l_sbase[lcur];
                L_pbase <= l_pbase[lcur];
                L_pern <= l_pern[lcur];
                L_ring <= l_ring[lcur];
                L_np <= l_np[lcur];
                L_pfirst <= l_pfirst[lcur];
                L_wptr <= wptr[lcur];
                st <= S_DRAIN;
            end
            S_PSEL: begin             // the ring read of the region's count is issued here
                if (t < p_delay[p]) begin
                    o <= o + 1'b1;    // nothing delivered before step d0
                    st <= S_OP;
                end else begin
                    rptr <= rptr_now;
                    acc_wbase <= acc_wnow;
                    st <= S_PCNT;
                end
            end
            S_PCNT: begin
                ecount <= e_rdata[IW:0];
                e <= 0;
                st <= S_EV;
            end
            S_EV: begin
                if (e == ecount) begin
                    o <= o + 1'b1;
                    st <= S_OP;
                end else st <= S_EVD;
            end
            S_EVD: begin              // event read back; its fan-out row read issued
                ev_val <= GRADED ? e_rdata[EVW-1:IW] : ONE_VAL;
                st <= S_ROW;
            end
            S_ROW: begin
                syn_start <= row_start;
                syn_len <= row_len;
                k <= 0;
                if (row_len == 0) begin
                    e <= e + 1'b1;
                    st <= S_EV;
                end else st <= S_SYN;
            end
            S_SYN: begin              // one slot (LANES synapses) issued per clock
                k <= k + LANES;
                if ({1'b0, k} + LANES >= {1'b0, syn_len}) begin
                    e <= e + 1'b1;
                    st <= S_EV;
                end
            end
            S_DRAIN: if (!s1_v && !(|s2_vs)) begin
                j <= 0;
                nq <= 0;
                scnt <= 0;
                st <= (L_n == 0) ? S_NU_CNT : S_NU;
            end
            S_NU: begin               // one accumulator read issued per clock
                if (nu_last) begin
                    nq <= 0;
                    j <= j + 1'b1;
                    if (j + 1'b1 == L_n) st <= S_NU_WAIT;
                end else nq <= nq + 1'b1;
            end
            S_NU_WAIT: if (!b_v && !c_v && !d_v && !r_v && !e_v) st <= S_NU_CNT;
            S_NU_CNT: begin           // the spike count closes the layer's region
                o <= o + 1'b1;
                st <= S_OP;
            end
            S_SSEL: begin             // mesh send: the count's read is issued here
                rptr <= wptr[lcur];
                st <= S_SCNT;
            end
            S_SCNT: begin
                ecount <= e_rdata[IW:0];
                e <= 0;
                st <= S_SEV;
            end
            S_SEV: begin
                if (e == ecount) begin
                    o <= o + 1'b1;
                    st <= S_OP;
                end else st <= S_SEVD;
            end
            S_SEVD: st <= S_SROW;     // event read back; its destination list read issued
            S_SROW: begin
                dst_start <= d_start;
                dst_len <= d_len;
                dk <= 0;
                if (d_len == 0) begin
                    e <= e + 1'b1;
                    st <= S_SEV;
                end else st <= S_SDST;
            end
            S_SDST: st <= S_STX;      // destination read issued
            S_STX: if (tx_local || tx_ready) begin
                c_msg <= c_msg + 1'b1;
                c_hops <= c_hops + hops_x + hops_y;
                dk <= dk + 1'b1;
                if (dk + 1'b1 == dst_len) begin
                    e <= e + 1'b1;
                    st <= S_SEV;
                end else st <= S_SDST;
            end
            S_DONE: begin
                done <= 1'b1;
                st <= S_IDLE;
            end
            default: st <= S_IDLE;
        endcase
        if (e_v) begin                // pipeline stage E: emit and count
            out_valid <= spike || !spiking;
            out_layer <= lcur;
            out_idx <= e_j[IW-1:0];
            out_value <= spiking ? 24'sd1 : y_c[23:0];
            tr_valid <= 1'b1;
            tr_u <= f_u;
            tr_v <= v_new[23:0];
            c_upd[lcur] <= c_upd[lcur] + 1'b1;
            c_uns[lcur] <= c_uns[lcur] + f_wrap + (sat_hi | sat_lo);
            if (spike || e_hit) c_act[lcur] <= c_act[lcur] + 1'b1;
            if (spike) begin
                c_spk[lcur] <= c_spk[lcur] + 1'b1;
                scnt <= scnt + 1'b1;
            end
        end
        if (MESH && in_valid && in_ready) icnt[in_src] <= icnt[in_src] + 1'b1;
        if (rst) begin
            st <= S_IDLE;
            t <= 0;
            c_msg <= 0;
            c_hops <= 0;
            for (ii = 0; ii < NL; ii = ii + 1) begin
                c_spk[ii] <= 0;
                c_upd[ii] <= 0;
                c_uns[ii] <= 0;
                c_act[ii] <= 0;
                wptr[ii] <= 0;
                icnt[ii] <= 0;
            end
            for (ii = 0; ii < NP; ii = ii + 1) aptr[ii] <= 0;
        end
    end
endmodule
`default_nettype wire
