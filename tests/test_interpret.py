"""The float interpreter against traces worked out by hand from the equations in docs/ir.md."""

from __future__ import annotations

import numpy as np
import pytest

import nmcompile
from nmcompile.errors import LimitError, NmcompileError, ShapeError
from nmcompile.ir import (
    ALIF,
    IF,
    LI,
    LIF,
    AvgPool2d,
    Conv2d,
    Dense,
    Flatten,
    Graph,
    Input,
    Output,
    Scale,
    SumPool2d,
)


def one_node(node, x, delay=0, record=True):
    """Input -> node -> Output, x given as a list over time of per-neuron values."""
    x = np.asarray(x, dtype=np.int64)
    x = x.reshape(x.shape[0], 1, -1)  # (T, batch 1, n)
    g = Graph()
    g.add_node("x", Input((x.shape[2],)))
    g.add_node("n", node)
    g.add_node("out", Output())
    g.add_edge("x", "n", delay)
    g.add_edge("n", "out")
    return nmcompile.run(g, x, record=record)


def spikes(result):
    return result.output()[:, 0, 0].tolist()


def test_lif_reset_zero_by_hand() -> None:
    # v: 1 (not > 1), 0.5+1=1.5 spike->0, 1, 0.5, 0.25+1=1.25 spike
    r = one_node(LIF(beta=0.5, threshold=1.0), [1, 1, 1, 0, 1])
    assert spikes(r) == [0, 1, 0, 0, 1]
    assert r.states["n"]["v"][:, 0, 0].tolist() == [1.0, 0.0, 1.0, 0.5, 0.0]


def test_lif_reset_subtract_by_hand() -> None:
    # v: 1, 1.5->0.5, 1.25->0.25, 0.125, 1.0625->0.0625
    r = one_node(LIF(beta=0.5, threshold=1.0, reset="subtract"), [1, 1, 1, 0, 1])
    assert spikes(r) == [0, 1, 1, 0, 1]
    assert r.states["n"]["v"][:, 0, 0].tolist() == [1.0, 0.5, 0.25, 0.125, 0.0625]


def test_current_based_lif_by_hand() -> None:
    # i: 2, 1, 0.5, 0.25; v (beta 1): 2, 3 > 2 spike -> 0, 0.5, 0.75
    r = one_node(LIF(beta=1.0, alpha=0.5, threshold=2.0), [2, 0, 0, 0])
    assert spikes(r) == [0, 1, 0, 0]
    assert r.states["n"]["i"][:, 0, 0].tolist() == [2.0, 1.0, 0.5, 0.25]
    assert r.states["n"]["v"][:, 0, 0].tolist() == [2.0, 0.0, 0.5, 0.75]


def test_if_with_bias_by_hand() -> None:
    # v: 1.5, 3 spike -> 0, 0.5, 1.0
    r = one_node(IF(threshold=2.0, bias=0.5), [1, 1, 0, 0])
    assert spikes(r) == [0, 1, 0, 0]
    assert r.states["n"]["v"][:, 0, 0].tolist() == [1.5, 0.0, 0.5, 1.0]


@pytest.mark.parametrize("reset, expected, a_trace", [
    # zero: t0 v=2>1 a->1; t1 v=1, a=.5 (th 1.5); t2 v=2, a=.25 (th 1.25) spike a->1.25;
    #       t3 v=1, a=.625; t4 v=2, a=.3125 spike
    ("zero", [1, 0, 1, 0, 1], [1.0, 0.5, 1.25, 0.625, 1.3125]),
    # subtract: t0 v=2 -> 1, a 1; t1 v=2 > 1.5 -> 0.5, a 1.5; t2 v=1.5 < 1.75, a .75;
    #           t3 v=2.5 > 1.375 -> 1.125, a 1.375; t4 v=2.125 > 1.6875
    ("subtract", [1, 1, 0, 1, 1], [1.0, 1.5, 0.75, 1.375, 1.6875]),
])
def test_alif_by_hand(reset, expected, a_trace) -> None:
    node = ALIF(beta=1.0, threshold=1.0, rho=0.5, adapt_step=1.0, reset=reset)
    r = one_node(node, [2, 1, 1, 1, 1])
    assert spikes(r) == expected
    assert r.states["n"]["a"][:, 0, 0].tolist() == a_trace


def test_li_outputs_its_voltage() -> None:
    r = one_node(LI(beta=0.5, bias=0.25), [1, 0, 0])
    assert r.output().dtype == np.float64
    assert r.output()[:, 0, 0].tolist() == [1.25, 0.875, 0.6875]


def test_per_neuron_parameters() -> None:
    r = one_node(LIF(beta=np.array([0.5, 1.0]), threshold=np.array([1.0, 1.5])),
                 [[1, 1], [1, 1], [0, 0]])
    # neuron 0: 1, 1.5 spike, 0 ; neuron 1: 1, 2 spike, 0
    assert r.output()[:, 0, :].tolist() == [[0, 0], [1, 1], [0, 0]]


def test_edge_delay_shifts_by_d_steps() -> None:
    x = [1, 0, 1, 1, 0, 0, 0]
    for d in range(4):
        r = one_node(IF(threshold=0.5), x, delay=d)
        assert spikes(r) == ([0] * d + x)[:len(x)]


