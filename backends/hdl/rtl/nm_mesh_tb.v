// nm_mesh_tb: the mesh's testbench, clocked from outside (nm_mesh_tb_icarus.v under Icarus,
// tb_main.cpp under Verilator). It reads stim.txt, runs every sample of the batch one after
// the other (first = 1 starts a sample) and writes resp.txt:
//   E core layer neuron value      an output event of a core (its program's layer numbers)
//   U core layer neuron u v        every neuron update, when the stimulus asks for a trace
//   T sample step cycles           the step's end and its clock cycles (start to done)
//   K core counter value           every core's counters, after the last sample
//   R counter value                the routers' counters (5 per router, then host packets)
//   W core clocks                  clocks each core worked (busy and not at the barrier)
//   END
// stim.txt: "samples steps trace stall_bit stall_period", then per step one "x y layer neuron
// value" line per host packet and "-1 0 0 0 0" to close the step. stall_bit >= 0 holds that
// router output's ready low on all but one clock in stall_period (a busy link).
`default_nettype none
module nm_mesh_tb
`include "nm_params.vh"
(
    input wire clk
);
    localparam NC = R * C;
    localparam NCNT = 4 * NL + 2 * NP + 2;
    localparam NRC = 5 * NC + 1;
    reg              rst = 1'b1;
    reg              start = 1'b0, first = 1'b0;
    reg              h_valid = 1'b0, h_end = 1'b0;
    reg [XB-1:0]     hx = 0;
    reg [YB-1:0]     hy = 0;
    reg [LW-1:0]     hl = 0;
    reg [IW-1:0]     hi = 0;
    reg [VALW-1:0]   hv = 0;
    reg [CCW-1:0]    cnt_core = 0;
    reg [CSW-1:0]    cnt_sel = 0;
    reg [RCW-1:0]    rc_sel = 0;
    reg [NC*4-1:0]   stall = 0;
    wire             h_ready, done, busy;
    wire [NC-1:0]    out_valid, tr_valid;
    wire [NC*LW-1:0] out_layer;
    wire [NC*IW-1:0] out_idx;
    wire [NC*24-1:0] out_value, tr_v;
    wire [NC*UW-1:0] tr_u;
    wire [CNTW-1:0]  cnt_data;
    wire [31:0]      rc_data;

    nm_mesh #(
`include "nm_mesh_inst.vh"
    ) mesh (
        .clk(clk), .rst(rst), .start(start), .first(first), .done(done), .busy(busy),
        .h_valid(h_valid), .h_ready(h_ready), .h_end(h_end), .h_data({hx, hy, hl, hi, hv}),
        .out_valid(out_valid), .out_layer(out_layer), .out_idx(out_idx),
        .out_value(out_value), .tr_valid(tr_valid), .tr_u(tr_u), .tr_v(tr_v),
        .cnt_core(cnt_core), .cnt_sel(cnt_sel), .cnt_data(cnt_data), .rc_sel(rc_sel),
        .rc_data(rc_data), .stall(stall));

    integer fin, fout, r, nb, nt, trace, sbit, speriod, b, tt, px, py, pl, pi, pv, rc, i, k;
    reg [63:0] cyc, clock;
    reg [63:0] work [0:NC-1];
    reg [2:0]  ph;
    localparam PH_RST = 3'd0, PH_STEP = 3'd1, PH_FEED = 3'd2, PH_WAIT = 3'd3, PH_CNT = 3'd4,
               PH_CNTW = 3'd5, PH_RCNT = 3'd6, PH_END = 3'd7;

    initial begin
        fin = $fopen("stim.txt", "r");
        fout = $fopen("resp.txt", "w");
        if (fin == 0 || fout == 0) begin
            $display("nm_mesh_tb: cannot open stim.txt or resp.txt");
            $finish;
        end
        r = $fscanf(fin, "%d %d %d %d %d\n", nb, nt, trace, sbit, speriod);
        b = 0; tt = 0; rc = 0; i = 0; k = 0;
        for (k = 0; k < NC; k = k + 1) work[k] = 0;
        cyc = 0; clock = 0;
        ph = PH_RST;
    end

    task next_packet;
        begin
            r = $fscanf(fin, "%d %d %d %d %d\n", px, py, pl, pi, pv);
            h_end <= (px < 0);
            hx <= px; hy <= py; hl <= pl; hi <= pi; hv <= pv;
        end
    endtask

    always @(posedge clk) begin
        for (k = 0; k < NC; k = k + 1) begin
            if (out_valid[k])
                $fwrite(fout, "E %0d %0d %0d %0d\n", k, out_layer[k * LW +: LW],
                        out_idx[k * IW +: IW], $signed(out_value[k * 24 +: 24]));
            if (trace != 0 && tr_valid[k])
                $fwrite(fout, "U %0d %0d %0d %0d %0d\n", k, out_layer[k * LW +: LW],
                        out_idx[k * IW +: IW], $signed(tr_u[k * UW +: UW]),
                        $signed(tr_v[k * 24 +: 24]));
        end
        for (k = 0; k < NC; k = k + 1)
            if (mesh.c_busy[k] && !mesh.c_wait[k]) work[k] <= work[k] + 1'b1;
        clock <= clock + 1'b1;
        if (sbit >= 0) stall[sbit] <= (clock % speriod) != 0;
        if (busy) cyc <= cyc + 1'b1;
        start <= 1'b0;
        case (ph)
            PH_RST: begin
                rc <= rc + 1;
                if (rc == 3) begin
                    rst <= 1'b0;
                    ph <= PH_STEP;
                end
            end
            PH_STEP: begin
                if (b == nb) begin
                    i <= 0;
                    k = 0;
                    ph <= PH_CNT;
                end else begin
                    start <= 1'b1;
                    first <= (tt == 0);
                    cyc <= 0;
                    next_packet;
                    h_valid <= 1'b1;
                    ph <= PH_FEED;
                end
            end
            PH_FEED: if (h_ready) begin
                if (h_end) begin
                    h_valid <= 1'b0;
                    ph <= PH_WAIT;
                end else next_packet;
            end
            PH_WAIT: if (done) begin
                $fwrite(fout, "T %0d %0d %0d\n", b, tt, cyc);
                $fflush(fout);
                if (tt == nt - 1) begin
                    tt <= 0;
                    b <= b + 1;
                end else tt <= tt + 1;
                ph <= PH_STEP;
            end
            PH_CNT: begin             // cnt_data is registered: read it two clocks later
                cnt_sel <= i;
                rc <= 0;
                ph <= PH_CNTW;
            end
            PH_CNTW: if (rc == 1) begin
                $fwrite(fout, "K %0d %0d %0d\n", cnt_core, i, cnt_data);
                if (i == NCNT - 1) begin
                    i <= 0;
                    if (cnt_core == NC - 1) ph <= PH_RCNT;
                    else begin
                        cnt_core <= cnt_core + 1'b1;
                        ph <= PH_CNT;
                    end
                end else begin
                    i <= i + 1;
                    ph <= PH_CNT;
                end
            end else rc <= rc + 1;
            PH_RCNT: begin            // the router counters are plain registers
                $fwrite(fout, "R %0d %0d\n", rc_sel, rc_data);
                if (rc_sel == NRC - 1) begin
                    for (k = 0; k < NC; k = k + 1) $fwrite(fout, "W %0d %0d\n", k, work[k]);
                    ph <= PH_END;
                end
                else rc_sel <= rc_sel + 1'b1;
            end
            default: begin
                $fwrite(fout, "END\n");
                $fclose(fout);
                $fclose(fin);
                $finish;
            end
        endcase
    end
endmodule
`default_nettype wire
