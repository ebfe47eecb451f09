"""Synaptic-operation counts and energy estimates against oracles that are not the code under
test: counts worked by hand, a connection map built with PyTorch's transposed convolution (as
sinabs counts synops), the published figures the issue names, and measured counts for the
analytic estimate. Every count is checked on both implementations: the emulator's counters
and the analysis' derivation from recorded spikes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import nmcompile
from nmcompile.analysis import analytic, estimate, from_result, from_spikes, static_counts
from nmcompile.analysis.energy import available, load_device, read_device
from nmcompile.analysis.rates import fanin, measured_rates
from nmcompile.cli import main
from nmcompile.errors import FormatError, NmcompileError
from nmcompile.ir import LIF, Dense, Graph, Input, Output, SumPool2d
from nmcompile.ir.quantized import QLIF, QConv2d, QDense, QSparse
from nmcompile.ir.synapses import conv_fanout

# ------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------


def chain(*nodes, in_shape, extra_edges=()) -> Graph:
    """Input "x" -> nodes (named by their key) -> Output "o", in order."""
    g = Graph()
    g.add_node("x", Input(in_shape))
    prev = "x"
    for name, node in nodes:
        g.add_node(name, node)
        g.add_edge(prev, name)
        prev = name
    g.add_node("o", Output())
    g.add_edge(prev, "o")
    for src, dst, d in extra_edges:
        g.add_edge(src, dst, d)
    return g


def both(g: Graph, x: np.ndarray):
    """Counts from the emulator's counters and from its recorded spikes, which must agree."""
    T, B = x.shape[:2]
    r = nmcompile.run(g, x, record=True)
    exact = from_result(g, {"x": x}, r, T, B)
    values = {"x": x, **r.spikes}
    derived = from_spikes(g, values, T, B)
    for a, b in zip(exact.layers, derived.layers, strict=True):
        assert a == b, (a, b)
    return exact, r


QUIET = QLIF(vth=100_000, du=4095, dv=4095)  # never spikes on these inputs

# ------------------------------------------------------------------------------------------
# hand-derived counts
# ------------------------------------------------------------------------------------------


def test_dense_counts_by_hand() -> None:
    # 3 inputs -> 2 neurons, one stored zero (column 1 has one non-zero weight).
    w = [[4, 0, 2], [6, 8, 0]]
    x = np.zeros((3, 1, 3), np.int64)
    x[0, 0] = [1, 1, 0]   # 2 spikes -> 2 x 2 stored synapses; non-zero: col0 2 + col1 1
    x[1, 0] = [0, 0, 1]   # 1 spike  -> 2 stored;            non-zero: col2 1
    # step 2: silent -> no neuron is reached
    g = chain(("w", QDense(w)), ("n", QUIET), in_shape=(3,))
    c, r = both(g, x)
    w_row, n_row = c.layer("w"), c.layer("n")
    assert (w_row.synapses, w_row.nonzero_synapses, w_row.weights) == (6, 4, 6)
    assert (w_row.synaptic_ops, w_row.synaptic_ops_nonzero) == (6, 4)
    assert r.counters["synaptic_events"] == {"w": 6}
    assert (n_row.neuron_updates, n_row.active_updates, n_row.idle_updates) == (6, 4, 2)
    assert n_row.spikes == 0 and c.layer("x").spikes == 3
    # memory: weights hold 4 bits here (|8| needs 4 bits and a sign), u and v 24 bits each
    assert w_row.weight_bits == 6 * 5 and n_row.state_bits == 2 * 2 * 24


def test_sparse_stores_only_its_entries() -> None:
    # the same matrix as QSparse without its zeros, plus one listed zero (stored, weight 0)
    rows, cols, vals = [0, 0, 1, 1, 1], [0, 2, 0, 1, 2], [4, 2, 6, 8, 0]
    x = np.zeros((2, 2, 3), np.int64)
    x[0, 0] = [1, 1, 0]  # fan-outs: col0 2, col1 1 -> 3 events; non-zero 3
    x[1, 1] = [0, 0, 1]  # col2 2 stored (one is the listed zero) -> 2 events; non-zero 1
    g = chain(("w", QSparse(rows, cols, vals, (2, 3))), ("n", QUIET), in_shape=(3,))
    c, _ = both(g, x)
    w_row = c.layer("w")
    assert (w_row.synapses, w_row.nonzero_synapses) == (5, 4)
    assert (w_row.synaptic_ops, w_row.synaptic_ops_nonzero) == (5, 4)
    assert w_row.index_bits == 5 * 1  # one bit picks one of 2 targets
    # step 0 sample 0 reaches both neurons; step 1 sample 1 (col 2) reaches both
    assert c.layer("n").active_updates == 4