def test_recurrent_self_inhibition_reads_previous_step() -> None:
    # x=1 every step; v = v + 1 - s[t-1]: t0 1>0.5 spike; t1 0+1-1=0; t2 1 spike; ...
    g = Graph()
    g.add_node("x", Input((1,)))
    g.add_node("n", IF(threshold=0.5))
    g.add_node("inh", Dense([[-1.0]]))
    g.add_node("o", Output())
    g.add_edge("x", "n")
    g.add_edge("n", "inh", 1)
    g.add_edge("inh", "n")
    g.add_edge("n", "o")
    r = nmcompile.run(g, np.ones((6, 1, 1), dtype=np.int8))
    assert r.output()[:, 0, 0].tolist() == [1, 0, 1, 0, 1, 0]


def test_projections_match_numpy() -> None:
    rng = np.random.default_rng(1)
    x = rng.integers(0, 3, (2, 3, 2, 6, 6))  # (T, batch, C, H, W)
    w = rng.normal(size=(4, 2, 3, 3))
    cases = [
        (Conv2d(w, np.arange(4.0), stride=2, padding=1), None),
        (SumPool2d(2), lambda v: v.reshape(3, 2, 3, 2, 3, 2).sum(axis=(3, 5))),
        (AvgPool2d(3), lambda v: v.reshape(3, 2, 2, 3, 2, 3).mean(axis=(3, 5))),
        (Flatten(), lambda v: v.reshape(3, -1)),
        (Scale(np.array([2.0, -1.0]).reshape(2, 1, 1)),
         lambda v: v * np.array([2, -1])[:, None, None]),
    ]
    for node, ref in cases:
        g = Graph()
        g.add_node("x", Input((2, 6, 6)))
        g.add_node("p", node)
        g.add_node("o", Output())
        g.add_edge("x", "p")
        g.add_edge("p", "o")
        out = nmcompile.run(g, x).output()
        if ref is None:  # direct convolution, written out
            pad = np.pad(x, ((0, 0), (0, 0), (0, 0), (1, 1), (1, 1)))
            want = np.zeros((2, 3, 4, 3, 3))
            for i in range(3):
                for j in range(3):
                    patch = pad[:, :, :, 2 * i:2 * i + 3, 2 * j:2 * j + 3]
                    want[:, :, :, i, j] = np.einsum("tbcmn,ocmn->tbo", patch, w) + np.arange(4)
            np.testing.assert_allclose(out, want.reshape(2, 3, -1), rtol=1e-12, atol=1e-12)
        else:
            want = np.stack([ref(x[t].astype(float)) for t in range(2)])
            np.testing.assert_allclose(out, want.reshape(2, 3, -1), rtol=1e-12)


def test_dense_bias_arrives_every_step_and_counters() -> None:
    g = Graph()
    g.add_node("x", Input((3,)))
    g.add_node("fc", Dense(np.ones((2, 3)), bias=[0.5, 0.0]))
    g.add_node("n", IF(threshold=1.0))
    g.add_node("o", Output())
    g.add_edge("x", "fc")
    g.add_edge("fc", "n")
    g.add_edge("n", "o")
    x = np.zeros((4, 1, 3), dtype=np.int8)
    x[0, 0, :2] = 1  # two input spikes at t=0, reaching 2 synapses each
    r = nmcompile.run(g, x)
    # neuron 0: 2.5 spike, then 0.5, 1.0, 1.5 spike; neuron 1: 2 spike, then nothing
    assert r.output()[:, 0, :].tolist() == [[1, 1], [0, 0], [0, 0], [1, 0]]
    assert r.counters["synaptic_events"] == {"fc": 4}
    assert r.counters["spikes"] == {"n": 3}
    assert r.counters["neuron_updates"] == {"n": 8}
    assert r.margins["n"] == 0.0  # neuron 0 sits exactly at the threshold at t=2


def test_input_errors() -> None:
    g = Graph()
    g.add_node("a", Input((1,)))
    g.add_node("b", Input((1,)))
    g.add_node("n", IF())
    g.add_node("o", Output())
    for u, v in [("a", "n"), ("b", "n"), ("n", "o")]:
        g.add_edge(u, v)
    with pytest.raises(NmcompileError, match="pass a dict by input name"):
        nmcompile.run(g, np.zeros((2, 1, 1)))
    with pytest.raises(ShapeError, match=r"input 'b': expected an array \(T, batch, 1\)"):
        nmcompile.run(g, {"a": np.ones((2, 1, 1)), "b": np.ones((2, 1))})
    with pytest.raises(NmcompileError, match="numeric"):
        nmcompile.run(g, {"a": np.ones((2, 1, 1)), "b": np.array([[["x"]]] * 2)})
    r = nmcompile.run(g, {"a": np.ones((2, 1, 1)), "b": np.ones((2, 1, 1))})
    assert r.output()[:, 0, 0].tolist() == [1, 1]


def test_memory_limit_is_checked_before_allocating(monkeypatch) -> None:
    monkeypatch.setenv("NMCOMPILE_MAX_BYTES", "1000")
    with pytest.raises(LimitError, match="run a smaller batch"):
        one_node(IF(), np.zeros((100, 1)))
