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

A graph placed by `nmcompile.map` is written for nm_mesh (`write_mesh_project`): rtl/ holds
nm_router.v, nm_mesh.v, nm_mesh_top.v (the synthesis top) and nm_mesh_inst.vh too, and
nm_layers.vh the layer and projection numbers of every core; mem/cNN/ core NN's program; tb/
nm_mesh_tb.v, nm_mesh_tb_icarus.v, tb_main.cpp, stim.txt (the example as host packets) and
expected.txt (the emulator's events as `E core layer neuron value`, per step sorted, as the
Makefile's check sorts the cores' interleaved events).

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
from .mesh import Mesh, build_mesh
from .mesh_runner import host_packets, run_mesh, write_mesh_memories, write_mesh_stimulus
from .program import Program, apply_lanes, build_program
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


#: The mesh's check: its cores' events of a step come in any order (the cores run side by
#: side), so the E lines of every step are sorted by (core, layer, neuron) before the
#: comparison, the step's T line after them; tb/expected.txt is written in that order.
MESH_CHECK = ("awk 'BEGIN{s=0} $$1==\"E\"{print s, 0, $$2, $$3, $$4, $$5} "
              "$$1==\"T\"{print s, 1, $$2, $$3, 0, 0; s++}' $(1) | "
              "LC_ALL=C sort -k1,1n -k2,2n -k3,3n -k4,4n -k5,5n | "
              "awk '$$2==0{print \"E\", $$3, $$4, $$5, $$6} $$2==1{print \"T\", $$3, $$4}' | "
              "diff -q - tb/expected.txt > /dev/null && "
              "echo \"$(2): every output event equals the emulator's (tb/expected.txt)\" || "
              "(echo \"$(2): output differs from tb/expected.txt\"; exit 1)")


