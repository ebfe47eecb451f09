"""Verilog backend: a generic time-multiplexed neuromorphic core in synthesizable Verilog-2001,
simulated with Icarus Verilog or Verilator, synthesised with Yosys (docs/hdl.md).

The network is the core's program (tables and synapse lists in `.hex` files), not its logic,
so one build of the RTL runs every graph of the same sizes. `run` returns the emulator's
`RunResult` (with cycles and the hardware counters), bit for bit equal to the emulator's;
`compile` writes a self-contained project folder (RTL, memory images, testbench, Makefile).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nmcompile.ir import Graph, Input, Output
from nmcompile.ir.quantized import QALIF, QLI, QLIF, QConv2d, QDense, QSparse

from .program import check_structure
from .runner import run, run_hdl
from .simulate import SIMULATORS
from .synth import TARGETS

capabilities = {
    "nodes": (Input, Output, QDense, QSparse, QConv2d, QLIF, QALIF, QLI),
    "edge_delays": True,
    "cycles": True,
    "simulators": SIMULATORS,
    "synth": TARGETS,
}


def check(graph: Graph) -> None:
    """Refuse, naming the node, anything the core cannot run (UnsupportedError)."""
    check_structure(graph)


def compile(graph: Graph, out_dir: str | Path, *, synth: str | list[str] | None = None,
            **options: Any) -> Path:
    """Write the Verilog project folder (see `project.write_project`); `synth`: "ice40",
    "xilinx" or both, to run Yosys (and nextpnr-ice40) and write report.json/report.md."""
    from .project import write_project

    return write_project(graph, out_dir, synth=synth, **options)


__all__ = ["capabilities", "check", "compile", "run", "run_hdl"]
