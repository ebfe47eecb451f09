// nm_tb: the testbench, clocked from outside (by nm_tb_icarus.v under Icarus, by tb_main.cpp
// under Verilator). It reads stim.txt, runs every sample of the batch one after the other (a
// new sample starts with first = 1, which clears the neuron state), and writes resp.txt:
//   E layer neuron value         an output event (a spike: value 1; an LI layer: its v)
//   U layer neuron u v           every neuron update, when the stimulus asks for a trace
//   T sample step cycles         the step's end and its clock cycles (start to done)
//   K counter value              the hardware counters, after the last sample
//   END
// stim.txt: "samples steps trace", then per step one "source neuron value" line per input
// event and "-1 0 0" to close the step. Both files live in the working directory.
`default_nettype none
module nm_tb
`include "nm_params.vh"
(
    input wire clk
);
    localparam NCNT = 4 * NL + 2 * NP;
    reg              rst = 1'b1;
    reg              start = 1'b0, first = 1'b0;
    reg              in_valid = 1'b0, in_end = 1'b0;
    reg [LW-1:0]     in_src = 0;
    reg [IW-1:0]     in_idx = 0;
    reg [VALW-1:0]   in_val = 0;
    reg [CSW-1:0]    cnt_sel = 0;
    wire             in_ready, done, busy, out_valid, tr_valid;
    wire [LW-1:0]    out_layer;
    wire [IW-1:0]    out_idx;
    wire signed [23:0] out_value, tr_v;
    wire signed [UW-1:0] tr_u;
    wire [CNTW-1:0]  cnt_data;

    nm_core #(
`include "nm_core_inst.vh"
    ) core (
        .clk(clk), .rst(rst), .start(start), .first(first), .done(done), .busy(busy),
        .in_valid(in_valid), .in_ready(in_ready), .in_end(in_end), .in_src(in_src),
        .in_idx(in_idx), .in_val(in_val), .out_valid(out_valid), .out_layer(out_layer),
        .out_idx(out_idx), .out_value(out_value), .tr_valid(tr_valid), .tr_u(tr_u),
        .tr_v(tr_v), .cnt_sel(cnt_sel), .cnt_data(cnt_data));

    integer fin, fout, r, nb, nt, trace, b, tt, src, idx, val, rc, i;
    reg [63:0] cyc;
    reg [2:0]  ph;
    localparam PH_RST = 3'd0, PH_STEP = 3'd1, PH_FEED = 3'd2, PH_WAIT = 3'd3, PH_CNT = 3'd4,
               PH_CNTW = 3'd5, PH_END = 3'd6;

    initial begin
        fin = $fopen("stim.txt", "r");
        fout = $fopen("resp.txt", "w");
        if (fin == 0 || fout == 0) begin
            $display("nm_tb: cannot open stim.txt or resp.txt");
            $finish;
        end
        r = $fscanf(fin, "%d %d %d\n", nb, nt, trace);
        b = 0; tt = 0; rc = 0; i = 0; src = 0; idx = 0; val = 0;
        cyc = 0;
        ph = PH_RST;
    end

    always @(posedge clk) begin
        if (out_valid) $fwrite(fout, "E %0d %0d %0d\n", out_layer, out_idx, out_value);
        if (trace != 0 && tr_valid)
            $fwrite(fout, "U %0d %0d %0d %0d\n", out_layer, out_idx, tr_u, tr_v);
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
                    ph <= PH_CNT;
                end else begin
                    start <= 1'b1;
                    first <= (tt == 0);
                    cyc <= 0;
                    r = $fscanf(fin, "%d %d %d\n", src, idx, val);
                    in_valid <= 1'b1;
                    in_end <= (src < 0);
                    in_src <= src;
                    in_idx <= idx;
                    in_val <= val;
                    ph <= PH_FEED;
                end
            end
            PH_FEED: if (in_ready) begin
                if (in_end) begin
                    in_valid <= 1'b0;
                    ph <= PH_WAIT;
                end else begin
                    r = $fscanf(fin, "%d %d %d\n", src, idx, val);
                    in_end <= (src < 0);
                    in_src <= src;
                    in_idx <= idx;
                    in_val <= val;
                end
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
                $fwrite(fout, "K %0d %0d\n", i, cnt_data);
                if (i == NCNT - 1) ph <= PH_END;
                else begin
                    i <= i + 1;
                    ph <= PH_CNT;
                end
            end else rc <= rc + 1;
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
