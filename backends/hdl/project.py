"""`compile`: a self-contained Verilog project for one quantised graph.

```
OUT/rtl/     nm_core.v nm_ram.v nm_top.v nm_core_inst.vh (the generic core), nm_params.vh
             (this program's sizes), nm_layers.vh (layer and projection numbers, by name)
OUT/mem/     the program: tables, synapse lists, neuron parameters ($readmemh images)
OUT/tb/      nm_tb.v, nm_tb_icarus.v, tb_main.cpp, stim.txt (example input) and
             expected.txt (the emulator's output events for it)
OUT/Makefile sim-icarus, sim-verilator (each checks the output against expected.txt), synth
             (Yosys, iCE40), pnr-ice40 (nextpnr: Fmax), synth-xilinx
OUT/README.md, OUT/program.json
```

`nmcompile.compile` gives `write_project` a fresh temporary folder and renames it into place
when it returns, so a failed compile (or synthesis) leaves nothing behind.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from backends.emulator import run as emulate
from nmcompile.errors import NmcompileError
from nmcompile.ir import Graph
from nmcompile.ir.inputs import normalize_inputs
from nmcompile.ir.names import UniqueNames
from nmcompile.mapping.chips import Chip

from . import synth as synth_mod
from .hexfiles import params_header, write_memories
from .limits import DEFAULT_CHIP
from .program import Program, build_program
from .runner import input_events, run_hdl
from .simulate import rtl_dir, write_stimulus

_KEYWORDS = """
always and assign automatic begin buf bufif0 bufif1 case casex casez cell cmos
config deassign default defparam design disable edge else end endcase endconfig
endfunction endgenerate endmodule endprimitive endspecify endtable endtask event for
force forever fork function generate genvar highz0 highz1 if ifnone incdir include
initial inout input instance integer join large liblist library localparam
macromodule medium module nand negedge nmos nor noshowcancelled not notif0 notif1 or
output parameter pmos posedge primitive pull0 pull1 pulldown pullup
pulsestyle_onevent pulsestyle_ondetect rcmos real realtime reg release repeat rnmos
rpmos rtran rtranif0 rtranif1 scalared showcancelled signed small specify specparam
strong0 strong1 supply0 supply1 table task time tran tranif0 tranif1 tri tri0 tri1
triand trior trireg unsigned use uwire vectored wait wand weak0 weak1 while wire wor
xnor xor
"""
VERILOG_KEYWORDS = frozenset(_KEYWORDS.split())  # Verilog-2005 reserved words
EXAMPLE_SAMPLES = 4


def identifiers(names: list[str], prefix: str) -> list[str]:
    """One unique, legal Verilog identifier per name, in order (`prefix` + the name with every
    character outside [A-Za-z0-9_] replaced by '_', numbered on a collision). A list, not a
    dict: two equal names (a node called "a_to_b" and the direct edge a -> b) get two.
    Collisions are checked ignoring case, so the names stay distinct for tools that fold it."""
    taken = UniqueNames(sep="_", first=2, key=str.lower, reserved=VERILOG_KEYWORDS)
    return [taken(prefix + re.sub(r"[^A-Za-z0-9_]", "_", name)) for name in names]


def _example(graph: Graph) -> tuple[dict[str, np.ndarray] | np.ndarray, str]:
    from nmcompile import datasets

    if "dataset" in graph.metadata and "encoding" in graph.metadata:
        x, _ = datasets.test_inputs(graph.metadata, EXAMPLE_SAMPLES)
        name = graph.metadata["dataset"].get("name", "its data set")
        return x, f"the first {EXAMPLE_SAMPLES} test samples of {name}"
    shapes = {name: graph[name].shape for name in graph.inputs}
    spikes = datasets.random_inputs(shapes, EXAMPLE_SAMPLES, seed=0)
    return (spikes if len(spikes) > 1 else next(iter(spikes.values())),
            f"{EXAMPLE_SAMPLES} samples of seeded random spikes (p = 0.2)")


def expected_events(program: Program, result, T: int, B: int) -> str:
    """The output events the testbench writes, in its order, from an emulator result:
    per step the layer updates in op order, neurons ascending; then "T sample step"."""
    lines = []
    order = [(k, program.layers[k]) for kind, k in program.ops if kind == "layer"]
    for b in range(B):
        for t in range(T):
            for k, layer in order:
                if layer.kind == "li":
                    v = result.states[layer.name]["v"][t, b]
                    lines += [f"E {k} {i} {int(x)}" for i, x in enumerate(v)]
                else:
                    idx = np.flatnonzero(result.spikes[layer.name][t, b])
                    lines += [f"E {k} {i} 1" for i in idx]
            lines.append(f"T {b} {t}")
    return "\n".join(lines) + "\n"


def _layers_header(program: Program) -> str:
    lnames = identifiers([x.name for x in program.layers], "LAYER_")
    pnames = identifiers([p.name or f"{program.layers[p.src].name}_to_"
                          f"{program.layers[p.dst].name}" for p in program.projections], "PROJ_")
    lines = ["// Layer and projection numbers of this program (out_layer, in_src, counters).",
             "// Names are the graph's, made legal Verilog identifiers."]
    lines += [f"localparam {ident} = {k};" for k, ident in enumerate(lnames)]
    lines += [f"localparam {ident} = {k};" for k, ident in enumerate(pnames)]
    return "\n".join(lines) + "\n"


MAKE_CHECK = ("awk '$$1==\"E\"{print} $$1==\"T\"{print $$1, $$2, $$3}' $(1) | "
              "diff -q - tb/expected.txt > /dev/null && "
              "echo \"$(2): every output event equals the emulator's (tb/expected.txt)\" || "
              "(echo \"$(2): output differs from tb/expected.txt\"; exit 1)")


def makefile(summary: str) -> str:
    rtl = "rtl/nm_ram.v rtl/nm_core.v"
    return f"""\
