"""Running a graph on a target: what the public API, `verify` and `analysis` all need, kept
below them so that none of them imports another (the package has no import cycle:
tests/test_layering.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .ir import Graph
from .registry import get_backend
from .result import RunResult


def is_quantized(graph: Graph) -> bool:
    """A graph is quantised when its nodes carry fixed-point parameters."""
    return any(node.quantized for node in graph.nodes.values())


def run(graph: Graph, spikes: np.ndarray | Mapping[str, np.ndarray], backend: str | None = None,
        **options: Any) -> RunResult:
    """Run `graph` on `spikes` (T, batch, *input_shape), or a dict of them by input name.

    A float graph runs on the float interpreter (`backend="float"`), a quantised one on the
    emulator, unless `backend` names another target. `record=True` adds per-layer spikes and
    state traces to the result.
    """
    if backend is None:
        backend = "emulator" if is_quantized(graph) else "float"
    if backend == "float":
        from .ir.interpret import interpret

        return interpret(graph, spikes, **options)
    return get_backend(backend).run(graph, spikes, **options)
