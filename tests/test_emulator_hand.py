"""The emulator against oracles that are not nmcompile: a Loihi 2 chip trace, and traces
worked by hand from docs/fixed_point.md for what Lava has no stock model for."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import nmcompile
from nmcompile.errors import UnsupportedError
from nmcompile.ir import LIF, Graph, Input, Output
from nmcompile.ir.quantized import QALIF, QLI, QLIF, QConv2d, QDense, QSparse

FIXTURES = Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures" / "nir-paper"


def chain(projection, neuron, x, delay=0):
    x = np.asarray(x, dtype=np.int64)
    g = Graph()
    g.add_node("x", Input(x.shape[2:]))
    g.add_node("w", projection)
    g.add_node("n", neuron)
    g.add_node("o", Output())
    g.add_edge("x", "w", delay)
    g.add_edge("w", "n")
    g.add_edge("n", "o")
    return nmcompile.run(g, x, record=True)


@pytest.mark.skipif(not FIXTURES.is_dir(), reason="the workplace's shared fixtures are absent")
@pytest.mark.parametrize("trace", ["loihi", "cpu"])
def test_reproduces_the_loihi_chip_trace(trace: str) -> None:
    """01_lif: parameters as the fixture README states them (NIR paper's nir_to_lava.py)."""
    data = np.loadtxt(FIXTURES / f"01_lif_lif_lava_{trace}_fixed.csv", delimiter=",")
    dt, tau = 1e-4, 0.0025
    r = chain(QDense([[int(dt / tau * 256)]]),
              QLIF(vth=int(0.1 * 131071) >> 9, du=4095, dv=int(dt / tau * 4095)),
              data[:, 0].reshape(-1, 1, 1))
    s, v = r.output()[:, 0, 0], r.states["n"]["v"][:, 0, 0]
    # Lava's Dense adds one step of latency: the recording's row t+1 is IR step t.
    assert np.array_equal(s[:-1], data[1:, 2].astype(int))
    assert s.sum() == 4
    differ = np.nonzero(v[:-1] != data[1:, 1])[0]
    if trace == "cpu":
        assert len(differ) == 0
    else:  # the chip's probe reads 128 on the 4 spike steps, the simulation 0
        assert np.array_equal(differ, np.nonzero(s[:-1])[0])
        assert (data[1:, 1][differ] == 128).all()


def test_reset_by_subtraction_by_hand() -> None:
    # a = 3 each step -> u = 192 (du=4095 clears u); dv=2048 halves v (rounded toward zero);
    # vth=4 -> threshold 256. v: 192; 96+192=288 > 256 -> 32; 16+192=208; 104+192=296 -> 40
    r = chain(QDense([[3]]), QLIF(vth=4, du=4095, dv=2048, reset="subtract"),
              np.ones((4, 1, 1)))
    assert r.output()[:, 0, 0].tolist() == [0, 1, 0, 1]
    assert r.states["n"]["v"][:, 0, 0].tolist() == [192, 32, 208, 40]
    assert r.states["n"]["u"][:, 0, 0].tolist() == [192] * 4


def test_current_decay_has_the_offset_of_one_and_rounds_toward_zero() -> None:
    # du=0 still decays u by 1/4096: u = 6400, then 6400*4095>>12 = 6398 (6398.4), 6396 ...
    # negative input: -6400 -> -(6400*4095 >> 12) = -6398, rounded toward zero not down.
    for sign in (1, -1):
        x = np.zeros((3, 1, 1))
        x[0] = 1
        r = chain(QDense([[100 * sign]]), QLI(du=0, dv=4095), x)
        assert r.states["n"]["u"][:, 0, 0].tolist() == [sign * 6400, sign * 6398, sign * 6396]


def test_adaptive_threshold_by_hand() -> None:
    # a = 5 -> u = 320 each step; dv=4095 clears v: v = dec(v, 4095) + 320 (dec of v <= 319
    # by 1/4096 is 0). vth=4 -> 256; step 2 -> +128; da=2048 halves the adaptation.
    # t0: th 0, theta 256, v 320 > 256 spike, th = 128
    # t1: th 64, theta 320, v 320 not >;  t2: th 32, theta 288, v 320 spike, th 160
    # t3: th 80, theta 336, no;  t4: th 40, theta 296, spike
    r = chain(QDense([[5]]), QALIF(vth=4, vth_step=2, da=2048, du=4095, dv=4095),
              np.ones((5, 1, 1)))
    assert r.output()[:, 0, 0].tolist() == [1, 0, 1, 0, 1]


def test_per_neuron_decays_and_bias_by_hand() -> None:
    # two neurons, no input; bias_mant 3 << bias_exp 4 = 48 per step; dv 0 and 2048
    # neuron 0: v = 48, 96, 144; neuron 1: v = 48, 24+48=72, 36+48=84
    r = chain(QDense(np.zeros((2, 1), int)),
              QLIF(vth=100, du=4095, dv=np.array([0, 2048]), bias_mant=3, bias_exp=4),
              np.zeros((3, 1, 1)))
    assert r.states["n"]["v"][:, 0, :].tolist() == [[48, 48], [96, 72], [144, 84]]


def test_saturation_and_wrap_are_counted() -> None:
    # 255 << 7 = 32640 per input; << 6 = 2088960 per step into u; u wraps past 2^23
    r = chain(QDense([[255]], weight_exp=7), QLIF(vth=2**17 - 1, du=0, dv=0),
              np.ones((8, 1, 1)))
    assert r.counters["unsafe_updates"]["n"] > 0
    safe = chain(QDense([[1]]), QLIF(vth=100), np.ones((8, 1, 1)))
    assert safe.counters["unsafe_updates"]["n"] == 0


def test_weight_exponent_shifts_with_floor() -> None:
    # weight -3, weight_exp -1: (-3) >> 1 = -2 (floor), u = -128
    r = chain(QDense([[-3]], weight_exp=-1), QLI(), np.ones((1, 1, 1)))
    assert r.states["n"]["u"][0, 0, 0] == -128


def test_projections_agree_with_each_other() -> None:
    rng = np.random.default_rng(0)
    x = (rng.random((6, 3, 2, 5, 5)) < 0.4).astype(np.int64)
    w = rng.integers(-100, 100, (4, 2, 3, 3))
    conv = QConv2d(w, weight_exp=1, padding=1, stride=2)
    out_conv = chain(conv, QLI(), x).states["n"]["u"]
    # the same map as an explicit matrix: push the identity through the convolution
    basis = np.eye(50, dtype=np.int64).reshape(50, 1, 2, 5, 5)
    cols = chain(QConv2d(w, weight_exp=0, padding=1, stride=2), QLI(), basis)
    matrix = cols.states["n"]["u"][:, 0, :].T // 64  # u = a << 6, one basis vector per step
    dense = chain(QDense(matrix, weight_exp=1), QLI(), x.reshape(6, 3, 50)).states["n"]["u"]
    rows, cols_ = np.nonzero(matrix)
    sparse = chain(QSparse(rows, cols_, matrix[rows, cols_], matrix.shape, weight_exp=1), QLI(),
                   x.reshape(6, 3, 50)).states["n"]["u"]
    assert np.array_equal(out_conv, dense) and np.array_equal(dense, sparse)


def test_float_graphs_are_refused() -> None:
    g = Graph()
    g.add_node("x", Input((1,)))
    g.add_node("n", LIF(beta=0.5))
    g.add_node("o", Output())
    g.add_edge("x", "n")
    g.add_edge("n", "o")
    with pytest.raises(UnsupportedError, match="node 'n' is a LIF"):
        nmcompile.run(g, np.ones((2, 1, 1)), backend="emulator")


def test_delayed_edges_to_nodes_scheduled_earlier() -> None:
    """A delayed edge may point back in the schedule, with or without a cycle."""
    for edges in ([("x", "w"), ("w", "n"), ("n", "p", 1), ("p", "m"), ("m", "o")],
                  [("x", "w"), ("w", "n"), ("n", "r", 1), ("r", "n"), ("n", "o")]):
        g = Graph()
        g.add_node("x", Input((1,)))
        for name in {u for e in edges for u in e[:2]} - {"x", "o"}:
            g.add_node(name, QDense([[2]]) if name in "wpr" else QLIF(vth=100))
        g.add_node("o", Output())
        for e in edges:
            g.add_edge(*e)
        r = nmcompile.run(g, np.ones((6, 1, 1), np.int64), record=True)
        assert r.output().shape == (6, 1, 1)
        # n: u = 128 per step from x (plus 128 from its own spike a step later, via r)
        assert r.states["n"]["u"][0, 0, 0] == 128


@pytest.mark.parametrize("density", [0.05, 0.9])
@pytest.mark.parametrize("exp", [-3, 0, 5])
def test_event_and_blas_routes_give_the_same_integers(density: float, exp: int) -> None:
    """Sparse input is accumulated event by event, dense input goes through BLAS: both must
    equal numpy's int64 product (then the flooring shift)."""
    from backends.emulator.projections import EVENT_DENSITY, projection

    rng = np.random.default_rng(int(density * 100) + exp)
    w = rng.integers(-256, 256, (37, 53))
    x = (rng.random((40, 53)) < density) * rng.integers(1, 4, (40, 53))
    assert (np.count_nonzero(x) < EVENT_DENSITY * x.size) == (density < EVENT_DENSITY)
    apply, _ = projection(QDense(w, exp), (53,), max_in=3)
    want = x @ w.T
    want = want << exp if exp > 0 else want >> -exp
    assert np.array_equal(apply(x), want)
