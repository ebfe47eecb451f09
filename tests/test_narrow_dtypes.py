"""Quantised weights and sparse indices are stored narrow (docs/fixed_point.md, section 13)
and every backend computes on them exactly as on int64 arrays.

Each graph holds the extreme values of its dtypes (int8 -128 and 127, Loihi's mixed-sign
mantissas; even mixed-sign -256 and 254, one-signed 255 and -255, in int16; fpga16's int16
-32768 and 32767; per-neuron parameters at their bounds) and runs on the emulator, Lava and
the Verilog core against the same graph with every array forced to int64.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

import nmcompile
from nmcompile.ir import LIF, Dense, Graph, Input, Output
from nmcompile.ir.quantized import QLI, QLIF, Owned, QConv2d, QDense, QSparse

PROJECTIONS = (QDense, QSparse, QConv2d)
NEURON_FIELDS = ("vth", "vth_step", "da", "du", "dv", "bias_mant", "bias_exp")


def widened(graph: Graph) -> Graph:
    """A copy of `graph` whose every array is int64 (the representation before narrow
    storage), assigned after construction (which would narrow them again)."""
    g = copy.deepcopy(graph)
    for node in g.nodes.values():
        for key in ("weight", "values", "rows", "cols", *NEURON_FIELDS):
            value = getattr(node, key, None)
            if isinstance(value, np.ndarray):
                wide = value.astype(np.int64)
                wide.flags.writeable = False
                setattr(node, key, wide)
                assert getattr(node, key).dtype == np.int64  # it really is int64 now
    return g


def stored(node) -> np.ndarray:
    return node.values if isinstance(node, QSparse) else node.weight


def chain(names_nodes, shape, profile: str | None = None) -> Graph:
    g = Graph(metadata={"quantization": {"profile": profile}} if profile else {})
    g.add_node("x", Input(shape))
    prev = "x"
    for name, node in names_nodes:
        g.add_node(name, node)
        g.add_edge(prev, name)
        prev = name
    g.add_node("out", Output())
    g.add_edge(prev, "out")
    return g


def per_neuron(n: int) -> dict:
    """Per-neuron parameters at their bounds."""
    return {"du": np.array([0, 4095, 600, 1500][:n]), "dv": np.array([4095, 0, 200, 800][:n]),
            "bias_mant": np.array([-4096, 4095, -40, 7][:n]),
            "bias_exp": np.array([0, 1, 7, 2][:n])}


def int8_graph() -> Graph:
    """int8 extremes, a flooring negative exponent, QSparse and a conv with -128 << 7."""
    w = np.array([[-128, 127, -128, 3], [127, -128, 127, -1], [5, -128, 0, 127]])
    return chain([("fc", QDense(w, weight_exp=-3)),
                  ("h", QLIF(vth=np.array([40, 131071, 7]), **per_neuron(3))),
                  ("sp", QSparse([0, 1, 1, 0], [0, 1, 2, 2], [-128, 127, -128, 127], (2, 3), 2)),
                  ("o", QLIF(vth=30, du=600, dv=200))], (4,))


def conv_graph(taps: list[int]) -> Graph:
    """A grouped convolution whose kernel holds `taps`, `<< 7` (Lava folds the exponent into
    the kernel: an int8 -128 << 7 must not wrap), into a readout with per-channel biases."""
    kernel = np.array(taps * 9).reshape(4, 1, 3, 3)
    return chain([("c", QConv2d(kernel, weight_exp=7, padding=1, groups=2)),
                  ("n", QLI(du=4095, dv=2048,
                            bias_mant=np.array([-4096, 4095, -7, 0]).reshape(4, 1, 1),
                            bias_exp=np.array([0, 0, 7, 0]).reshape(4, 1, 1)))], (2, 4, 4))


CONV_INT8, CONV_HALVED = [-128, 127, -128, 0], [-256, 254, 2, 0]


def loihi_graph() -> Graph:
    """What Lava's 8-bit synapses accept, at every extreme: mixed even [-256, 254] (int16),
    mixed [-128, 126] (int8), excitatory 255 and inhibitory -255 (int16)."""
    mixed = np.array([[-256, 254, 2, -2], [254, -256, -256, 254], [0, 100, -256, 254]])
    small = np.array([[-128, 126, 0], [126, -128, 2]])
    exc = np.array([[255, 0], [3, 255]])
    g = chain([("m", QDense(mixed, weight_exp=-2)),
               ("h1", QLIF(vth=60, du=600, dv=200, bias_mant=np.array([-4096, 4095, 7]),
                           bias_exp=np.array([0, 1, 7]))),
               ("s", QDense(small, weight_exp=1)), ("h2", QLIF(vth=200, du=600, dv=200)),
               ("e", QDense(exc, weight_exp=0)), ("h3", QLIF(vth=300, du=1500, dv=800)),
               ("i", QSparse([0, 0, 1], [0, 1, 1], [-255, -1, -255], (2, 2), 3)),
               ("r", QLI(du=1500, dv=200))], (4,), profile="loihi2")
    return g


def fpga16_graph() -> Graph:
    w = np.array([[-32768, 32767, 1], [32767, -32768, -1]])
    return chain([("fc", QDense(w, weight_exp=-9)),
                  ("h", QLIF(vth=np.array([131071, 300]), **per_neuron(2))),
                  ("r", QDense(np.array([[-32768, 32767]]), weight_exp=-6)), ("o", QLI())],
                 (3,), profile="fpga16")


def spikes(graph: Graph, T: int = 24, B: int = 2, seed: int = 0) -> np.ndarray:
    shape = graph[graph.inputs[0]].shape
    return (np.random.default_rng(seed).random((T, B, *shape)) < 0.5).astype(np.int64)


def same(a, b, counters=("spikes", "neuron_updates", "synaptic_events", "unsafe_updates"),
         states=True):
    for layer, s in a.spikes.items():
        assert np.array_equal(s, b.spikes[layer]), layer
    for layer, layer_states in a.states.items() if states else ():
        for key, v in layer_states.items():
            assert np.array_equal(v, b.states[layer][key]), (layer, key)
    for name, v in a.outputs.items():
        assert v.dtype == b.outputs[name].dtype and np.array_equal(v, b.outputs[name]), name
    for key in counters:
        if key in a.counters and key in b.counters:
            assert a.counters[key] == b.counters[key], key


def test_storage_dtypes_follow_the_values() -> None:
    for w, dtype in (([[-128, 127]], np.int8), ([[-256, 254]], np.int16),
                     ([[0, 255]], np.int16), ([[-255, 0]], np.int16),
                     ([[-32768, 32767]], np.int16), ([[65536, -1]], np.int32),
                     (np.zeros((0, 3)), np.int8)):
        node = QDense(w)
        assert node.weight.dtype == dtype and node.weight.tolist() == np.asarray(w).tolist()
        assert not node.weight.flags.writeable and vars(node)["weight"] is node.weight
    s = QSparse([0, 299], [1, 2], [-256, 254], (300, 3))
    assert (s.rows.dtype, s.cols.dtype, s.values.dtype) == (np.int16, np.int8, np.int16)
    assert s.dense().dtype == np.int64 and s.dense()[0, 1] == -256 and s.dense()[299, 2] == 254
    assert QConv2d(np.full((2, 1, 3, 3), -128.0)).weight.dtype == np.int8
    # per-neuron parameters stay int64 (few, and `bias_mant << bias_exp` must not wrap)
    n = QLIF(vth=np.array([0, 131071]), du=np.array([0, 4095]), bias_mant=np.array([-4096, 4095]),
             bias_exp=np.array([0, 7]), dv=5)
    assert {n.vth.dtype, n.du.dtype, n.bias_mant.dtype, n.bias_exp.dtype} == {np.dtype(np.int64)}
    assert n.dv == 5 and type(n.dv) is int  # scalars stay Python ints
    # equal values are equal nodes, however they arrived (the dtype follows the values)
    assert QDense(np.array([[-256.0, 254.0]])) == QDense(np.array([[-256, 254]], np.int64))
    assert QDense([[2, 4]]) != QDense([[2, 5]])
    # the quantiser's hand-over keeps the array when it already has the node's dtype
    mine = np.array([[1, -2]], np.int8)
    assert QDense(Owned(mine)).weight is mine and not mine.flags.writeable
    assert QDense(Owned(np.array([[1, -2]], np.int16))).weight.dtype == np.int8


def test_memory_math_at_small_scale() -> None:
    rng = np.random.default_rng(0)
    small = QDense(rng.integers(-128, 128, (100, 1000)))  # 8-bit mantissas: one byte each
    assert small.weight.nbytes == small.weight.size == 100_000
    # a mixed-sign Loihi matrix as the quantiser stores it: Loihi's own 8-bit mantissas, the
    # synapse's factor 2 in the exponent; one byte each, so 100M Loihi weights take 100 MB
    g = chain([("fc", Dense(rng.normal(0, 1, (100, 1000)))), ("n", LIF(beta=0.9))], (1000,))
    loihi = nmcompile.quantize(g, "loihi2")["n.from_x"]
    assert loihi.weight.nbytes == loihi.weight.size == 100_000
    assert loihi.weight.min() < 0 < loihi.weight.max()
    sparse = QSparse(rng.integers(0, 100, 5000), rng.integers(0, 1000, 5000),
                     rng.integers(-128, 128, 5000), (100, 1000))
    assert sparse.rows.nbytes + sparse.cols.nbytes + sparse.values.nbytes == 5000 * (1 + 2 + 1)


def test_quantize_stores_narrow_weights() -> None:
    rng = np.random.default_rng(3)
    g = Graph()
    g.add_node("x", Input((64,)))
    g.add_node("fc", Dense(rng.normal(0, 0.3, (32, 64))))
    g.add_node("n", LIF(beta=0.9))
    g.add_node("fc2", Dense(np.abs(rng.normal(0, 0.3, (8, 32)))))
    g.add_node("o", LIF(beta=0.9))
    g.add_node("out", Output())
    for a, b in (("x", "fc"), ("fc", "n"), ("n", "fc2"), ("fc2", "o"), ("o", "out")):
        g.add_edge(a, b)
    loihi = nmcompile.quantize(g, "loihi2")
    fpga = nmcompile.quantize(g, "fpga16")
    for q, most in ((loihi, 255), (fpga, 32768)):
        for name in ("n.from_x", "o.from_n"):
            w = q[name].weight
            lo, hi = int(w.min()), int(w.max())
            want = next(t for t in (np.int8, np.int16, np.int32)
                        if np.iinfo(t).min <= lo and hi <= np.iinfo(t).max)
            assert w.dtype == want and max(-lo, hi) <= most, (q, name, lo, hi)
    assert loihi["n.from_x"].weight.dtype == np.int8  # mixed: 8-bit mantissas, applied 2x
    assert loihi["o.from_n"].weight.dtype == np.int16  # excitatory: magnitudes up to 255
    assert fpga["n.from_x"].weight.dtype == np.int16
    assert np.abs(fpga["n.from_x"].weight.astype(np.int64)).max() > 2**14
    x = spikes(loihi, T=16)
    for q in (loihi, fpga):
        same(nmcompile.run(q, x, record=True), nmcompile.run(widened(q), x, record=True))


@pytest.mark.parametrize("make", [int8_graph, lambda: conv_graph(CONV_INT8),
                                  lambda: conv_graph(CONV_HALVED), loihi_graph, fpga16_graph],
                         ids=["int8", "conv-int8", "conv-halved", "loihi", "fpga16"])
def test_emulator_and_verilog_equal_the_int64_graph(make) -> None:
    g = make()
    x = spikes(g)
    wide = widened(g)
    assert all(stored(n).itemsize <= 2 for n in g.nodes.values() if isinstance(n, PROJECTIONS))
    ref = nmcompile.run(wide, x, record=True)
    got = nmcompile.run(g, x, record=True)
    same(ref, got)
    assert sum(ref.counters["synaptic_events"].values()) > 0
    verilog = nmcompile.run(g, x, backend="verilog", record=True)
    same(ref, verilog)
    same(ref, nmcompile.run(wide, x, backend="verilog", record=True))


def test_lava_equals_the_int64_graph() -> None:
    from backends import lava as lava_backend

    graphs = [loihi_graph(), int8_graph(), conv_graph(CONV_INT8), conv_graph(CONV_HALVED)]
    items = [(g, spikes(g, T=16, B=1)) for g in graphs] + \
            [(widened(g), spikes(g, T=16, B=1)) for g in graphs]
    results = lava_backend.run_many(items, record=True, timeout_s=600)
    n = len(graphs)
    for (g, x), narrow, wide in zip(items[:n], results[:n], results[n:], strict=True):
        ref = nmcompile.run(widened(g), x, record=True)
        same(ref, narrow, counters=(), states=False)
        same(ref, wide, counters=(), states=False)
    assert sum(nmcompile.run(graphs[0], items[0][1]).counters["spikes"].values()) > 0
    # the plans Lava got are the same, arrays and dtypes
    for g in graphs:
        a, b = lava_backend.lower(g).to_arrays("p/"), lava_backend.lower(widened(g)).to_arrays("p/")
        assert a.keys() == b.keys()
        for key in a:
            assert np.asarray(a[key]).dtype == np.asarray(b[key]).dtype, key
            assert np.array_equal(a[key], b[key]), key


def test_sum_bounds_count_the_int8_minimum_as_128() -> None:
    """The emulator picks int32 or int64 (and float32 or float64) sums from a bound on |w|
    times |x|: an int8 -128, weight or input, must count as 128 there (np.abs keeps it -128),
    or the int32 sums wrap."""
    n = 300
    cases = [
        (QDense(np.full((2, n), -128), weight_exp=-8), (n,)),
        (QSparse(np.zeros(n, int), np.arange(n), np.full(n, -128), (1, n), -8), (n,)),
        (QConv2d(np.full((1, 3, 10, 10), -128), weight_exp=-8), (3, 10, 10)),
        (QDense(np.full((1, n), 2**16), weight_exp=-12), (n,)),  # int32 weights, int8 input
    ]
    for proj, shape in cases:
        g = chain([("w", proj), ("r", QLI(du=4095, dv=4095))], shape)
        big = 2**23 if stored(proj).dtype == np.int8 else -128
        x = np.full((3, 1, *shape), big, np.int64)
        ref = nmcompile.run(widened(g), x, record=True)
        assert ref.outputs["out"].min() < -(2**20)  # the sums went past int32 before the shift
        same(ref, nmcompile.run(g, x, record=True))
        if big == -128:  # the same input given as int8
            same(ref, nmcompile.run(g, x.astype(np.int8), record=True))


def test_weight_width_counts_the_int8_minimum() -> None:
    from nmcompile.analysis.counts import weight_width

    g = int8_graph()  # no profile: the width comes from the weights, -128 needs 9 bits
    assert weight_width(g) == weight_width(widened(g)) == 9
