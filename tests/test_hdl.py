"""The Verilog core against the emulator: every spike, u and v of every layer on every step,
and every hardware counter, on seeded random quantised graphs simulated with real Icarus
Verilog (and a handful with real Verilator).

The random graphs are the Lava backend's (`tests/random_graphs.py`): dense,
sparse, convolutions (stride, padding, dilation, groups, negative exponents), pooling folded
into a depthwise convolution, a self-recurrent layer, an E -> I -> E loop, skip connections,
edge delays (one over 63 steps), IF/LIF/ALIF, both resets, per-neuron parameters, biases, LI
readouts and graded inputs. A few hand-built graphs add what only this core has to get
right: direct edges without a projection, two inputs, outputs that sum delayed sources.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from random_graphs import N_GRAPHS, random_graph

import nmcompile
from backends import hdl
from backends.hdl.program import apply_lanes, build_program, merge_sizes
from backends.hdl.project import identifiers
from nmcompile.contract import raise_problems
from nmcompile.errors import LimitError, UnsupportedError
from nmcompile.ir import LIF, Graph, Input, Output
from nmcompile.ir.quantized import QALIF, QLI, QLIF, QConv2d, QDense, QSparse

SEEDS = [*range(32), N_GRAPHS - 1]  # N_GRAPHS - 1: the delay over 63 steps
VERILATOR_SEEDS = (1, 4, 5, 7, 9, 10)  # conv, recurrent, E/I loop, delays, readout, graded
#: Counters the core keeps in hardware, with the emulator's keys and meaning.
HW_COUNTERS = ("spikes", "neuron_updates", "synaptic_events", "unsafe_updates")


def first_difference(ref, got) -> str | None:
    """The first (layer, step, sample, neuron) where two recorded results differ."""
    for layer, spikes in ref.spikes.items():
        diff = np.argwhere(spikes != got.spikes[layer])
        if len(diff):
            return f"spikes of {layer!r} at (step, sample, neuron) {tuple(diff[0])}"
    for layer, states in ref.states.items():
        for key in ("u", "v"):
            diff = np.argwhere(states[key] != got.states[layer][key])
            if len(diff):
                return f"{key} of {layer!r} at (step, sample, neuron) {tuple(diff[0])}"
    for name, values in ref.outputs.items():
        if values.dtype != got.outputs[name].dtype or not np.array_equal(values,
                                                                          got.outputs[name]):
            return f"output {name!r}"
    for key in HW_COUNTERS:
        if ref.counters[key] != got.counters[key]:
            return f"counter {key}: emulator {ref.counters[key]}, verilog {got.counters[key]}"
    for key in set(ref.counters) & set(got.counters):  # counters both sides keep
        if ref.counters[key] != got.counters[key]:
            return f"counter {key}: emulator {ref.counters[key]}, verilog {got.counters[key]}"
    return None


@pytest.mark.parametrize("seed", SEEDS)
def test_random_graph_equals_the_emulator_on_icarus(seed: int) -> None:
    g, x, tags = random_graph(seed)
    ref = nmcompile.run(g, x, record=True)
    got = nmcompile.run(g, x, backend="verilog", record=True)
    assert got.backend == "verilog"
    assert first_difference(ref, got) is None, (sorted(tags), first_difference(ref, got))
    assert sum(ref.counters["spikes"].values()) > 0  # a comparison of spikes that happen
    cycles = got.counters["cycles"]
    assert cycles["steps"] == x.shape[0] * x.shape[1] and cycles["per_step_min"] > 0


def test_random_graphs_cover_the_acceptance_list() -> None:
    tags = set().union(*(random_graph(seed)[2] for seed in SEEDS))
    want = {"dense", "conv", "pooling", "recurrent", "edge_delays", "if", "alif", "reset_zero",
            "reset_subtract", "per_neuron", "sparse", "li_readout", "graded_input", "skip",
            "delay_over_63", "two_hop_loop"}
    assert want <= tags, want - tags
    lif = [n for seed in SEEDS for n in random_graph(seed)[0].nodes.values()
           if isinstance(n, QLIF) and (np.any(n.du != 4095) or np.any(n.dv != 0))]
    assert lif  # leaky ones too, not only IF


def test_a_handful_equal_the_emulator_on_verilator_with_one_build() -> None:
    cases = [random_graph(seed) for seed in VERILATOR_SEEDS]
    sizes = merge_sizes(*(build_program(g, input_max=int(np.abs(x).max())).params
                          for g, x, _ in cases))
    for g, x, tags in cases:
        ref = nmcompile.run(g, x, record=True)
        got = hdl.run(g, x, record=True, simulator="verilator", sizes=sizes)
        assert first_difference(ref, got) is None, (sorted(tags), first_difference(ref, got))


# --------------------------------------------------------------------------------------------
# graphs that only this core makes special
# --------------------------------------------------------------------------------------------


def structure_graph() -> tuple[Graph, dict[str, np.ndarray]]:
    """Two inputs; a layer fed directly by an input (no projection) and by a projection; a
    layer fed directly by another layer through a delay; an LI readout; outputs that sum two
    sources, read an input, and carry delays."""
    rng = np.random.default_rng(3)
    g = Graph()
    g.add_node("a", Input((6,)))
    g.add_node("b", Input((4,)))
    g.add_node("fb", QDense(2 * rng.integers(-40, 60, (6, 4))))
    g.add_node("h", QLIF(vth=20, du=3000, dv=500, reset="subtract"))
    g.add_node("k", QALIF(vth=5, vth_step=3, da=800, du=4095, dv=200))
    g.add_node("w", QSparse([0, 1, 2, 2], [5, 0, 3, 4], [30, -40, 50, 22], (3, 6), 1))
    g.add_node("r", QLI(du=2000, dv=300, bias_mant=3))
    for name in ("o1", "o2", "o3"):
        g.add_node(name, Output())
    g.add_edge("a", "h")               # direct edge: a graded (signed) input into h
    g.add_node("fa", QDense(2 * rng.integers(-30, 30, (3, 6))))
    g.add_edge("a", "fa", 1)           # the same input through weights, an event delay
    g.add_edge("fa", "r")
    g.add_edge("b", "fb")
    g.add_edge("fb", "h", 1)           # a dendritic delay
    g.add_edge("h", "k", 2)            # direct, delayed, layer to layer
    g.add_edge("k", "w")
    g.add_edge("w", "r")
    g.add_edge("h", "o1")
    g.add_edge("k", "o1", 1)           # an output summing two spiking sources
    g.add_edge("r", "o2", 2)           # a voltage, delayed
    g.add_edge("a", "o3")              # an input, read back
    T, B = 20, 2
    x = {"a": rng.integers(-2, 4, (T, B, 6)) * (rng.random((T, B, 6)) < 0.5),  # signed
         "b": (rng.random((T, B, 4)) < 0.5).astype(np.uint8)}
    return g, x


def test_direct_edges_two_inputs_and_output_sums_equal_the_emulator() -> None:
    g, x = structure_graph()
    ref = nmcompile.run(g, x, record=True)
    got = nmcompile.run(g, x, backend="verilog", record=True)
    assert first_difference(ref, got) is None, first_difference(ref, got)
    assert ref.counters["spikes"]["h"] > 0 and ref.counters["spikes"]["k"] > 0
    assert got.outputs["o1"].dtype == np.uint8 and got.outputs["o2"].dtype == np.int64


def test_the_fixed_point_page_example_by_hand() -> None:
    """docs/fixed_point.md section 11, whose printed traces were worked by hand there."""
    g = Graph()
    g.add_node("x", Input((2,)))
    g.add_node("fc", QDense(np.array([[100, -40], [-60, 20]]), weight_exp=0))
    g.add_node("lif", QLIF(vth=150, du=1024, dv=512, bias_mant=5, bias_exp=2, reset="zero"))
    g.add_node("out", Output())
    for a, b in (("x", "fc"), ("fc", "lif"), ("lif", "out")):
        g.add_edge(a, b)
    spikes = np.array([[1, 0], [1, 1], [0, 0], [1, 0]]).reshape(4, 1, 2)
    r = nmcompile.run(g, spikes, backend="verilog", record=True)
    assert r.states["lif"]["u"][:, 0].T.tolist() == [[6400, 8638, 6476, 11255],
                                                     [-3840, -5439, -4077, -6896]]
    assert r.states["lif"]["v"][:, 0].T.tolist() == [[6420, 0, 6496, 0],
                                                     [-3820, -8761, -11722, -17132]]
    assert r.output()[:, 0].T.tolist() == [[0, 1, 0, 1], [0, 0, 0, 0]]
    assert r.counters["synaptic_events"] == {"fc": 8}  # 4 input spikes x 2 targets


def test_wrap_and_saturation_equal_the_emulator_and_are_counted() -> None:
    """Outside the safe range (docs/fixed_point.md section 8): u wraps, v saturates; the
    core's wider u follows the emulator's int64 arithmetic and counts each event."""
    g = Graph()
    g.add_node("x", Input((2,)))
    g.add_node("fc", QDense(np.array([[254, 254], [-256, -256]]), weight_exp=8))
    g.add_node("n", QLIF(vth=131071, du=0, dv=0))
    g.add_node("out", Output())
    for a, b in (("x", "fc"), ("fc", "n"), ("n", "out")):
        g.add_edge(a, b)
    x = np.ones((12, 1, 2), np.int64)
    ref = nmcompile.run(g, x, record=True)
    got = nmcompile.run(g, x, backend="verilog", record=True)
    assert ref.counters["unsafe_updates"]["n"] > 0
    assert first_difference(ref, got) is None, first_difference(ref, got)


# --------------------------------------------------------------------------------------------
# what the core refuses, and names
# --------------------------------------------------------------------------------------------


def chain(layers: list[tuple[str, object]], n_in: int) -> Graph:
    g = Graph(metadata={"quantization": {"profile": "loihi2"}})
    g.add_node("x", Input((n_in,)))
    prev = "x"
    for name, node in layers:
        g.add_node(name, node)
        g.add_edge(prev, name)
        prev = name
    g.add_node("out", Output())
    g.add_edge(prev, "out")
    return g


def small_chip(folder: Path) -> Path:
    """A user chip file in `folder`: the fpga-mesh chip with Loihi 2-sized cores (8,192
    neurons, 65,536 synapse words of 17 bits), the sizes the loihi2 profile once gave the
    core; the default chip is 8 and 64 times larger."""
    text = (Path(hdl.__file__).parents[2] / "nmcompile/mapping/chips/fpga-mesh.toml").read_text()
    for old, new in (('name = "fpga-mesh"', 'name = "small"'), ("value = 65536, source",
                     "value = 8192, source"), ("value = 71303168", f"value = {17 << 16}")):
        assert old in text
        text = text.replace(old, new, 1)
    (folder / "small.toml").write_text(text)
    return folder / "small.toml"


def test_too_many_neurons_names_the_layer_that_overflows(tmp_path) -> None:
    g = chain([("fa", QDense(np.ones((5000, 4), int))), ("big_a", QLIF(vth=10)),
               ("fb", QSparse([0], [0], [1], (5000, 5000))), ("big_b", QLIF(vth=10))], 4)
    with pytest.raises(LimitError, match=r"'big_b'.*10,000 neurons.*8,192 per core of chip "
                       r"'small'.*--chip"):
        hdl.run(g, np.zeros((2, 1, 4), np.int64), chip=small_chip(tmp_path))


def test_too_many_synapses_names_the_projection(tmp_path) -> None:
    g = chain([("small", QDense(np.ones((300, 100), int))), ("h", QLIF(vth=10)),
               ("huge", QDense(np.ones((300, 300), int))), ("o", QLIF(vth=10))], 100)
    with pytest.raises(LimitError, match=r"'huge'.*120,000 stored synapses.*65,536 per core "
                       r"of chip 'small'"):
        hdl.run(g, np.zeros((2, 1, 100), np.int64), chip=small_chip(tmp_path))


def test_a_huge_convolution_is_refused_before_its_synapses_are_built(monkeypatch,
                                                                     tmp_path) -> None:
    from backends.hdl import program

    def unrolled(*args):
        raise AssertionError("the convolution was unrolled before its size was checked")

    monkeypatch.setattr(program, "conv_source_synapses", unrolled)
    g = Graph(metadata={"quantization": {"profile": "loihi2"}})
    g.add_node("x", Input((16, 64, 64)))
    g.add_node("conv_big", QConv2d(np.ones((64, 16, 9, 9), int), stride=(16, 16)))
    g.add_node("c", QLIF(vth=10))
    g.add_node("out", Output())
    for a, b in (("x", "conv_big"), ("conv_big", "c"), ("c", "out")):
        g.add_edge(a, b)
    with pytest.raises(LimitError, match=r"'conv_big'.*1,327,104 stored synapses"):
        build_program(g, chip=small_chip(tmp_path))


def test_a_weight_beyond_the_profile_names_the_projection() -> None:
    g = chain([("wide", QDense(np.array([[301, 2]]))), ("h", QLIF(vth=10))], 2)
    with pytest.raises(LimitError, match=r"'wide'.*magnitude 301.*8-bit"):
        hdl.run(g, np.zeros((2, 1, 2), np.int64))


def test_an_input_too_large_for_the_accumulators_names_the_layer() -> None:
    g = chain([("fc", QDense(np.full((2, 2), 254), weight_exp=7)), ("hot", QLIF(vth=10))], 2)
    with pytest.raises(LimitError, match="'hot'"):
        hdl.run(g, np.full((2, 1, 2), 2**40, np.int64))


def test_what_the_core_cannot_run_is_refused_naming_the_node() -> None:
    g = chain([("fc", QDense(np.ones((3, 2), int))), ("h", QLIF(vth=10))], 2)
    g.add_node("fc2", QDense(np.ones((3, 3), int)))
    g.add_node("h2", QLIF(vth=10))
    g.add_edge("fc", "fc2")  # a projection feeding a projection
    g.add_edge("fc2", "h2")
    with pytest.raises(UnsupportedError, match=r"'fc'.*2 outputs"):
        raise_problems(hdl.check(g))
    float_graph = chain([("fc", QDense(np.ones((3, 2), int))), ("f", LIF(beta=0.9))], 2)
    with pytest.raises(UnsupportedError, match=r"'f'.*LIF"):
        nmcompile.run(float_graph, np.zeros((2, 1, 2)), backend="verilog")


# --------------------------------------------------------------------------------------------
# the project folder
# --------------------------------------------------------------------------------------------


def test_identifiers_are_legal_unique_verilog() -> None:
    names = ["a.b-c", "a_b_c", "module", "x-1", "x_1", "X_1", "wire"]
    out = identifiers([*names, "a_b_c"], "")  # a repeated name still gets its own
    assert len(out) == len(names) + 1 and len(set(v.lower() for v in out)) == len(out)
    assert all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v) for v in out)
    assert "module" not in out and "wire" not in out


def test_compiled_project_with_awkward_names_simulates_and_its_header_compiles(tmp_path) -> None:
    g = Graph()
    g.add_node("in.put-0", Input((5,)))
    g.add_node("module", QDense(2 * np.arange(-7, 8).reshape(3, 5)))
    g.add_node("wire", QLIF(vth=3, du=2000, dv=100))
    g.add_node("wire.2", QDense(np.ones((2, 3), int) * 9))
    g.add_node("out-1", QLI(dv=100))
    g.add_node("o", Output())
    for a, b in (("in.put-0", "module"), ("module", "wire"), ("wire", "wire.2"),
                 ("wire.2", "out-1"), ("out-1", "o")):
        g.add_edge(a, b)
    out = nmcompile.compile(g, tmp_path / "my proj", "verilog")  # a space in the path too
    assert sorted(p.name for p in out.iterdir()) == [".nmcompile-artefact", "Makefile",
                                                     "README.md", "mem", "program.json", "rtl",
                                                     "tb"]
    header = (out / "rtl" / "nm_layers.vh").read_text()
    for ident in re.findall(r"localparam (\S+) =", header):
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", ident), ident
    (tmp_path / "check.v").write_text('module check;\n`include "nm_layers.vh"\nendmodule\n')
    subprocess.run(["iverilog", "-g2005", f"-I{out / 'rtl'}", "-o", str(tmp_path / "c.vvp"),
                    str(tmp_path / "check.v")], check=True, capture_output=True, timeout=60)
    done = subprocess.run(["make", "-C", str(out), "sim-icarus"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "every output event equals the emulator's" in done.stdout
    assert (out / "tb" / "expected.txt").read_text().count("\nE ") > 0


def test_synthesis_into_a_relative_folder(tmp_path, monkeypatch) -> None:
    """`compile -o relative/dir --synth ...` (make ran with -C relative/dir from inside it)."""
    from nmcompile.cli import main

    g = chain([("fc", QDense(np.arange(12).reshape(3, 4) - 5)), ("h", QLIF(vth=10))], 4)
    monkeypatch.chdir(tmp_path)
    nmcompile.save(g, "g.nmc")
    assert main(["compile", "g.nmc", "--target", "verilog", "-o", "rel/proj",
                 "--synth", "xilinx"]) == 0
    report = json.loads(Path("rel/proj/report.json").read_text())
    assert report[0]["target"] == "xilinx" and report[0]["luts"] > 0


def test_a_failed_compile_leaves_nothing(tmp_path, tmp_path_factory) -> None:
    g = chain([("fc", QDense(np.ones((300, 300), int))), ("h", QLIF(vth=10)),
               ("fc2", QDense(np.ones((300, 300), int))), ("h2", QLIF(vth=10))], 300)
    with pytest.raises(LimitError):
        nmcompile.compile(g, tmp_path / "proj", "verilog",
                          chip=small_chip(tmp_path_factory.mktemp("chips")))
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------
# cycles per step: the formula of docs/hdl.md, against the RTL
# --------------------------------------------------------------------------------------------


def formula_cycles(g: Graph, x, ref, lanes: int = 1) -> np.ndarray:
    """docs/hdl.md's cycles per step, from the program and the emulator's spikes:
    2 NL + NP + 3 + E_in + sum over projections (2 while t < d0, else
    4 + sum over delivered events (3 + ceil(row entries / lanes))) + sum over layers
    (n max(1, k) + 10), plus max(S_DEPTH, A_DEPTH) on the first step of a sample."""
    program = apply_lanes(build_program(g, input_max=int(np.abs(np.asarray(
        next(iter(x.values())) if isinstance(x, dict) else x)).max())), lanes)
    row_len = program.memories["row_len"]
    p = program.params
    inputs = x if isinstance(x, dict) else {g.inputs[0]: x}
    T, B = next(iter(inputs.values())).shape[:2]
    out = {name: np.asarray(v).reshape(T, B, -1) for name, v in inputs.items()}
    out |= {name: s.reshape(T, B, -1) for name, s in ref.spikes.items()}
    cycles = np.zeros((T, B), np.int64)
    for t in range(T):
        for b in range(B):
            c = 2 * p["NL"] + p["NP"] + 3 + (max(p["S_DEPTH"], p["A_DEPTH"]) if t == 0 else 0)
            c += sum(int(np.count_nonzero(out[layer.name][t, b]))
                     for layer in program.inputs if layer.ring)
            for proj in program.projections:
                if t < proj.delay:
                    c += 2
                    continue
                events = np.flatnonzero(out[program.layers[proj.src].name][t - proj.delay, b])
                c += 4 + sum(3 + -(-int(row_len[proj.rowbase + i]) // lanes) for i in events)
            c += sum(layer.n * max(1, layer.nproj) + 10 for layer in program.neuron_layers)
            cycles[t, b] = c
    return cycles


@pytest.mark.parametrize("lanes", [1, 2, 4])
@pytest.mark.parametrize("seed", [0, 5, 6, 7, 9, 12])
def test_cycles_per_step_follow_the_documented_formula(seed: int, lanes: int) -> None:
    """Also with 2 and 4 accumulate lanes, where every spike and counter stays the
    emulator's (list rows in lanes by their targets' banks, pads included)."""
    g, x, _ = random_graph(seed)
    ref = nmcompile.run(g, x, record=True)
    run = hdl.run_hdl(g, x, record=True, lanes=lanes)
    assert first_difference(ref, run.result) is None, first_difference(ref, run.result)
    assert np.array_equal(run.cycles, formula_cycles(g, x, ref, lanes))


# --------------------------------------------------------------------------------------------
# graphs as the quantiser emits them: pooling folded into convolutions, folded delays
# --------------------------------------------------------------------------------------------


def test_quantised_float_graph_with_folded_pooling_equals_the_emulator() -> None:
    """A float network (average pooling, sum pooling with a scale, a padded convolution,
    pooling again, flatten, dense, skip paths with delays) through `nmcompile.quantize`, whose
    fold pass turns pooling into depthwise convolutions and merges parallel delayed paths."""
    from nmcompile.ir import IF, AvgPool2d, Conv2d, Dense, Flatten, Scale, SumPool2d

    rng = np.random.default_rng(0)
    g = Graph()
    g.add_node("x", Input((2, 8, 8)))
    nodes = {"avg": AvgPool2d(2), "a": IF(0.2), "sum": SumPool2d(2), "scale": Scale(0.5),
             "b": IF(0.2), "conv": Conv2d(rng.normal(size=(3, 2, 3, 3)), padding=1),
             "pool": AvgPool2d(2), "flat": Flatten(), "fc": Dense(rng.normal(size=(4, 3))),
             "c": LIF(0.9, 0.1), "skip": Dense(rng.normal(size=(4, 128)) * 0.1),
             "flat_x": Flatten(), "out": Output()}
    for name, node in nodes.items():
        g.add_node(name, node)
    for a, b, *d in (("x", "avg"), ("avg", "a"), ("a", "sum"), ("sum", "scale"),
                     ("scale", "b"), ("b", "conv"), ("conv", "pool"), ("pool", "flat"),
                     ("flat", "fc"), ("fc", "c"), ("x", "flat_x"), ("flat_x", "skip", 2),
                     ("skip", "c", 1), ("c", "out")):
        g.add_edge(a, b, *d)
    x = (rng.random((16, 3, 2, 8, 8)) < 0.6).astype(np.uint8)
    q = nmcompile.quantize(g, "loihi2", x)
    assert any(isinstance(n, QConv2d) and n.groups == 2 for n in q.nodes.values())  # pooling
    ref = nmcompile.run(q, x, record=True)
    got = nmcompile.run(q, x, backend="verilog", record=True)
    assert first_difference(ref, got) is None, first_difference(ref, got)
    assert all(n > 0 for n in ref.counters["spikes"].values())
