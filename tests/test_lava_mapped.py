"""A graph mapped onto cores runs on Lava split as it is placed (issue 15, point 5): one neuron
process per layer and core, one connection process per (source piece, target piece) pair, and
every layer's spikes and u/v states reassembled from its pieces equal the emulator's.

Every Lava run of the module shares one worker (`run_many`): random graphs mapped with both
strategies onto a chip of 16-neuron cores (dense, sparse with its source gathered, a
self-recurrent layer, delays, an LI readout, graded inputs, convolutions and pooling), a
convolution on 32- and 48-neuron cores whose pieces are whole output channels (stock `Conv`s
of their kernel slices) next to direct links, and the trained digits model on 4 cores.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from hygiene import children
from random_graphs import random_graph, weights
from test_mapping import chip_file

import nmcompile
from backends import lava as lava_backend
from nmcompile import demo
from nmcompile.errors import LimitError
from nmcompile.ir import Graph, Input, Output
from nmcompile.ir.quantized import QLIF, QConv2d, QDense

#: Random graph seeds (tests/random_graphs.py): conv, conv_negexp, pool, recurrent, sparse
#: (weight_exp -1 with odd weights: its split source is gathered), readout, graded, conv,
#: delays. Each is mapped with both strategies.
SEEDS = (1, 2, 3, 4, 8, 9, 10, 12, 18)
STRATEGIES = ("traffic", "sequential")
DIGITS_SAMPLES = 16


def conv_graph(direct: bool) -> Graph:
    """x (2, 6, 6) -> 3x3 conv -> c1 (4, 4, 4) -> 2x2 conv -> c2 (3, 3, 3) -> dense -> o; with
    `direct`, c1 also feeds layer d directly (no projection), and d feeds layer e directly."""
    rng = np.random.default_rng(1)
    g = Graph()
    g.add_node("x", Input((2, 6, 6)))
    g.add_node("conv", QConv2d(weights(rng, (4, 2, 3, 3), "excitatory"), 0))
    g.add_node("c1", QLIF(vth=300, du=1000, dv=500))
    g.add_node("conv2", QConv2d(weights(rng, (3, 4, 2, 2), "mixed"), 0))
    g.add_node("c2", QLIF(vth=200, du=1000, dv=500))
    g.add_node("fc", QDense(weights(rng, (5, 27))))
    g.add_node("o", QLIF(vth=100))
    g.add_node("out", Output())
    edges = [("x", "conv"), ("conv", "c1"), ("c1", "conv2"), ("conv2", "c2"), ("c2", "fc"),
             ("fc", "o"), ("o", "out")]
    if direct:
        g.add_node("d", QLIF(vth=1, du=2000))
        g.add_node("e", QLIF(vth=1))
        g.add_node("out2", Output())
        edges += [("c1", "d"), ("d", "e"), ("e", "out2")]
    for a, b in edges:
        g.add_edge(a, b)
    return g


def digits_model() -> demo.Demo:
    """The demo's digits network, trained briefly (one epoch) and quantised for Loihi 2."""
    d = demo.Demo(out_dir=Path(tempfile.mkdtemp(prefix="digits-")), epochs=1, hidden=64,
                  log=lambda _: None)
    for stage in (demo.stage_train, demo.stage_export, demo.stage_quantize):
        stage(d)
    return d


def pieces(graph: Graph) -> dict[str, int]:
    return {layer: int(np.unique(c).size) for layer, c in graph.placement.cores.items()}