# Generated by nmcompile for {summary}.
# make sim-icarus | sim-verilator   simulate tb/stim.txt, compare with tb/expected.txt
# make synth                        Yosys synth_ice40 (resources: build/yosys-ice40-stat.txt)
# make pnr-ice40                    nextpnr-ice40 (Fmax: build/nextpnr-ice40.log)
# make synth-xilinx                 Yosys synth_xilinx (build/yosys-xilinx-stat.txt)
RTL = {rtl}
TB = tb/nm_tb.v
check = {MAKE_CHECK}

.PHONY: all sim-icarus sim-verilator synth synth-ice40 pnr-ice40 synth-xilinx clean
all: sim-icarus

build/icarus/sim.vvp: $(RTL) $(TB) tb/nm_tb_icarus.v rtl/nm_params.vh
\tmkdir -p build/icarus
\tiverilog -g2005 -Irtl -s nm_tb_icarus -o $@ $(RTL) $(TB) tb/nm_tb_icarus.v

sim-icarus: build/icarus/sim.vvp
\trm -rf build/icarus/run && mkdir -p build/icarus/run
\tcp tb/stim.txt build/icarus/run/ && ln -s "$(CURDIR)/mem" build/icarus/run/mem
\tcd build/icarus/run && vvp -n ../sim.vvp
\t@$(call check,build/icarus/run/resp.txt,sim-icarus)

build/verilator/Vnm_tb: $(RTL) $(TB) tb/tb_main.cpp rtl/nm_params.vh
\tmkdir -p build/verilator
\tverilator --cc --exe --build -O3 -Wno-fatal -Wno-WIDTH -Wno-UNUSED --top-module nm_tb \\
\t  -Irtl -Mdir build/verilator $(RTL) $(TB) "$(CURDIR)/tb/tb_main.cpp"

sim-verilator: build/verilator/Vnm_tb
\trm -rf build/verilator/run && mkdir -p build/verilator/run
\tcp tb/stim.txt build/verilator/run/ && ln -s "$(CURDIR)/mem" build/verilator/run/mem
\tcd build/verilator/run && ../Vnm_tb
\t@$(call check,build/verilator/run/resp.txt,sim-verilator)

{synth_mod.makefile_rules("$(RTL)")}
clean:
\trm -rf build
"""


def readme(program: Program, graph_summary: str, example: str, params: dict[str, int]) -> str:
    layers = "\n".join(
        f"| {k} | `{x.name}` | {x.kind} | {x.n} | {x.nproj} |"
        for k, x in enumerate(program.layers))
    projs = "\n".join(
        f"| {k} | `{p.name or '(direct edge)'}` | {program.layers[p.src].name} -> "
        f"{program.layers[p.dst].name} | {'list' if p.is_list else 'dense'} | "
        f"{p.rows.count} | {p.delay} + {p.dendritic} | {p.exp} |"
        for k, p in enumerate(program.projections))
    inputs = ("spikes only (every event counts as 1; compile with input_max for graded inputs)"
              if not params["GRADED"] else
              f"graded input values in [-{2 ** (params['VALW'] - 1) - 1}, "
              f"{2 ** (params['VALW'] - 1) - 1}]")
    return f"""\
# Verilog project: {graph_summary}

Written by `nmcompile compile --target verilog`. The core (`rtl/nm_core.v`) is generic: this
network is its program, in `mem/*.hex`; `rtl/nm_params.vh` gives the memory sizes and widths
it is built with. See nmcompile's docs/hdl.md for the microarchitecture, the cycles per step
and the interface.

## Commands (run here)

```sh
make sim-icarus      # Icarus Verilog: simulate tb/stim.txt, compare with tb/expected.txt
make sim-verilator   # the same with Verilator
make synth           # Yosys synth_ice40; resources in build/yosys-ice40-stat.txt
make pnr-ice40       # nextpnr-ice40 on an iCE40 HX8K (ct256): Fmax in build/nextpnr-ice40.log
make synth-xilinx    # Yosys synth_xilinx (7 series)
```

Tools (Debian packages): `iverilog`, `verilator`, `yosys`, `nextpnr-ice40`.

## Files

- `rtl/`: `nm_core.v` (sequencer, accumulate pipeline, neuron arithmetic), `nm_ram.v` (the one
  block-RAM template), `nm_top.v` (synthesis top), `nm_params.vh` (sizes), `nm_layers.vh`
  (layer and projection numbers by name).