def makefile(summary: str, mesh: bool = False) -> str:
    """The project's Makefile: the single core's (nm_tb, nm_top), or with `mesh` nm_mesh's
    (nm_mesh_tb, nm_mesh_top; its Verilator model named Vnm_tb as tb_main.cpp expects)."""
    if mesh:
        rtl = "rtl/nm_ram.v rtl/nm_core.v rtl/nm_router.v rtl/nm_mesh.v"
        tb, top, check = "nm_mesh_tb", "nm_mesh_top", MESH_CHECK
        headers = "rtl/nm_params.vh rtl/nm_core_inst.vh rtl/nm_mesh_inst.vh"
        vtop = "nm_mesh_tb --prefix Vnm_tb"
    else:
        rtl = "rtl/nm_ram.v rtl/nm_core.v"
        tb, top, check, headers, vtop = "nm_tb", "nm_top", MAKE_CHECK, "rtl/nm_params.vh", "nm_tb"
    rules = (synth_mod.makefile_rules("$(RTL)", top, defer=True, deps=headers) if mesh
             else synth_mod.makefile_rules("$(RTL)"))
    return f"""\
# Generated by nmcompile for {summary}.
# make sim-icarus | sim-verilator   simulate tb/stim.txt, compare with tb/expected.txt
# make synth                        Yosys synth_ice40 (resources: build/yosys-ice40-stat.txt)
# make pnr-ice40                    nextpnr-ice40 (Fmax: build/nextpnr-ice40.log)
# make synth-xilinx                 Yosys synth_xilinx (build/yosys-xilinx-stat.txt)
RTL = {rtl}
TB = tb/{tb}.v
check = {check}

.PHONY: all sim-icarus sim-verilator synth synth-ice40 pnr-ice40 synth-xilinx clean
all: sim-icarus

build/icarus/sim.vvp: $(RTL) $(TB) tb/{tb}_icarus.v {headers}
\tmkdir -p build/icarus
\tiverilog -g2005 -Irtl -s {tb}_icarus -o $@ $(RTL) $(TB) tb/{tb}_icarus.v

sim-icarus: build/icarus/sim.vvp
\trm -rf build/icarus/run && mkdir -p build/icarus/run
\tcp tb/stim.txt build/icarus/run/ && ln -s "$(CURDIR)/mem" build/icarus/run/mem
\tcd build/icarus/run && vvp -n ../sim.vvp
\t@$(call check,build/icarus/run/resp.txt,sim-icarus)

build/verilator/Vnm_tb: $(RTL) $(TB) tb/tb_main.cpp {headers}
\tmkdir -p build/verilator
\tverilator --cc --exe --build -O3 -Wno-fatal -Wno-WIDTH -Wno-UNUSED --top-module {vtop} \\
\t  -Irtl -Mdir build/verilator $(RTL) $(TB) "$(CURDIR)/tb/tb_main.cpp"

sim-verilator: build/verilator/Vnm_tb
\trm -rf build/verilator/run && mkdir -p build/verilator/run
\tcp tb/stim.txt build/verilator/run/ && ln -s "$(CURDIR)/mem" build/verilator/run/mem
\tcd build/verilator/run && ../Vnm_tb
\t@$(call check,build/verilator/run/resp.txt,sim-verilator)

{rules}
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


def _ranges(idx: np.ndarray) -> list[list[int]]:
    """Sorted indices as [first, last + 1) runs."""
    idx = np.asarray(idx, np.int64)
    if not idx.size:
        return []
    cut = np.flatnonzero(np.diff(idx) != 1) + 1
    return [[int(a[0]), int(a[-1]) + 1] for a in np.split(idx, cut)]


def _runs(idx: np.ndarray) -> str:
    return ", ".join(f"{a}" if b == a + 1 else f"{a}-{b - 1}" for a, b in _ranges(idx))


def mesh_expected_events(mesh: Mesh, result, T: int, B: int) -> str:
    """The mesh testbench's output events for an emulator result, as the Makefile's check
    orders them: per step (sample-major) `E core layer neuron value` sorted by core, local
    layer and local neuron, then `T sample step`. A local layer's neuron i is the IR layer's
    neuron `mesh.where[core][layer][1][i]`."""
    pieces = [(k, li, name, members, mesh.programs[k].layers[li].kind)
              for k in range(mesh.n_cores) for li, (name, members) in enumerate(mesh.where[k])
              if name is not None]
    lines = []
    for b in range(B):
        for t in range(T):
            for k, li, name, members, kind in pieces:
                if kind == "li":
                    v = result.states[name]["v"].reshape(T, B, -1)[t, b, members]
                    lines += [f"E {k} {li} {i} {int(x)}" for i, x in enumerate(v)]
                else:
                    idx = np.flatnonzero(result.spikes[name].reshape(T, B, -1)[t, b, members])
                    lines += [f"E {k} {li} {i} 1" for i in idx]
            lines.append(f"T {b} {t}")
    return "\n".join(lines) + "\n"


def _mesh_names(mesh: Mesh) -> list[tuple[int, str, str, int]]:
    """(core, kind, name, number) of every layer and projection of every core's program."""
    out = []
    for k, prog in enumerate(mesh.programs):
        for li, (name, _) in enumerate(mesh.where[k]):
            out.append((k, "LAYER", name, li) if name is not None
                       else (k, "RECV", prog.layers[li].name, li))
        for q, pr in enumerate(prog.projections):
            out.append((k, "PROJ", pr.name or f"{prog.layers[pr.src].name}_to_"
                        f"{prog.layers[pr.dst].name}", q))
    return out


def _mesh_layers_header(mesh: Mesh) -> str:
    """Per core, its layer and projection numbers (out_layer, packet layer, counters) as
    localparams `C<core>_LAYER_<name>`, `C<core>_RECV_<source>_<projection>` (a receiving
    layer) and `C<core>_PROJ_<name>`, names made legal by `identifiers`."""
    names = _mesh_names(mesh)
    idents = identifiers([f"C{k:02d}_{kind}_{name}" for k, kind, name, _ in names], "")
    lines = ["// Per core (C<core number>_...), its program's layer and projection numbers "
             "(out_layer,", "// the packets' layer, counters). Names are the graph's, made "
             "legal Verilog identifiers."]
    lines += [f"localparam {ident} = {num};" for ident, (*_, num) in zip(idents, names,
                                                                          strict=True)]
    return "\n".join(lines) + "\n"


