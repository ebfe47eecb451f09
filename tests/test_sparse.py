"""The float `Sparse` projection (issue 14, point 6): the same network as a `Dense` holding
its matrix, stored synapses only, through the interpreter, files, inspect and the reservoir
example."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import nmcompile
from nmcompile.errors import GraphError, UnsupportedError
from nmcompile.ir import LIF, Dense, Graph, Input, Output, Sparse
from nmcompile.ir.summary import summarize

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from reservoir import build_reservoir


def _net(projection, recurrent=None) -> Graph:
    g = Graph(dt=1e-3)
    g.add_node("x", Input((20,)))
    g.add_node("p", projection)
    g.add_node("n", LIF(beta=0.9, threshold=1.0))
    g.add_node("o", Output())
    for a, b in (("x", "p"), ("p", "n"), ("n", "o")):
        g.add_edge(a, b)
    if recurrent is not None:
        g.add_node("r", recurrent)
        g.add_edge("n", "r", 1)
        g.add_edge("r", "n")
    return g


def _matrices(seed: int):
    """A (30, 20) input matrix and a (30, 30) recurrent one, 30 % stored, in eighths (sums
    are exact in float64 whatever their order) with some stored zeros."""
    rng = np.random.default_rng(seed)
    out = []
    for shape in ((30, 20), (30, 30)):
        mask = rng.random(shape) < 0.3
        w = np.where(mask, rng.integers(-6, 12, shape) / 8, 0.0)
        out.append((w, mask))
    return out


@pytest.mark.parametrize("seed", range(3))
def test_a_sparse_network_is_its_dense_network_with_fewer_synapses(seed: int) -> None:
    (w, m), (wr, mr) = _matrices(seed)

    def sparse(w, mask):
        rows, cols = np.nonzero(mask)
        return Sparse(rows, cols, w[rows, cols], w.shape)

    x = (np.random.default_rng(seed).random((40, 3, 20)) < 0.3).astype(float)
    dense = nmcompile.run(_net(Dense(w), Dense(wr)), x, record=True)
    ours = nmcompile.run(_net(sparse(w, m), sparse(wr, mr)), x, record=True)
    assert dense.spikes["n"].sum() > 50
    assert np.array_equal(ours.spikes["n"], dense.spikes["n"])
    assert np.array_equal(ours.states["n"]["v"], dense.states["n"]["v"])
    # events count stored synapses only: those of the dense matrix's stored entries
    fan = m.sum(axis=0)
    assert ours.counters["synaptic_events"]["p"] == int(((x.reshape(-1, 20) != 0) @ fan).sum())


def test_sparse_is_checked_stored_and_named() -> None:
    with pytest.raises(GraphError, match="rows fall outside"):
        Sparse([0, 30], [0, 1], [1.0, 2.0], (30, 20))
    with pytest.raises(GraphError, match="same length"):
        Sparse([0, 1], [0], [1.0], (30, 20))
    g = _net(Sparse([0, 0, 5], [1, 1, 19], [0.5, 0.25, 0.0], (30, 20)))  # a repeat adds up
    assert g["p"].rows.dtype == np.int32
    assert {r["name"]: r["synapses"] for r in summarize(g)}["p"] == 3
    x = np.zeros((2, 1, 20))
    x[0, 0, 1] = 1
    v = nmcompile.run(g, x, record=True).states["n"]["v"]
    assert v[0, 0, 0] == 0.75
    with pytest.raises(UnsupportedError, match=r"node 'p' \(Sparse\) has no NIR equivalent"):
        nmcompile.to_nir(g)


def test_the_reservoir_builds_saves_loads_and_runs(tmp_path) -> None:
    """examples/reservoir.py at 1/50 of its size: 2,000 neurons, 100 synapses each."""
    g = build_reservoir(2000, 100)
    assert g["exc"].values.size + g["inh"].values.size == 2000 * 100
    assert (g["exc"].values >= 0).all() and (g["inh"].values <= 0).all()
    assert [d for a, b, d in g.edges() if a == "res" and b in ("exc", "inh")] == [1, 2]
    back = nmcompile.load(nmcompile.save(g, tmp_path / "res.nmc"))
    assert back == g
    x = (np.random.default_rng(0).random((30, 1, 100)) < 0.2).astype(float)
    result = nmcompile.run(back, x, record=True)
    rate = result.spikes["res"].mean()
    assert 0.005 < rate < 0.3  # active, not saturated


def test_a_sparse_projection_quantises_to_qsparse_without_a_dense_matrix(monkeypatch) -> None:
    g = build_reservoir(2000, 100)
    # a dense 2000 x 2000 float64 matrix takes 32 MB: a budget of 16 MB refuses any such step
    monkeypatch.setenv("NMCOMPILE_MAX_BYTES", "16M")
    q = nmcompile.quantize(g)
    from nmcompile.ir import QSparse

    recurrent = [n for n in q.nodes if n.startswith("res.from_res")]
    assert len(recurrent) == 2 and all(isinstance(q[n], QSparse) for n in recurrent)
    kept = sum(q[n].values.size for n in recurrent)  # less those that round to zero
    assert 0.99 * 2000 * 100 < kept <= 2000 * 100
    monkeypatch.delenv("NMCOMPILE_MAX_BYTES")
    x = (np.random.default_rng(0).random((30, 1, 100)) < 0.2).astype(np.int64)
    floats, fixed = (nmcompile.run(h, x, record=True).spikes["res"] for h in (g, q))
    assert fixed.sum() > 100 and (floats == fixed).mean() > 0.95


def test_a_large_sparse_file_takes_at_most_6_bytes_per_synapse(tmp_path) -> None:
    """70,000 neurons (indices past 16 bits), 10 synapses each: the quantised reservoir's
    sparse projections take at most 6 bytes a synapse on file (rows as one count per row)."""
    g = nmcompile.quantize(build_reservoir(70_000, 10))
    sparse = [n for n, node in g.nodes.items() if hasattr(node, "values")]
    synapses = sum(g[n].values.size for n in sparse)
    dense_bytes = sum(node.weight.size for node in g.nodes.values() if hasattr(node, "weight"))
    path = nmcompile.save(g, tmp_path / "r.nmc")
    assert (path.stat().st_size - dense_bytes) / synapses <= 6
    assert nmcompile.load(path) == g


def test_the_estimate_counts_the_same_synapses_before_and_after_quantisation() -> None:
    """Where a projection keeps its kind (a convolution stays QConv2d, a matrix QDense) the
    float and quantised graphs store the same synapses; where the quantiser stores sparse
    without the weights that round to zero, the estimate names what it dropped."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from scale import build

    for net in ("dvs", "reservoir"):
        g = build(net, 0.01)
        q = nmcompile.quantize(g)
        x = (np.random.default_rng(0).random((5, 1, *g[g.inputs[0]].shape)) < 0.1)
        ef, eq = (nmcompile.estimate(h, x.astype(np.int64)).to_json() for h in (g, q))
        float_syn = {r["name"]: r["synapses"] for r in ef["layers"] if r["synapses"]}
        fixed_syn = {r["name"]: r["synapses"] for r in eq["layers"] if r["synapses"]}
        dropped = eq["dropped_synapses"]
        assert {k: float_syn[k] - fixed_syn[k] for k in float_syn} == {
            k: dropped.get(k, 0) for k in float_syn}, net
        assert bool(dropped) == (net == "reservoir")
    assert "quantisation dropped" in nmcompile.estimate(q, x.astype(np.int64)).table()


