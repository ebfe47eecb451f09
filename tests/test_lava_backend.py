"""The Lava backend against the emulator: every spike of every layer on every step.

Over 100 seeded random quantised graphs (dense, sparse, convolutions with stride, padding,
dilation and groups, pooling as a depthwise convolution, flatten, a self-recurrent layer, an
excitatory -> inhibitory -> excitatory loop with delay 2, skip connections, edge delays, IF,
ALIF, both resets, per-neuron decays and thresholds, biases, LI readouts, graded inputs, a
delay longer than Loihi's 63 steps) and the Loihi 2 chip trace of the NIR paper, all run on
real lava-nc 0.10 (`Loihi2SimCfg(select_tag="fixed_pt")`) through `nmcompile.run(...,
backend="lava")`, in one Lava worker: the whole module costs one start-up.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from random_graphs import N_GRAPHS, chain, random_graph

import nmcompile
from backends import lava as lava_backend
from backends.lava.lowering import CycleTooShortError
from backends.lava.plan import Plan
from nmcompile.contract import raise_problems
from nmcompile.errors import UnsupportedError
from nmcompile.ir import LIF, Graph, Input, Output
from nmcompile.ir.quantized import QLI, QLIF, QDense

FIXTURES = Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures" / "nir-paper"


def loihi_fixture() -> tuple[Graph, np.ndarray, np.ndarray]:
    """01_lif of the NIR paper, parameters as its README states (nir_to_lava.py)."""
    data = np.loadtxt(FIXTURES / "01_lif_lif_lava_loihi_fixed.csv", delimiter=",")
    dt, tau = 1e-4, 0.0025
    g = Graph()
    g.add_node("x", Input((1,)))
    g.add_node("w", QDense([[int(dt / tau * 256)]]))
    g.add_node("n", QLIF(vth=int(0.1 * 131071) >> 9, du=4095, dv=int(dt / tau * 4095)))
    g.add_node("o", Output())
    chain(g, "x", "w", "n", "o")
    return g, data[:, 0].reshape(-1, 1, 1).astype(np.int64), data


# --------------------------------------------------------------------------------------------
# One Lava worker for the module: every random graph, and the chip fixture.
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runs():
    cases = [random_graph(seed) for seed in range(N_GRAPHS)]
    items = [(g, x) for g, x, _ in cases]
    fixture = loihi_fixture() if FIXTURES.is_dir() else None
    if fixture is not None:
        items.append(fixture[:2])
    results = lava_backend.run_many(items, record=True, timeout_s=900)
    return cases, results[:len(cases)], (fixture, results[-1] if fixture else None)


def first_difference(reference, other) -> str | None:
    for layer, spikes in reference.spikes.items():
        diff = np.argwhere(spikes != other.spikes[layer])
        if len(diff):
            t, b, i = diff[0]
            return f"layer {layer!r}, step {t}, sample {b}, neuron {i}"
    for name, values in reference.outputs.items():
        if values.dtype != other.outputs[name].dtype or not np.array_equal(
                values, other.outputs[name]):
            return f"output {name!r}"
    return None


def test_random_graphs_equal_the_emulator_every_spike(runs) -> None:
    cases, results, _ = runs
    assert len(cases) >= 100
    for seed, ((g, x, tags), lava) in enumerate(zip(cases, results, strict=True)):
        emulator = nmcompile.run(g, x, record=True)
        where = first_difference(emulator, lava)
        assert where is None, f"graph {seed} ({sorted(tags)}): Lava differs at {where}"
        assert set(lava.spikes) == set(emulator.spikes)
        for counter in ("spikes", "neuron_updates", "synaptic_events"):
            assert lava.counters[counter] == emulator.counters[counter], (seed, counter)


def test_random_graphs_cover_the_acceptance_list(runs) -> None:
    cases, results, _ = runs
    tags = set().union(*(t for _, _, t in cases))
    wanted = {"dense", "sparse", "conv", "stride", "padding", "dilation", "groups", "pooling",
              "flatten", "recurrent", "self_loop_delay1", "two_hop_loop", "loop_delay2", "skip",
              "edge_delays", "if", "alif", "reset_zero", "reset_subtract", "per_neuron", "bias",
              "li_readout", "graded_input", "conv_negexp", "delay_over_63"}
    assert wanted <= tags, f"not covered: {sorted(wanted - tags)}"
    kinds = {row["kind"] for g, _, _ in cases for row in lava_backend.lower(g).report()}
    assert kinds == {"LIF", "LIFReset", "FixedNeuron", "Dense", "DelayDense", "Sparse",
                     "DelaySparse", "Conv"}
    # the comparison is about spikes that happen: most layers are active
    layers = [s.mean() for r in results for s in r.spikes.values()]
    assert np.mean([0 < rate < 1 for rate in layers]) > 0.8


@pytest.mark.skipif(not FIXTURES.is_dir(), reason="the workplace's shared fixtures are absent")
def test_loihi_chip_trace(runs) -> None:
    _, _, (fixture, lava) = runs
    g, x, data = fixture
    s = lava.output()[:, 0, 0]
    # The chip recording shows Lava's Dense latency (row t + 1 is IR step t); the backend
    # returns IR time.
    assert np.array_equal(s[:-1], data[1:, 2].astype(int))
    assert s.sum() == 4
    assert np.array_equal(lava.output(), nmcompile.run(g, x).output())


# --------------------------------------------------------------------------------------------
# Lowering without running Lava.
# --------------------------------------------------------------------------------------------


def ei_loop(delay_ei: int, delay_ie: int) -> Graph:
    g = Graph()
    g.add_node("x", Input((3,)))
    g.add_node("in", QDense(np.full((4, 3), 10)))
    g.add_node("E", QLIF(vth=5))
    g.add_node("w_ei", QDense(np.full((2, 4), 10)))
    g.add_node("I", QLIF(vth=5))
    g.add_node("w_ie", QDense(np.full((4, 2), -10)))
    g.add_node("o", Output())
    chain(g, "x", "in", "E", "o")
    g.add_edge("E", "w_ei", delay_ei)
    chain(g, "w_ei", "I", "w_ie")
    g.add_edge("w_ie", "E", delay_ie)
    return g


def test_cycle_with_too_little_delay_is_refused_naming_it() -> None:
    with pytest.raises(CycleTooShortError, match=r"E -> w_ei -> I -> w_ie -> E has IR delay 1 "
                                                 r"but 2 Lava hop"):
        lava_backend.lower(ei_loop(1, 0))
    with pytest.raises(CycleTooShortError):
        nmcompile.run(ei_loop(0, 1), np.zeros((3, 1, 3)), backend="lava")
    plan = lava_backend.lower(ei_loop(1, 1))  # delay 2 covers the two hops
    assert {layer.name: layer.depth for layer in plan.layers} == {"E": 1, "I": 1}


def test_skip_connection_is_balanced_with_delay() -> None:
    g = Graph()
    g.add_node("x", Input((3,)))
    for name, shape in (("wa", (4, 3)), ("wb", (5, 4)), ("skip", (5, 3))):
        g.add_node(name, QDense(np.full(shape, 2)))
    g.add_node("a", QLIF(vth=1))
    g.add_node("b", QLIF(vth=1))
    g.add_node("o", Output())
    chain(g, "x", "wa", "a", "wb", "b", "o")
    chain(g, "x", "skip", "b")
    plan = lava_backend.lower(g)
    assert plan.layer("b").depth == 2
    skip = plan.proc("skip")
    assert skip.kind == "DelayDense" and skip.params["delays"] == 1


def test_stock_and_custom_choices_are_reported() -> None:
    g = Graph()
    g.add_node("x", Input((2,)))
    g.add_node("w1", QDense(np.full((3, 2), 4)))
    g.add_node("a", QLIF(vth=10, du=100, dv=50))  # scalar, zero reset, no bias: stock LIF
    g.add_node("w2", QDense(np.full((3, 3), 4)))
    g.add_node("b", QLIF(vth=np.array([1, 2, 3]), reset="subtract"))
    g.add_node("w3", QDense(np.full((2, 3), 4)))
    g.add_node("c", QLI())
    g.add_node("o", Output())
    chain(g, "x", "w1", "a", "w2", "b", "w3", "c", "o")
    rows = {r["process"]: r for r in lava_backend.lower(g).report()}
    assert rows["a"]["kind"] == "LIF" and rows["a"]["deployable"]
    assert rows["w1"]["kind"] == "Dense" and rows["w1"]["deployable"]
    assert rows["b"]["kind"] == "FixedNeuron" and not rows["b"]["deployable"]
    assert "reset by subtraction" in rows["b"]["note"] and "per-neuron vth" in rows["b"]["note"]
    assert rows["c"]["kind"] == "FixedNeuron" and "LI readout" in rows["c"]["note"]


def test_weights_lava_would_change_are_refused_naming_the_node() -> None:
    def graph(weights) -> Graph:
        g = Graph()
        g.add_node("x", Input((2,)))
        g.add_node("proj", QDense(weights))
        g.add_node("n", QLIF(vth=1))
        g.add_node("o", Output())
        chain(g, "x", "proj", "n", "o")
        return g

    # mixed sign: Lava drops the lowest bit of an odd weight, so 8-bit mantissas are given
    # doubled with the exponent one lower (exact); 201 is odd and has no 8-bit half
    (dense,) = [p for p in lava_backend.lower(graph([[3, -2]])).procs if p.kind == "Dense"]
    assert dense.params["weights"].tolist() == [[6, -4]] and dense.params["weight_exp"] == -1
    with pytest.raises(UnsupportedError, match=r"'proj': weights in -2\.\.201, odd ones"):
        raise_problems(lava_backend.check(graph([[201, -2]])))
    with pytest.raises(UnsupportedError, match=r"'proj': weights in 0\.\.300 "):
        raise_problems(lava_backend.check(graph([[300, 0]])))


def test_float_graphs_are_refused_naming_the_node() -> None:
    g = Graph()
    g.add_node("x", Input((1,)))
    g.add_node("n", LIF(beta=0.5))
    g.add_node("o", Output())
    chain(g, "x", "n", "o")
    with pytest.raises(UnsupportedError, match="node 'n' is a LIF"):
        nmcompile.run(g, np.ones((2, 1, 1)), backend="lava")


def test_plan_round_trips_through_plain_arrays() -> None:
    g, _, _ = random_graph(1)  # a convolution: (X, Y, C) order, tuples, arrays
    plan = lava_backend.lower(g)
    back = Plan.from_arrays(plan.to_arrays("p/"), "p/")
    assert back.report() == plan.report()
    for a, b in zip(plan.procs, back.procs, strict=True):
        assert a.params.keys() == b.params.keys() and a.inputs == b.inputs
        for key, value in a.params.items():
            assert np.array_equal(np.asarray(value), np.asarray(b.params[key])), (a.name, key)
    assert all(np.array_equal(a.perm, b.perm) for a, b in zip(plan.layers, back.layers,
                                                              strict=True))


def test_import_is_cheap() -> None:
    import subprocess
    import sys

    code = ("import sys, backends.lava as b; assert 'lava' not in sys.modules; "
            "assert 'torch' not in sys.modules; print(sorted(set(dir(b)) & {'run', 'compile', "
            "'check', 'capabilities', 'build'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1], timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['build', 'capabilities', 'check', 'compile', 'run']"


def test_an_all_negative_matrix_holding_minus_256_runs_as_mixed() -> None:
    """Only mixed-sign synapses store -256: the sign mode is passed to Lava, not inferred."""
    g = Graph()
    g.add_node("x", Input((2,)))
    g.add_node("proj", QDense([[-256, -2], [-2, -256]]))
    g.add_node("n", QLIF(vth=1, bias_mant=200, bias_exp=6))
    g.add_node("o", Output())
    chain(g, "x", "proj", "n", "o")
    x = np.zeros((12, 1, 2), np.uint8)
    x[::3, 0, 0] = 1
    report = nmcompile.verify(g, x, ["emulator", "lava"])
    assert report.equal, report.mismatches
    assert report.backends["lava"]["spikes"] > 0