def _mesh_program_json(mesh: Mesh, params: dict[str, int], lanes: int) -> dict[str, Any]:
    cores = []
    for k, (prog, ext) in enumerate(zip(mesh.programs, mesh.extra, strict=True)):
        layers = []
        for li, layer in enumerate(prog.layers):
            name, members = mesh.where[k][li] if li < len(mesh.where[k]) else (None, [])
            layers.append({**vars(layer), "ir_layer": name,
                           # the IR layer's neurons held here, or a receiving layer's sources
                           ("neurons" if name is not None else "sources"): _ranges(members)})
        projs = []
        for pr in prog.projections:
            owner = getattr(pr, "owner", None)
            projs.append({**{key: v for key, v in vars(pr).items() if key not in ("rows",
                                                                                "owner")},
                          "synapses": pr.rows.count,
                          "shares": None if owner is None else prog.projections.index(owner)})
        cores.append({"core": k, "x": k % mesh.cols, "y": k // mesh.cols, "layers": layers,
                      "projections": projs, "ops": len(prog.ops),
                      "op_list": [[*op, int(w)] for op, w in zip(prog.ops, ext["o_wave"],
                                                                 strict=True)],
                      "messages": len(ext["d_ent"])})
    return {"mesh": {"rows": mesh.rows, "cols": mesh.cols, "waves": mesh.waves, "lanes": lanes},
            "params": params, "cores": cores}


def mesh_readme(mesh: Mesh, summary: str, example: str, params: dict[str, int]) -> str:
    placed = []
    for k in range(mesh.n_cores):
        for li, (name, members) in enumerate(mesh.where[k]):
            kind = mesh.programs[k].layers[li].kind
            what = (f"`{name}` neurons {_runs(members)}" if name is not None else
                    f"receives `{mesh.programs[k].layers[li].name}` (sources {_runs(members)})")
            placed.append(f"| {k} | ({k % mesh.cols}, {k // mesh.cols}) | {li} | {kind} | "
                          f"{len(members)} | {what} |")
    ops = []
    for k, (prog, ext) in enumerate(zip(mesh.programs, mesh.extra, strict=True)):
        listed = ", ".join(f"{kind} {i} ({int(w)})"
                           for (kind, i), w in zip(prog.ops, ext["o_wave"], strict=True)
                           ) or "(none: idle)"
        ops.append(f"| {k} | {len(prog.ops)} | {len(prog.projections)} | {len(ext['d_ent'])} "
                   f"| {listed} |")
    inputs = ("spikes only (every event counts as 1; compile with input_max for graded inputs)"
              if not params["GRADED"] else
              f"graded input values in [-{2 ** (params['VALW'] - 1) - 1}, "
              f"{2 ** (params['VALW'] - 1) - 1}]")
    return f"""\
# Verilog mesh project: {summary}

Written by `nmcompile compile --target verilog` for a graph placed by `nmcompile.map`: it runs
on `nm_mesh` (`rtl/nm_mesh.v`), {mesh.cols} x {mesh.rows} copies of the generic core
(`rtl/nm_core.v`) each beside an XY router (`rtl/nm_router.v`). Core number k sits at
(x, y) = (k mod {mesh.cols}, k div {mesh.cols}) and loads its program from `mem/cNN/` (NN = k, two
digits); `rtl/nm_params.vh` gives the sizes every core is built with (the largest core's).
See nmcompile's docs/hdl.md ("The mesh") for the routers, the packets and the waves.

## Commands (run here)

```sh
make sim-icarus      # Icarus Verilog: simulate tb/stim.txt, compare with tb/expected.txt
make sim-verilator   # the same with Verilator
make synth           # Yosys synth_ice40 -top nm_mesh_top; resources in build/yosys-ice40-stat.txt
make pnr-ice40       # nextpnr-ice40 on an iCE40 HX8K (ct256): Fmax in build/nextpnr-ice40.log
make synth-xilinx    # Yosys synth_xilinx (7 series)
```

Tools (Debian packages): `iverilog`, `verilator`, `yosys`, `nextpnr-ice40`. Yosys reads the
RTL with `read_verilog -defer`: each core's `$readmemh` paths are built from its `MEMDIR`
parameter. Run every tool here (the paths are relative to this folder).

## Files

- `rtl/`: `nm_ram.v`, `nm_core.v`, `nm_router.v`, `nm_mesh.v`, `nm_mesh_top.v` (synthesis
  top), `nm_core_inst.vh`, `nm_mesh_inst.vh` (parameter lists), `nm_params.vh` (sizes),
  `nm_layers.vh` (per core, its layer and projection numbers by name).
- `mem/cNN/`: core NN's program, one `$readmemh` image per memory (besides the core's tables:
  `o_wave` the wave of each op, `d_*` the send lists: per spiking neuron its messages).
- `tb/`: the testbench (`nm_mesh_tb.v`, clocked by `nm_mesh_tb_icarus.v` or `tb_main.cpp`).
  `stim.txt` holds {example} as host packets: a header `samples steps trace stall_bit
  stall_period`, then per step one `x y layer neuron value` line per packet (the destination
  core, its receiving layer and neuron) and `-1 0 0 0 0`. This build takes {inputs}.
  The testbench writes `resp.txt`: `E core layer neuron value` per output event (local
  numbers, see the table below), `T sample step cycles` per step, `K core counter value`,
  `R counter value` (routers), `W core clocks`, `END`. `expected.txt` is the emulator's
  events for it, per step sorted by core, layer and neuron (the order the check sorts
  resp.txt into: cores run side by side).
- `program.json`: per core its layers (with the IR layer and neurons they hold), projections
  and ops with their waves; the mesh's R, C, waves; the sizes.

## Where the neurons are

A neuron layer of the graph is split into one local layer per core holding some of its
neurons (in their order: local neuron i is the i-th listed); a *receiving* layer of a core
holds the sources elsewhere (the host's inputs, or other cores' neurons) that reach a target
there, numbered in source order.

| core | (x, y) | layer | kind | size | holds |
|---|---|---|---|---|---|
{chr(10).join(placed)}

## Ops and waves

A step runs in {mesh.waves} wave(s): an op that reads another core's spikes of the same step
runs a wave after the one that sends them; between waves every core waits until the routers
are empty (the barrier).

| core | ops | projections | messages in its send lists | op list (wave) |
|---|---|---|---|---|
{chr(10).join(ops)}

Sizes: {", ".join(f"{k}={v}" for k, v in sorted(params.items()))}.
"""