def test_conv_stride_and_padding_by_hand() -> None:
    # 1x4x4 input, 3x3 kernel, stride 2, padding 1 -> 2x2 outputs. Per axis, output i reads
    # input rows 2i-1+k: i=0 -> -1, 0, 1; i=1 -> 1, 2, 3. Fan-out per row: [1, 2, 1, 1], so
    # fanout(h, w) = f(h) f(w) per output channel; synapses = 5 x 5 per channel.
    w = np.ones((2, 1, 3, 3), np.int64)
    w[0, 0, 1, 1] = 0  # channel 0 stores a zero at the centre tap
    x = np.zeros((3, 1, 1, 4, 4), np.int64)
    x[0, 0, 0, 0, 0] = 1  # read by output (0,0) through tap (1,1) only: 1 per channel
    x[0, 0, 0, 1, 1] = 1  # read by all 4 outputs through corner taps (0/2, 0/2): 4 per channel
    x[1, 0, 0, 3, 3] = 1  # read by output (1,1) through tap (2,2): 1 per channel
    g = chain(("c", QConv2d(w, stride=2, padding=1)), ("n", QUIET), in_shape=(1, 4, 4))
    c, _ = both(g, x)
    row = c.layer("c")
    assert (row.synapses, row.nonzero_synapses, row.weights) == (50, 46, 18)
    # events: (1 + 4 + 1) x 2 channels; on non-zero weights channel 0 loses the centre tap
    assert (row.synaptic_ops, row.synaptic_ops_nonzero) == (12, 11)
    # active: step 0 all 8 outputs; step 1 output (1,1) of both channels; step 2 none
    n = c.layer("n")
    assert (n.neuron_updates, n.active_updates) == (24, 10)


def test_sum_pooling_by_hand() -> None:
    # A float graph: SumPool 2x2 stride 1 over 1x3x3 -> 2x2; folded into a depthwise conv.
    # Fan-out: corners 1, edges 2, centre 4 (per axis [1, 2, 1]).
    g = chain(("p", SumPool2d(2, 1)), ("n", LIF(beta=0.5, threshold=10.0)), in_shape=(1, 3, 3))
    x = np.zeros((2, 1, 1, 3, 3))
    x[0, 0, 0, 0, 0] = x[0, 0, 0, 1, 1] = x[1, 0, 0, 0, 1] = 1  # 1 + 4 | 2 events
    est = estimate(g, x, "loihi")
    proj = est.counts.layer("n.from_x")
    assert proj.type == "Conv2d" and proj.synapses == 16
    assert proj.synaptic_ops == 7 and proj.synaptic_ops_nonzero == 7
    n = est.counts.layer("n")
    assert (n.neuron_updates, n.active_updates) == (8, 4 + 2)  # step 0 all; step 1 top row
    assert proj.weight_bits == 4 * 32  # a float graph: 32-bit weights (the 2x2 kernel)
    # the quantised graph counts the same on the emulator's counters
    q = nmcompile.quantize(g)
    qc = estimate(q, x.astype(np.int64), "loihi").counts
    assert qc.layer("n.from_x").synaptic_ops == 7 and qc.backend == "emulator"


