"""Verilog backend: a generic time-multiplexed neuromorphic core in synthesizable Verilog-2001,
simulated with Icarus Verilog or Verilator, synthesised with Yosys (docs/hdl.md).

The network is the core's program (tables and synapse lists in `.hex` files), not its logic,
so one build of the RTL runs every graph of the same sizes. `run` returns the emulator's
`RunResult` (with cycles and the hardware counters), bit for bit equal to the emulator's;
`compile` writes a self-contained project folder (RTL, memory images, testbench, Makefile).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nmcompile.contract import BASE_COUNTERS, Capabilities, Option, Problem, node_problems
from nmcompile.errors import NmcompileError
from nmcompile.ir import Graph, Input, Output
from nmcompile.ir.quantized import QALIF, QLI, QLIF, QConv2d, QDense, QSparse
from nmcompile.mapping.chips import Chip

from .limits import DEFAULT_CHIP, refuse_core
from .program import check_structure
from .runner import run, run_hdl
from .simulate import SIMULATORS
from .synth import TARGETS


@dataclass(frozen=True)
class _Replaced(Option):
    """A removed option, still declared so that passing it is refused naming what replaced
    it (the facade would otherwise say only that there is no such option); not on the CLI's
    help, and `--option core=...` gets the same refusal."""

    @property
    def on_cli(self) -> bool:
        return False

    def parse(self, text: str) -> Any:
        refuse_core(text)


name = "verilog"
capabilities = Capabilities(
    nodes=(Input, Output, QDense, QSparse, QConv2d, QLIF, QALIF, QLI),
    counters=(*BASE_COUNTERS, "synaptic_events_nonzero", "active_neuron_updates",
              "unsafe_updates", "cycles"),
    options=(
        Option("simulator", str, "icarus", "the Verilog simulator (alias: --simulator)",
               choices=SIMULATORS),
        Option("sizes", dict, None, "build the core at least this large ({parameter: size}), "
               "so that several graphs share one simulator build", verbs=("run",)),
        Option("timeout_s", float, None, "seconds the simulation may take (default: from the "
               "worst-case cycles)", verbs=("run",)),
        Option("synth", str, None, "also synthesise with Yosys and write report.json/report.md: "
               f"{', '.join(TARGETS)}, or both separated by a comma (alias: --synth)",
               verbs=("compile",)),
        Option("pnr", bool, True, "with synth=ice40: place and route with nextpnr-ice40 for "
               "the measured Fmax", verbs=("compile",)),
        Option("input_max", int, 1, "the largest |value| an input event carries (1: spikes "
               "only; larger builds a multiplier on the event path)", verbs=("compile",)),
        Option("timeout_s", float, 1200, "seconds synthesis may take", verbs=("compile",)),
        Option("lanes", int, 1, "accumulate lanes per core: 1, 2 or 4 synapses per clock",
               verbs=("run", "compile")),
        Option("chip", str, DEFAULT_CHIP, "the chip whose core sizes the verilog core: its "
               "neurons and synapse words (a name, see nmcompile.mapping.available(), a chip "
               "TOML file, or a Chip; alias: --chip); the weight width is the profile's"),
        _Replaced("core", type(None), None, "replaced by chip="),
    ),
    tools=("iverilog", "verilator", "yosys", "nextpnr-ice40"),
    notes=("a projection takes one source (an input or a spiking layer) and feeds one neuron "
           "layer",),
)


def check(graph: Graph) -> list[Problem]:
    """What the core cannot run, each naming its node: node types, then the structure the
    core's tables hold (`program.check_structure`)."""
    problems = node_problems(graph, name, capabilities)
    if problems:
        return problems
    try:
        check_structure(graph)
    except NmcompileError as exc:
        return [Problem.of(exc)]
    return []


def compile(graph: Graph, out_dir: str | Path, *, synth: str | list[str] | None = None,
            pnr: bool = True, simulator: str = "icarus", input_max: int = 1,
            timeout_s: float = 1200, chip: str | Path | Chip = DEFAULT_CHIP,
            core: None = None, lanes: int = 1) -> Path:
    """Write the Verilog project folder (see `project.write_project`; a graph placed by
    `nmcompile.map` gives a mesh project, `project.write_mesh_project`); `synth`: "ice40",
    "xilinx" or both ("ice40,xilinx" or a list), to run Yosys (and nextpnr-ice40) and write
    report.json/report.md; `chip`: the chip whose core bounds the program (`core` is
    refused: `chip` replaced it); `lanes`: accumulate lanes per core (1, 2, 4)."""
    from .project import write_project

    refuse_core(core)
    targets = synth.split(",") if isinstance(synth, str) else synth
    return write_project(graph, out_dir, synth=targets, pnr=pnr, simulator=simulator,
                         input_max=input_max, timeout_s=timeout_s, chip=chip, lanes=lanes)


__all__ = ["capabilities", "check", "compile", "name", "run", "run_hdl"]