def test_the_emulator_runs_unsorted_and_repeated_sparse_entries_as_their_dense_matrix() -> None:
    """The emulator builds its CSR matrices from a QSparse's entries as they are: rows in any
    order, a repeated (row, col) summed, equal to the QDense of the summed matrix."""
    from nmcompile.ir import QLIF, QDense, QSparse

    rng = np.random.default_rng(3)
    rows, cols = rng.integers(0, 12, 300), rng.integers(0, 20, 300)  # unsorted, repeats
    values = rng.integers(-20, 40, 300)
    sparse = QSparse(rows, cols, values, (12, 20))
    dense = np.zeros((12, 20), np.int64)
    np.add.at(dense, (rows, cols), values)
    x = (rng.random((30, 2, 20)) < 0.3).astype(np.int64)
    results = []
    for proj in (sparse, QDense(dense)):
        g = Graph()
        g.add_node("x", Input((20,)))
        g.add_node("p", proj)
        g.add_node("n", QLIF(vth=200, du=2048, dv=512))
        g.add_node("o", Output())
        for a, b in (("x", "p"), ("p", "n"), ("n", "o")):
            g.add_edge(a, b)
        results.append(nmcompile.run(g, x, record=True))
    assert results[1].spikes["n"].sum() > 20
    assert np.array_equal(results[0].spikes["n"], results[1].spikes["n"])
    assert np.array_equal(results[0].states["n"]["v"], results[1].states["n"]["v"])