def test_recurrent_counts_by_hand() -> None:
    # u and v cleared every step (du = dv = 4095): a neuron spikes when its input a > vth = 5.
    # Input weights 10 (x0 -> n0, x1 -> n1); recurrence (delay 1) n0, n1 -> n2 with weight 3:
    # n2 spikes when n0 and n1 both spiked on the previous step (6 > 5).
    w_in = [[10, 0], [0, 10], [0, 0]]
    w_rec = [[0, 0, 0], [0, 0, 0], [3, 3, 0]]
    x = np.zeros((6, 1, 2), np.int64)
    x[0, 0], x[1, 0], x[3, 0] = [1, 1], [1, 0], [0, 1]
    g = chain(("w", QDense(w_in)), ("n", QLIF(vth=5, du=4095, dv=4095)), in_shape=(2,),
              extra_edges=[])
    g.add_node("r", QDense(w_rec))
    g.add_edge("n", "r", 1)
    g.add_edge("r", "n")
    c, r = both(g, x)
    spikes = r.output()[:, 0]
    # t0 {n0, n1}; t1 {n0, n2}; t2 {}; t3 {n1}; t4 {}; t5 {}
    assert spikes.tolist() == [[1, 1, 0], [1, 0, 1], [0, 0, 0], [0, 1, 0], [0, 0, 0],
                               [0, 0, 0]]
    assert c.layer("n").spikes == 5
    # input: 4 spikes x 3 stored synapses; one non-zero weight per input column
    assert (c.layer("w").synaptic_ops, c.layer("w").synaptic_ops_nonzero) == (12, 4)
    # recurrence sees step t-1: t1 <- 2 spikes, t2 <- 2, t3 <- 0, t4 <- 1, t5 <- 0
    # -> 5 x 3 stored; non-zero: n0 and n1 columns hold one each, n2's none: 2 + 1 + 0 + 1
    assert (c.layer("r").synaptic_ops, c.layer("r").synaptic_ops_nonzero) == (15, 4)
    # every step but t5 delivers an event (dense: reaches all three): 5 x 3 active
    assert (c.layer("n").active_updates, c.layer("n").idle_updates) == (15, 3)


# ------------------------------------------------------------------------------------------
# convolutions against a connection map (sinabs: a ones kernel, transposed)
# ------------------------------------------------------------------------------------------


def connection_map(weight: np.ndarray, in_shape, out_shape, stride, padding, dilation,
                   groups) -> np.ndarray:
    """Synapses per input position: every output of a ones map sent back through the
    (stored-tap) kernel by a transposed convolution."""
    h_full = (out_shape[1] - 1) * stride[0] - 2 * padding[0] + dilation[0] * (
        weight.shape[2] - 1) + 1
    w_full = (out_shape[2] - 1) * stride[1] - 2 * padding[1] + dilation[1] * (
        weight.shape[3] - 1) + 1
    y = F.conv_transpose2d(torch.ones(1, *out_shape, dtype=torch.float64),
                           torch.as_tensor(weight, dtype=torch.float64), None, stride, padding,
                           (in_shape[1] - h_full, in_shape[2] - w_full), groups, dilation)
    return y.reshape(-1).numpy()


