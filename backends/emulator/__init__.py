"""The emulator: the reference fixed-point core. It defines what a quantised graph means.

Integer arithmetic of docs/fixed_point.md (Loihi's, as Lava 0.10's `fixed_pt` models compute
it), vectorised over the batch; see `simulate.py` for how steps are grouped.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from nmcompile.errors import UnsupportedError
from nmcompile.ir import Graph, Input, Output
from nmcompile.ir.quantized import QALIF, QLI, QLIF, QConv2d, QDense, QSparse
from nmcompile.result import RunResult

from .simulate import simulate

capabilities = {
    "nodes": (Input, Output, QDense, QSparse, QConv2d, QLIF, QALIF, QLI),
    "edge_delays": True,
    "cycles": True,
}


def check(graph: Graph) -> None:
    """Refuse, naming the node, any node type the emulator does not run."""
    for name, node in graph.nodes.items():
        if not isinstance(node, capabilities["nodes"]):
            raise UnsupportedError(
                f"the emulator runs quantised graphs only; node {name!r} is a "
                f"{type(node).__name__}. Quantise the graph first: nmcompile.quantize(graph)")


def run(graph: Graph, spikes: np.ndarray | Mapping[str, np.ndarray], *, record: bool = False
        ) -> RunResult:
    """Run a quantised graph; see `nmcompile.run`."""
    check(graph)
    return simulate(graph, spikes, record=record)


def compile(graph: Graph, out_dir: str | Path) -> Path:
    raise UnsupportedError("the emulator has no artefact to compile; use nmcompile.run")