def write_project(graph: Graph, out_dir: str | Path, *, synth: str | list[str] | None = None,
                  pnr: bool = True, simulator: str = "icarus", input_max: int = 1,
                  timeout_s: float = 1200, chip: str | Path | Chip = DEFAULT_CHIP,
                  lanes: int = 1) -> Path:
    """Write the Verilog project for `graph` into `out_dir` (an empty folder); with `synth`
    ("ice40", "xilinx" or both), also synthesise it and write report.json / report.md.
    `input_max`: the largest |value| an input event may carry (1: spikes only; larger builds
    a core with a multiplier on the event path, sized for graded inputs). `chip`: the chip
    whose core bounds the program (`limits.CoreLimits.of`). `lanes`: accumulate lanes of the
    core (1, 2, 4; `program.apply_lanes`). A graph placed by `nmcompile.map` is written as a
    mesh project (`write_mesh_project`; its chip is the placement's, `chip` is not used)."""
    if graph.placement is not None:
        return write_mesh_project(graph, out_dir, synth=synth, pnr=pnr, simulator=simulator,
                                  input_max=input_max, timeout_s=timeout_s, lanes=lanes)
    out = Path(out_dir)
    spikes, example = _example(graph)
    x_all = spikes if isinstance(spikes, dict) else {graph.inputs[0]: spikes}
    input_max = max([input_max] + [int(np.abs(v).max(initial=0)) for v in x_all.values()])
    program = apply_lanes(build_program(graph, input_max=input_max, chip=chip), lanes)
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
        run = run_hdl(graph, spikes, simulator=simulator, chip=chip, lanes=lanes)
        _synthesise(out, targets, reference, run, "core", pnr, timeout_s)
    return out