@pytest.mark.parametrize("seed", range(6))
def test_conv_fanout_equals_the_connection_map(seed: int) -> None:
    rng = np.random.default_rng(seed)
    groups = int(rng.choice([1, 2]))
    c_in, c_out = 2 * groups, 2 * groups
    kh, kw = (int(k) for k in rng.integers(1, 4, 2))
    stride, padding = tuple(int(s) for s in rng.integers(1, 3, 2)), (int(kh // 2), int(kw // 2))
    dilation = tuple(int(d) for d in rng.integers(1, 3, 2))
    in_shape = (c_in, int(rng.integers(5, 9)), int(rng.integers(5, 9)))
    weight = rng.integers(-2, 3, (c_out, c_in // groups, kh, kw))  # some zeros
    node = QConv2d(weight, stride=stride, padding=padding, dilation=dilation, groups=groups)
    out_shape = node.output_shape(in_shape, "c")
    geometry = (stride, padding, dilation, groups)
    fan = conv_fanout(weight, in_shape, out_shape, *geometry)
    nz = conv_fanout(weight, in_shape, out_shape, *geometry, nonzero=True)
    assert np.array_equal(fan, connection_map(np.ones_like(weight), in_shape, out_shape,
                                              *geometry))
    assert np.array_equal(nz, connection_map((weight != 0).astype(float), in_shape, out_shape,
                                             *geometry))
    # fan-in: a ones kernel over a ones input
    into = F.conv2d(torch.ones(1, *in_shape, dtype=torch.float64),
                    torch.ones(weight.shape, dtype=torch.float64), None, stride, padding,
                    dilation, groups).reshape(-1).numpy()
    assert np.array_equal(fanin(node, in_shape, out_shape), into)
    # a run: events = sum over input spikes of the map; both implementations
    x = (rng.random((4, 3, *in_shape)) < 0.3).astype(np.int64)
    c, _ = both(chain(("c", node), ("n", QUIET), in_shape=in_shape), x)
    per_input = (x != 0).reshape(-1, fan.size).sum(axis=0)
    assert c.layer("c").synaptic_ops == per_input @ connection_map(
        np.ones_like(weight), in_shape, out_shape, *geometry)
    assert c.layer("c").synapses == fan.sum()


# ------------------------------------------------------------------------------------------
# analytic estimate against measurement
# ------------------------------------------------------------------------------------------


def test_analytic_matches_measured_counts() -> None:
    rng = np.random.default_rng(3)
    g = chain(("w", QDense(rng.integers(-3, 12, (40, 30)) * 2)),
              ("h", QLIF(vth=200, du=2048, dv=1024)),
              ("c", QDense(rng.integers(-4, 10, (5, 40)) * 2)), ("n", QLIF(vth=30)),
              in_shape=(30,))
    T, B, p = 40, 16, 0.2
    x = (rng.random((T, B, 30)) < p).astype(np.int64)
    measured, _ = both(g, x)
    rates = measured_rates(measured)
    assert 0.02 < rates["h"] < 0.9  # the hidden layer is active
    expected = analytic(g, T, rates, samples=B)
    for name in ("w", "c"):  # dense fan-out is uniform: exact at the measured rates
        assert expected.layer(name).synaptic_ops == pytest.approx(
            measured.layer(name).synaptic_ops, rel=1e-9)
    assert expected.layer("h").spikes == pytest.approx(measured.layer("h").spikes, rel=1e-9)
    # active updates assume independent spikes: close here (25,578 vs 25,600 and 3,200 vs
    # 3,040); spikes that cluster in time make the error larger (docs/estimation.md)
    assert expected.layer("h").active_updates == pytest.approx(
        measured.layer("h").active_updates, rel=0.01)
    assert expected.layer("n").active_updates == pytest.approx(
        measured.layer("n").active_updates, rel=0.06)
    # before any run: the generating rate p predicts the input projection within 3 %
    prior = analytic(g, T, {"x": p, "default": 0.1}, samples=B)
    assert prior.layer("w").synaptic_ops == pytest.approx(measured.layer("w").synaptic_ops,
                                                          rel=0.03)
    assert prior.layer("w").synaptic_ops == pytest.approx(T * B * p * 30 * 40)


def test_analytic_conv_has_the_border_error_of_uneven_activity() -> None:
    # uniform activity: the expectation holds; activity only at the borders, where fan-out
    # is smallest: the uniform-rate estimate overestimates, as docs/estimation.md says
    node = QConv2d(np.ones((1, 1, 3, 3), np.int64), padding=1)
    g = chain(("c", node), ("n", QUIET), in_shape=(1, 6, 6))
    rng = np.random.default_rng(0)
    x = (rng.random((50, 8, 1, 6, 6)) < 0.25).astype(np.int64)
    m, _ = both(g, x)
    est = analytic(g, 50, measured_rates(m), samples=8)
    assert est.layer("c").synaptic_ops == pytest.approx(m.layer("c").synaptic_ops, rel=0.03)
    border = np.zeros((1, 1, 1, 6, 6), np.int64)
    border[..., 0, :] = border[..., -1, :] = border[..., :, 0] = border[..., :, -1] = 1
    m, _ = both(g, border)
    est = analytic(g, 1, measured_rates(m))
    # 20 border inputs: 4 corners reach 4 outputs, 16 edges 6 -> 112; uniform: 20 x 256/36
    assert m.layer("c").synaptic_ops == 112
    assert est.layer("c").synaptic_ops == pytest.approx(20 * 256 / 36)


def test_rates_are_checked() -> None:
    g = chain(("w", QDense([[1]])), ("n", QUIET), in_shape=(1,))
    with pytest.raises(NmcompileError, match="nope"):
        analytic(g, 5, {"nope": 0.1})
    with pytest.raises(NmcompileError, match="'n'"):
        analytic(g, 5, {"n": 1.5, "x": 0.1})


# ------------------------------------------------------------------------------------------
# devices and energy
# ------------------------------------------------------------------------------------------


def test_builtin_devices_hold_the_published_figures_with_sources() -> None:
    figures = {  # the list: (term count -> joules)
        "loihi": {"synaptic_ops": 23.6e-12, "active_updates": 81e-12, "idle_updates": 52e-12,
                  "within_tile_messages": 1.7e-12, "hops_east_west": 3.0e-12,
                  "hops_north_south": 4.0e-12},
        "truenorth": {"synaptic_ops_nonzero": 26e-12},
        "spinnaker": {"synaptic_ops": 13.3e-9, "neuron_updates": 26e-9},
        "spinnaker2": {"synaptic_ops": 450e-12, "neuron_updates": 2.19e-9},
        "cpu": {"dense_synaptic_ops": 8.6e-9, "neuron_updates": 8.6e-9},
        "gpu": {"dense_synaptic_ops": 0.3e-9, "neuron_updates": 0.3e-9},
        "arm": {"dense_synaptic_ops": 0.9e-9, "neuron_updates": 0.9e-9},
    }
    found = available()
    assert set(figures) | {"ann-int8-45nm", "ann-fp32-45nm"} <= set(found)
    for name, want in figures.items():
        d = load_device(name)
        assert {t.count: t.joules for t in d.terms} == want, name
        assert all(len(t.source) > 10 for t in d.terms), name
    # without a mapping, the within-tile spike is priced on every emitted spike
    assert {t.count: t.fallback for t in load_device("loihi").terms}[
        "within_tile_messages"] == "spikes"
    int8, fp32 = load_device("ann-int8-45nm"), load_device("ann-fp32-45nm")
    # per MAC: add and multiply; per value read from SRAM: 1.25 pJ a byte (10 pJ / 64 bits)
    assert {(t.count, t.joules) for t in int8.terms} == {
        ("macs", 0.03e-12), ("macs", 0.2e-12), ("weight_reads", 1.25e-12),
        ("activation_reads", 1.25e-12)}
    assert {(t.count, t.joules) for t in fp32.terms} == {
        ("macs", 0.9e-12), ("macs", 3.7e-12), ("weight_reads", 5e-12),
        ("activation_reads", 5e-12)}


def test_energy_by_hand_and_a_user_device(tmp_path) -> None:
    w = [[4, 0, 2], [6, 8, 0]]
    x = np.zeros((3, 2, 3), np.int64)
    x[0, 0] = [1, 1, 0]
    x[1, 1] = [0, 0, 1]
    g = chain(("w", QDense(w)), ("n", QUIET), in_shape=(3,))
    # per inference (2 samples): 3 + 3 events -> 3 ops; 12 updates -> 6, 4 active -> 2
    (tmp_path / "chip.toml").write_text(
        'name = "mychip"\ntitle = "test chip"\n'
        '[[terms]]\nname = "syn"\ncount = "synaptic_ops"\njoules = 2.0\nsource = "me, 2024"\n'
        '[[terms]]\nname = "act"\ncount = "active_updates"\njoules = 10.0\nsource = "me"\n'
        '[[terms]]\nname = "hop"\ncount = "tile_hops"\njoules = 1.0\nsource = "me"\n')
    est = estimate(g, x, "mychip,loihi", device_paths=[tmp_path])
    per = est.counts.per_inference()
    assert (per["synaptic_ops"], per["active_updates"], per["idle_updates"]) == (3, 2, 4)
    assert est.energy_j["mychip"] == 3 * 2.0 + 2 * 10.0
    assert est.energy_j["loihi"] == pytest.approx(3 * 23.6e-12 + 2 * 81e-12 + 4 * 52e-12)
    report = est.to_json()
    assert [o["name"] for o in report["omitted"]["mychip"]] == ["hop"]  # needs a placement
    # the ANN baselines: one MAC per synapse (6), and 6 weights + 3 inputs read, 1 byte each
    assert report["baseline_j"]["ann-int8-45nm"] == pytest.approx(6 * 0.23e-12
                                                                  + (6 + 3) * 1.25e-12)
    # a file named directly works too
    assert estimate(g, x, str(tmp_path / "chip.toml")).energy_j == {"mychip": 26.0}


@pytest.mark.parametrize("text, match", [
    ('name = "a"\n[[terms]]\nname = "s"\ncount = "synaptic_ops"\njoules = 1.0\n', "source"),
    ('name = "a"\n[[terms]]\nname = "s"\ncount = "flops"\njoules = 1.0\nsource = "x"\n',
     "unknown count"),
    ('name = "a"\n[[terms]]\nname = "s"\ncount = "spikes"\njoules = -1\nsource = "x"\n',
     "joules"),
    ('name = "a"\nterms = 3\n', "terms"),
    ("name = \n", "not valid TOML"),
])
def test_bad_device_files_name_the_file(tmp_path, text: str, match: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(FormatError, match=match) as err:
        read_device(path)
    assert "bad.toml" in str(err.value)


def test_unknown_device_lists_the_known_ones() -> None:
    g = chain(("w", QDense([[1]])), ("n", QUIET), in_shape=(1,))
    with pytest.raises(NmcompileError, match="truenorth"):
        estimate(g, np.ones((2, 1, 1), np.int64), "tpu")


# ------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------


def test_cli_estimate_prints_json_and_a_plot(tmp_path, capsys) -> None:
    rng = np.random.default_rng(1)
    g = Graph(dt=1e-3)
    g.add_node("x", Input((20,)))
    g.add_node("fc1", Dense(rng.normal(0.3, 0.5, (16, 20))))
    g.add_node("lif1", LIF(beta=0.8))
    g.add_node("fc2", Dense(rng.normal(0.3, 0.5, (4, 16))))
    g.add_node("lif2", LIF(beta=0.8))
    g.add_node("out", Output())
    for a, b in [("x", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"),
                 ("lif2", "out")]:
        g.add_edge(a, b)
    model = tmp_path / "net.nmc"
    nmcompile.save(g, model)
    x = (rng.random((10, 3, 20)) < 0.3).astype(np.uint8)
    np.save(tmp_path / "x.npy", x)
    devices = "loihi,truenorth,spinnaker2,cpu"
    assert main(["estimate", str(model), "--input", str(tmp_path / "x.npy"), "--device",
                 devices, "--json", "--plot", str(tmp_path / "e.png")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["energy_j"]) == set(devices.split(","))
    assert set(report["sources"]) >= set(devices.split(","))
    layers = {row["name"]: row for row in report["layers"]}
    # independent count: input spikes x 16 stored synapses; hidden spikes x 4
    r = nmcompile.run(g, x, record=True)
    assert layers["lif1.from_x"]["synaptic_ops"] == int(x.sum()) * 16
    assert layers["lif2.from_lif1"]["synaptic_ops"] == int(r.spikes["lif1"].sum()) * 4
    assert report["total"]["synaptic_ops"] == sum(row["synaptic_ops"] for row in
                                                  report["layers"])
    assert report["total"]["spikes"] == sum(int(s.sum()) for s in r.spikes.values())
    assert report["total"]["neuron_updates"] == 10 * 3 * 20
    per = report["total"]["synaptic_ops"] / 3
    assert report["energy_j"]["truenorth"] == pytest.approx(per * 26e-12)  # no zeros here
    assert (tmp_path / "e.png").read_bytes()[:4] == b"\x89PNG"
    # the table, and the analytic mode without inputs
    assert main(["estimate", str(model), "--rates", "x=0.3,default=0.1", "--steps", "10",
                 "--samples", "3"]) == 0
    table = capsys.readouterr().out
    assert "analytic" in table and "loihi" in table and "tile hops" in table
    expected = 10 * 3 * 0.3 * 20 * 16 / 3
    assert f"{expected:,.0f}" in table


def test_static_counts_refuse_unfolded_chains() -> None:
    g = chain(("p", SumPool2d(2)), ("d", Dense(np.ones((3, 4)))), ("n", LIF(beta=0.5)),
              in_shape=(1, 4, 4))
    with pytest.raises(NmcompileError, match="fold"):
        static_counts(g)
    est = estimate(g, np.ones((2, 1, 1, 4, 4)))  # estimate folds first
    assert [row.kind for row in est.counts.layers] == ["input", "projection", "neuron"]