- `mem/`: one `$readmemh` image per memory; paths are relative, so simulators and Yosys run
  in a folder holding `mem/`.
- `tb/`: the testbench. `stim.txt` holds {example}: a header `samples steps trace`, then per
  step one `layer neuron value` line per input event and `-1 0 0`. This build takes
  {inputs}. The testbench writes
  `resp.txt`: `E layer neuron value` per output event (a spike: 1; an LI layer: its v),
  `T sample step cycles` at the end of each step, `K counter value` at the end (counters:
  per layer spikes, updates, unsafe updates, active updates, then per projection synaptic
  events and those on a non-zero weight). `expected.txt` is the emulator's output for it.
- `program.json`: the layer and projection tables in readable form.

## Layers

| # | name | kind | neurons | projections in |
|---|---|---|---|---|
{layers}

## Projections

| # | name | source -> target | storage | synapses | delay (event + dendritic) | exponent |
|---|---|---|---|---|---|---|
{projs}

Sizes: {", ".join(f"{k}={v}" for k, v in sorted(params.items()))}.
"""


def _program_json(program: Program, params: dict[str, int]) -> dict[str, Any]:
    return {
        "params": params,
        "layers": [vars(x) for x in program.layers],
        "projections": [{**{k: v for k, v in vars(p).items() if k != "rows"},
                         "synapses": p.rows.count}
                        for p in program.projections],
        "ops": [list(op) for op in program.ops],
        "outputs": {k: [list(e) for e in v] for k, v in program.outputs.items()},
    }


def write_project(graph: Graph, out_dir: str | Path, *, synth: str | list[str] | None = None,
                  pnr: bool = True, simulator: str = "icarus", input_max: int = 1,
                  timeout_s: float = 1200, chip: str | Path | Chip = DEFAULT_CHIP) -> Path:
    """Write the Verilog project for `graph` into `out_dir` (an empty folder); with `synth`
    ("ice40", "xilinx" or both), also synthesise it and write report.json / report.md.
    `input_max`: the largest |value| an input event may carry (1: spikes only; larger builds
    a core with a multiplier on the event path, sized for graded inputs). `chip`: the chip
    whose core bounds the program (`limits.CoreLimits.of`)."""
    out = Path(out_dir)
    spikes, example = _example(graph)
    x_all = spikes if isinstance(spikes, dict) else {graph.inputs[0]: spikes}
    input_max = max([input_max] + [int(np.abs(v).max(initial=0)) for v in x_all.values()])
    program = build_program(graph, input_max=input_max, chip=chip)
    params = program.params
    summary = (f"{len(program.neuron_layers)} neuron layers, {len(program.projections)} "
               f"projections, {sum(x.n for x in program.neuron_layers)} neurons")
    for sub in ("rtl", "mem", "tb"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    src = rtl_dir()
    for name in ("nm_ram.v", "nm_core.v", "nm_top.v", "nm_core_inst.vh"):
        shutil.copy(src / name, out / "rtl" / name)
    for name in ("nm_tb.v", "nm_tb_icarus.v", "tb_main.cpp"):
        shutil.copy(src / name, out / "tb" / name)
    (out / "rtl" / "nm_params.vh").write_text(params_header(params, f"sizes for {summary}"))
    (out / "rtl" / "nm_layers.vh").write_text(_layers_header(program))
    write_memories(program, params, out / "mem")

    # the example: stimulus, and the emulator's events for it
    inputs, T, B = normalize_inputs(graph, spikes, graph.validate(), integers=True)
    inputs = {k: np.asarray(v).astype(np.int64) for k, v in inputs.items()}
    write_stimulus(out / "tb" / "stim.txt", input_events(program, inputs, T, B), B, T,
                   trace=False)
    reference = emulate(graph, spikes, record=True)
    (out / "tb" / "expected.txt").write_text(expected_events(program, reference, T, B))
    (out / "Makefile").write_text(makefile(summary))
    (out / "README.md").write_text(readme(program, summary, example, params))
    (out / "program.json").write_text(json.dumps(_program_json(program, params), indent=1,
                                                 default=int) + "\n")

    targets = [synth] if isinstance(synth, str) else list(synth or [])
    if targets:
        run = run_hdl(graph, spikes, simulator=simulator, chip=chip)
        if any(not np.array_equal(v, run.result.outputs[k]) for k, v in reference.outputs.items()):
            raise NmcompileError("the simulated core differs from the emulator on the example "
                                 "input; not synthesising")
        cycles = {"mean": round(float(run.cycles.mean()), 1), "max": int(run.cycles.max()),
                  "min": int(run.cycles.min()), "steps": int(run.cycles.size)}
        events = sum(run.result.counters["synaptic_events"].values()) / run.cycles.size
        reports = [synth_mod.add_throughput(
            synth_mod.run_synth(out, t, pnr=pnr, timeout_s=timeout_s), cycles, events)
            for t in targets]
        synth_mod.write_report(out, reports)
    return out
