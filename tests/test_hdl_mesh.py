"""A placed graph on nm_mesh (issue 16): R x C generic cores joined by XY routers, each core
programmed with its pieces of the mapping, equal to the emulator on every spike, u and v,
output and counter, and its routers' packet counts equal to the emulator's measured traffic
(messages and hops per core, packets per link) on the same mapping.

Verilator runs random graphs (dense, sparse, convolutions, recurrence, delays, E/I loops,
graded inputs, LI readouts) mapped onto 2, 4 and 9 cores, one build per mesh size shared by
its graphs (the 2 x 2 mesh with 2 accumulate lanes); Icarus runs a few, a 1 x 1 mesh, and a
router link held busy (nothing lost, spikes unchanged, only cycles).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from random_graphs import random_graph

import nmcompile
from backends.hdl.mesh import build_mesh, merge_mesh
from backends.hdl.mesh_runner import run_mesh
from backends.hdl.runner import run_hdl

#: (columns, rows) -> (seeds, lanes) run by Verilator on one build per mesh.
VERILATOR = {(2, 1): ((1, 4, 6, 7, 8, 9, 10), 1),
             (2, 2): ((2, 3, 5, 11, 12, 15, 16, 18), 2),
             (3, 3): ((13, 14, 17, 19, 20, 21), 1)}
ICARUS_SEEDS = (22, 23, 0)
TRAFFIC = ("core_messages", "spike_hops", "link_packets")


def mesh_chip(folder: Path, tiles: tuple[int, int], neurons: int = 64) -> Path:
    """A mesh of small verilog cores (17-bit synapse words), `tiles` = (columns, rows)."""
    src = 'source = "test"'
    path = folder / f"mesh{tiles[0]}x{tiles[1]}.toml"
    path.write_text(f"""name = "mesh{tiles[0]}x{tiles[1]}"
[core]
neurons = {{ value = {neurons}, {src} }}
synapse_memory_bits = {{ value = {1 << 24}, {src} }}
input_axons = {{ value = 4096, {src} }}
output_axons = {{ value = 4096, {src} }}
conv_stored = {{ value = "unrolled", {src} }}
[core.synapse_bits]
dense = {{ value = 17, {src} }}
sparse = {{ value = 17, {src} }}
conv = {{ value = 17, {src} }}
[mesh]
tiles = {{ value = [{tiles[0]}, {tiles[1]}], {src} }}
cores_per_tile = {{ value = 1, {src} }}
chips_per_board = {{ value = 1, {src} }}
host = {{ value = [0, 0], side = "west", {src} }}
""")
    return path


def differences(ref, got) -> list[str]:
    """Every way `got` differs from the emulator's `ref`, traffic included."""
    out = [f"spikes of {k}" for k, v in ref.spikes.items() if not np.array_equal(v, got.spikes[k])]
    out += [f"{var} of {k}" for k, st in ref.states.items() for var, v in st.items()
            if not np.array_equal(v, got.states[k][var])]
    out += [f"output {k}" for k, v in ref.outputs.items()
            if got.outputs[k].dtype != v.dtype or not np.array_equal(v, got.outputs[k])]
    out += [f"counter {c}" for c in ("spikes", "neuron_updates", "synaptic_events",
                                     "synaptic_events_nonzero", "active_neuron_updates",
                                     "unsafe_updates") if ref.counters[c] != got.counters[c]]
    out += [f"traffic {k}: {ref.traffic[k]} != {got.traffic[k]}" for k in TRAFFIC
            if ref.traffic[k] != got.traffic[k]]
    return out


def mapped(folder: Path, tiles: tuple[int, int], seed: int):
    g, x, tags = random_graph(seed)
    return nmcompile.map(g, mesh_chip(folder, tiles), cores=tiles[0] * tiles[1], inputs=x), x, tags