@pytest.fixture(scope="module")
def chips(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    folder = tmp_path_factory.mktemp("chips")
    return {n: chip_file(folder, f"cores{n}", neurons=n, tiles=(8, 8)) for n in (16, 32, 48)}


@pytest.fixture(scope="module")
def runs(chips: dict[int, Path]) -> list[tuple[str, Graph, np.ndarray, object]]:
    """(label, mapped graph, spikes, Lava result) of every case, from one Lava worker."""
    cases = []
    for seed in SEEDS:
        g, x, tags = random_graph(seed)
        for strategy in STRATEGIES:
            mapped = nmcompile.map(g, chips[16], strategy=strategy, inputs=x)
            cases.append((f"seed {seed} {strategy} ({'/'.join(sorted(tags)[:3])})", mapped, x))
    x = (np.random.default_rng(5).random((12, 2, 2, 6, 6)) < 0.4).astype(np.int64)
    for n, strategy, direct in ((32, "sequential", False), (48, "sequential", True),
                                (32, "traffic", True)):
        mapped = nmcompile.map(conv_graph(direct), chips[n], strategy=strategy, inputs=x)
        cases.append((f"conv on {n}-neuron cores, {strategy}", mapped, x))
    d = digits_model()
    x = d.test_spikes[:, :DIGITS_SAMPLES]
    cases.append(("digits", nmcompile.map(d.qgraph, "loihi2", cores=4, inputs=x), x))
    results = lava_backend.run_many([(g, x) for _, g, x in cases], record=True, timeout_s=900)
    return [(*case, result) for case, result in zip(cases, results, strict=True)]


def differences(emulator, lava) -> list[str]:
    """Every way `lava` differs from `emulator`: spikes, u and v of every layer, outputs,
    and the counters both keep."""
    out = []
    for layer, spikes in emulator.spikes.items():
        if not np.array_equal(spikes, lava.spikes.get(layer)):
            out.append(f"spikes of {layer!r}")
    for layer, states in emulator.states.items():
        for var, values in states.items():
            if not np.array_equal(values, lava.states.get(layer, {}).get(var)):
                out.append(f"{var} of {layer!r}")
    for name, values in emulator.outputs.items():
        got = lava.outputs[name]
        if got.dtype != values.dtype or not np.array_equal(got, values):
            out.append(f"output {name!r}")
    for counter in ("spikes", "neuron_updates", "synaptic_events"):
        if lava.counters[counter] != emulator.counters[counter]:
            out.append(f"counter {counter}")
    return out


def test_split_layers_equal_the_emulator_every_spike_and_state(runs) -> None:
    assert len(runs) >= 10
    for label, g, x, lava in runs:
        assert max(pieces(g).values()) >= 2, f"{label}: no layer is split"
        emulator = nmcompile.run(g, x, record=True)
        assert set(lava.states) == set(emulator.states) == set(g.placement.cores)
        assert not (where := differences(emulator, lava)), f"{label}: Lava differs in {where}"
        assert sum(emulator.counters["spikes"].values()) > 0, label


def test_the_cases_cover_the_lowerings_of_pieces(runs) -> None:
    """Dense and sparse pairs, delayed pairs, gathers, stock Conv slices and their Sparse
    fall-backs, selections and direct links, and split recurrent and LI layers."""
    plans = {label: lava_backend.lower(g) for label, g, _, _ in runs}
    names = [p.name for plan in plans.values() for p in plan.procs]
    kinds = {p.kind for plan in plans.values() for p in plan.procs}
    assert {"Dense", "DelayDense", "Sparse", "Conv", "LIF", "LIFReset", "FixedNeuron"} <= kinds
    assert any(".gather[" in n for n in names) and any(n.startswith("rec[h@") for n in names)
    notes = [p.note for plan in plans.values() for p in plan.procs]
    assert any("its source 'c1' is split" in n for n in notes)
    assert any("part of an output channel" in n for n in notes)
    assert any(n.startswith("selection: direct link 'c1' -> 'd'") for n in notes)
    # 48-neuron cores: c1 (4 channels of 16) on two cores, channels 0-2 and 3, each a stock
    # Conv of its kernel slice; d and e are split alike, so d feeds e without a process
    plan = plans["conv on 48-neuron cores, sequential"]
    convs = [p for p in plan.procs if p.node == "conv"]
    assert [(p.kind, p.params["weight"].shape[0]) for p in convs] == [("Conv", 3), ("Conv", 1)]
    assert [p.note for p in convs] == ["output channels 0-2 of 4", "output channels 3 of 4"]
    assert [(p.name, p.inputs) for p in plan.procs if p.node == "e"] == \
        [("e@5", ["d@3"]), ("e@6", ["d@4"])]
    assert {c.node for c in plan.counts} == {"conv", "conv2", "fc"}
    for label, plan in plans.items():  # every process names its core, but lines on an input
        for p in plan.procs:
            assert p.core is not None or p.node is None, (label, p.name)


def test_the_digits_model_on_four_cores(runs) -> None:
    label, g, x, lava = runs[-1]
    assert label == "digits"
    assert pieces(g)["lif1"] >= 2 and g.placement.n_cores >= 4
    plan = lava_backend.lower(g)
    assert all(p.stock for p in plan.procs)  # still deployable, piece by piece
    layers = {x.name: x.procs for x in plan.layers}
    pairs = [p for p in plan.procs if p.kind == "Dense"]
    # a Dense per (source piece, target piece): the input is whole
    assert len(pairs) == len(layers["lif1"]) * (1 + len(layers["lif3"]))
    assert lava.counters["lava"]["processes"] == len(plan.procs)
    emulator = nmcompile.run(g, x, record=True)
    predicted = emulator.outputs["output"].sum(axis=0).argmax(axis=1)
    assert np.array_equal(lava.outputs["output"].sum(axis=0).argmax(axis=1), predicted)


def test_too_many_pieces_are_refused_before_any_worker_starts(chips) -> None:
    rng = np.random.default_rng(0)
    g = Graph()
    g.add_node("x", Input((20,)))
    g.add_node("fc1", QDense(weights(rng, (600, 20))))
    g.add_node("h", QLIF(vth=100))
    g.add_node("fc2", QDense(weights(rng, (40, 600))))
    g.add_node("o", QLIF(vth=100))
    g.add_node("out", Output())
    for a, b in (("x", "fc1"), ("fc1", "h"), ("h", "fc2"), ("fc2", "o"), ("o", "out")):
        g.add_edge(a, b)
    m = nmcompile.map(g, chips[16], strategy="sequential")
    n = pieces(m)
    need = 2 * (n["h"] + n["o"]) + n["h"] * (1 + n["o"]) + 1  # neurons, recorders, pairs, x
    x = np.zeros((3, 1, 20), np.int64)
    before, start = children(), time.perf_counter()
    with pytest.raises(LimitError, match=rf"needs {need} Lava processes, more than "
                                         rf"max_processes=128: the mapping onto \d+ cores "
                                         rf".*pass max_processes={need}"):
        nmcompile.run(m, x, backend="lava")
    assert time.perf_counter() - start < 2.0 and children() == before  # nothing started
    assert lava_backend.lower(m, max_processes=need).n_processes == need


def test_a_placement_that_splits_nothing_lowers_as_the_unplaced_graph() -> None:
    g, _, _ = random_graph(4)  # a self-recurrent layer: every layer fits one Loihi 2 core
    m = nmcompile.map(g, "loihi2")
    assert max(pieces(m).values()) == 1
    plain, placed = lava_backend.lower(g), lava_backend.lower(m)
    assert [(p.name, p.kind, p.node, p.inputs) for p in placed.procs] == \
        [(p.name, p.kind, p.node, p.inputs) for p in plain.procs]
    for a, b in zip(plain.procs, placed.procs, strict=True):
        assert all(np.array_equal(np.asarray(a.params[k]), np.asarray(b.params[k]))
                   for k in a.params), a.name
        assert a.core is None and b.core is not None
    assert [c.proc for c in placed.counts] == [c.proc for c in plain.counts]


def test_the_bundle_records_each_process_core_and_runs(runs, tmp_path: Path) -> None:
    label, g, x, _ = next(r for r in runs if r[0].startswith("seed 4 traffic"))
    out = nmcompile.compile(g, tmp_path / "lava", "lava", spikes=x)
    plan = lava_backend.lower(g)
    report = json.loads((out / "lowering.json").read_text())
    assert {r["process"]: r["core"] for r in report["processes"]} == \
        {p.name: p.core for p in plan.procs}
    assert [p["process"] for p in report["pieces"]["h"]] == plan.layer("h").procs
    readme = (out / "README.md").read_text()
    assert "| process | Lava kind | IR node | core | on a Loihi chip | note |" in readme
    for p in plan.procs:
        assert f"| `{p.name}` | {p.kind} | `{p.node or '-'}` | {p.core} |" in readme, p.name
    done = subprocess.run([sys.executable, str(out / "run.py")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    emulator = nmcompile.run(g, x, record=True)
    with np.load(out / "output.npz") as got:
        for layer, spikes in emulator.spikes.items():
            assert np.array_equal(got[f"spikes/{layer}"], spikes), (label, layer)
