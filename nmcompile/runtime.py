"""Running a graph on a target: what the public API, `verify` and `analysis` all need, kept
below them so that none of them imports another (the package has no import cycle:
tests/test_layering.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from . import limits
from .contract import require
from .ir import Graph
from .registry import get_backend
from .result import RunResult


def is_quantized(graph: Graph) -> bool:
    """A graph is quantised when its nodes carry fixed-point parameters."""
    return any(node.quantized for node in graph.nodes.values())


def run(graph: Graph, spikes: np.ndarray | Mapping[str, np.ndarray], backend: str | None = None,
        *, max_bytes: int | str | None = None, **options: Any) -> RunResult:
    """Run `graph` on `spikes` (T, batch, *input_shape), or a dict of them by input name.

    A float graph runs on the float interpreter (`backend="float"`), a quantised one on the
    emulator, unless `backend` names another target. `record=True` adds per-layer spikes and
    state traces to the result; the other `options` are the backend's (its
    `capabilities.options`). The backend's `check` runs first: a graph or an option it does
    not take fails before any work, the same way on every target. `max_bytes` is the memory
    budget of the run's checks (`nmcompile.limits`), for every backend alike.
    """
    target = get_backend(backend or ("emulator" if is_quantized(graph) else "float"))
    require(target, "run", graph, options)
    with limits.within(max_bytes):
        return target.run(graph, spikes, **options)