def _synthesise(out: Path, targets: list[str], reference, run, what: str, pnr: bool,
                timeout_s: float) -> None:
    """report.json / report.md for `targets`, once the simulated example (`run`) is checked
    to equal the emulator's `reference`; cycles per step are the simulation's."""
    if any(not np.array_equal(v, run.result.outputs[k]) for k, v in reference.outputs.items()):
        raise NmcompileError(f"the simulated {what} differs from the emulator on the example "
                             "input; not synthesising")
    cycles = {"mean": round(float(run.cycles.mean()), 1), "max": int(run.cycles.max()),
              "min": int(run.cycles.min()), "steps": int(run.cycles.size)}
    events = sum(run.result.counters["synaptic_events"].values()) / run.cycles.size
    reports = [synth_mod.add_throughput(
        synth_mod.run_synth(out, t, pnr=pnr, timeout_s=timeout_s), cycles, events)
        for t in targets]
    synth_mod.write_report(out, reports)


def write_mesh_project(graph: Graph, out_dir: str | Path, *,
                       synth: str | list[str] | None = None, pnr: bool = True,
                       simulator: str = "icarus", input_max: int = 1, timeout_s: float = 1200,
                       lanes: int = 1) -> Path:
    """The project of a placed graph on nm_mesh (its placement's chip: R x C cores): rtl/
    (the mesh's RTL, nm_params.vh, nm_layers.vh), mem/cNN/, tb/ (nm_mesh_tb, stim.txt of host
    packets, expected.txt), Makefile, README.md, program.json; with `synth`, report.json /
    report.md as for one core (cycles measured by `mesh_runner.run_mesh` on the example)."""
    out = Path(out_dir)
    spikes, example = _example(graph)
    inputs, T, B = normalize_inputs(graph, spikes, graph.validate(), integers=True)
    inputs = {k: np.asarray(v).astype(np.int64) for k, v in inputs.items()}
    input_max = max([input_max] + [int(np.abs(v).max(initial=0)) for v in inputs.values()])
    mesh = build_mesh(graph, input_max=input_max, lanes=lanes)
    params = mesh.params
    neurons = sum(layer.n for p in mesh.programs for layer in p.neuron_layers)
    used = sum(1 for p in mesh.programs if p.neuron_layers)
    summary = (f"{sum(1 for k in graph.nodes if graph[k].kind == 'neuron')} neuron layers, "
               f"{neurons} neurons on a {mesh.cols} x {mesh.rows} mesh ({used} cores used, "
               f"{mesh.waves} wave{'s' if mesh.waves > 1 else ''} per step)")
    for sub in ("rtl", "mem", "tb"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    src = rtl_dir()
    for name in ("nm_ram.v", "nm_core.v", "nm_router.v", "nm_mesh.v", "nm_mesh_top.v",
                 "nm_core_inst.vh", "nm_mesh_inst.vh"):
        shutil.copy(src / name, out / "rtl" / name)
    for name in ("nm_mesh_tb.v", "nm_mesh_tb_icarus.v", "tb_main.cpp"):
        shutil.copy(src / name, out / "tb" / name)
    (out / "rtl" / "nm_params.vh").write_text(params_header(params, f"sizes for {summary}"))
    (out / "rtl" / "nm_layers.vh").write_text(_mesh_layers_header(mesh))
    write_mesh_memories(mesh, params, out / "mem")

    write_mesh_stimulus(out / "tb" / "stim.txt", host_packets(mesh, inputs, T, B), B, T,
                        trace=False, stall=None)
    reference = emulate(graph, spikes, record=True)
    (out / "tb" / "expected.txt").write_text(mesh_expected_events(mesh, reference, T, B))
    (out / "Makefile").write_text(makefile(summary, mesh=True))
    (out / "README.md").write_text(mesh_readme(mesh, summary, example, params))
    (out / "program.json").write_text(json.dumps(_mesh_program_json(mesh, params, lanes),
                                                 indent=1, default=int) + "\n")

    targets = [synth] if isinstance(synth, str) else list(synth or [])
    if targets:
        run = run_mesh(graph, spikes, simulator=simulator, lanes=lanes)
        _synthesise(out, targets, reference, run, "mesh", pnr, timeout_s)
    return out
