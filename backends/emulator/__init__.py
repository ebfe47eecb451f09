"""The emulator: the reference fixed-point core. It defines what a quantised graph means.

Integer arithmetic of docs/fixed_point.md (Loihi's, as Lava 0.10's `fixed_pt` models compute
it), vectorised over the batch; see `simulator.py` for how steps are grouped.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from nmcompile.contract import BASE_COUNTERS, Capabilities, Problem, node_problems, raise_problems
from nmcompile.errors import UnsupportedError
from nmcompile.ir import Graph, Input, Output
from nmcompile.ir.quantized import QALIF, QLI, QLIF, QConv2d, QDense, QSparse
from nmcompile.result import RunResult

from .simulator import simulate

name = "emulator"
capabilities = Capabilities(
    nodes=(Input, Output, QDense, QSparse, QConv2d, QLIF, QALIF, QLI),
    counters=(*BASE_COUNTERS, "synaptic_events_nonzero", "active_neuron_updates",
              "unsafe_updates"),
    mapped=True,  # a placed graph's run counts its messages and hops (nmcompile.mapping)
    tools=("numba",),
    notes=("a graph placed by nmcompile.map adds the counters core_messages, "
           "hops_east_west, hops_north_south, messages_within_tile and RunResult.traffic",),
)


def check(graph: Graph) -> list[Problem]:
    """The emulator runs every quantised graph that validates: only node types are checked."""
    return node_problems(graph, name, capabilities)


def run(graph: Graph, spikes: np.ndarray | Mapping[str, np.ndarray], *, record: bool = False
        ) -> RunResult:
    """Run a quantised graph; see `nmcompile.run`."""
    raise_problems(check(graph))
    return simulate(graph, spikes, record=record)


def compile(graph: Graph, out_dir: str | Path) -> Path:
    raise UnsupportedError("the emulator has no artefact to compile; use nmcompile.run")