@pytest.fixture(scope="module")
def verilator_runs(tmp_path_factory: pytest.TempPathFactory) -> list[tuple]:
    """(tiles, seed, tags, mapped graph, emulator result, mesh run) of every Verilator case."""
    folder = tmp_path_factory.mktemp("meshes")
    runs = []
    for tiles, (seeds, lanes) in VERILATOR.items():
        cases = [(seed, *mapped(folder, tiles, seed)) for seed in seeds]
        sizes = merge_mesh(*(build_mesh(m, input_max=int(np.abs(x).max()), lanes=lanes).params
                             for _, m, x, _ in cases))
        for seed, m, x, tags in cases:
            run = run_mesh(m, x, record=True, simulator="verilator", sizes=sizes, lanes=lanes)
            runs.append((tiles, seed, tags, m, nmcompile.run(m, x, record=True), run))
    return runs


def test_mapped_graphs_on_2_4_and_9_cores_equal_the_emulator(verilator_runs) -> None:
    assert len(verilator_runs) >= 20
    tags = set()
    for tiles, seed, t, m, ref, run in verilator_runs:
        label = f"seed {seed} on {tiles[0]}x{tiles[1]} ({'/'.join(sorted(t)[:4])})"
        assert m.placement.n_cores == tiles[0] * tiles[1], label
        assert not (d := differences(ref, run.result)), f"{label}: {d}"
        between = {k: v for k, v in ref.traffic["core_messages"].items() if k != "host"}
        assert sum(ref.traffic["spike_hops"].get(k, 0) for k in between) > 0, label
        tags |= t
    assert {"dense", "sparse", "conv", "recurrent", "edge_delays", "ei_loop", "graded_input",
            "li_readout"} <= tags, tags


def test_ei_loops_cross_cores(verilator_runs) -> None:
    """The E/I loops' layers are split over cores, so that their spikes travel the mesh."""
    loops = [(m, run) for _, _, t, m, _, run in verilator_runs if "ei_loop" in t]
    assert loops
    for m, run in loops:
        assert all(np.unique(c).size > 1 for c in m.placement.cores.values())
        assert run.result.traffic["link_packets"]


def test_waves_and_lanes_cut_cycles(verilator_runs) -> None:
    """Lanes (the 2 x 2 builds) and more cores change only cycles; every step is counted."""
    for _, _, _, _, ref, run in verilator_runs:
        assert run.cycles.shape == next(iter(ref.spikes.values())).shape[:2]
        assert (run.cycles > 0).all()


@pytest.mark.parametrize("seed", ICARUS_SEEDS)
def test_icarus_runs_a_mapped_graph_through_nmcompile_run(tmp_path: Path, seed: int) -> None:
    """`nmcompile.run(placed, backend="verilog")` runs nm_mesh (Icarus, the default)."""
    m, x, _ = mapped(tmp_path, (2, 2), seed)
    ref = nmcompile.run(m, x, record=True)
    got = nmcompile.run(m, x, backend="verilog", record=True)
    assert not (d := differences(ref, got)), d


def test_a_1x1_mesh_is_the_single_core(tmp_path: Path) -> None:
    g, x, _ = random_graph(9)
    m = nmcompile.map(g, mesh_chip(tmp_path, (1, 1), neurons=4096), inputs=x)
    mesh = run_mesh(m, x, record=True, simulator="icarus")
    core = run_hdl(g, x, record=True)
    assert not (d := differences(nmcompile.run(m, x, record=True), mesh.result)), d
    for k, v in core.result.spikes.items():
        assert np.array_equal(v, mesh.result.spikes[k])
    assert set(mesh.result.traffic["link_packets"]) == {"host->0,0"}  # no link but the host's


def test_a_busy_link_changes_only_the_cycles(tmp_path: Path) -> None:
    """Router (0, 0)'s east output held not ready on 3 clocks in 4: backpressure, nothing
    dropped: every spike, state and packet count as without the stall, more cycles."""
    m, x, _ = mapped(tmp_path, (2, 2), 4)
    free = run_mesh(m, x, record=True, simulator="icarus")
    busy = run_mesh(m, x, record=True, simulator="icarus", stall=(0, 4))
    ref = nmcompile.run(m, x, record=True)
    assert not (d := differences(ref, busy.result)), d
    assert free.result.traffic == busy.result.traffic
    assert free.result.traffic["link_packets"]["0,0->1,0"] > 0
    assert busy.cycles.sum() > free.cycles.sum()
