"""The public entry points, written once over all targets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .ir import Graph
from .outputs import replace_folder
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


def quantize(graph: Graph, profile: str = "loihi2", calibration: Any = None, **kwargs: Any):
    """Quantise a float graph for a fixed-point profile (see `nmcompile.quantize.quantizer`)."""
    from .quantize.quantizer import quantize as _quantize

    return _quantize(graph, profile, calibration, **kwargs)


def compile(graph: Graph, out_dir: str | Path, target: str, *, force: bool = False,
            inputs: Sequence[str | Path] = (), **options: Any) -> Path:
    """Write `target`'s artefact for a quantised graph into `out_dir`, atomically.

    The backend writes into a fresh temporary folder beside `out_dir`; only when it succeeds
    is that folder renamed into place, so a failed compile leaves nothing half-written. An
    existing `out_dir` is replaced only when it is empty or an earlier nmcompile artefact
    (`force=True` replaces any folder); a symlink, a file, or a folder that is or holds one
    of `inputs` (the files the graph was read from) is refused (`nmcompile.outputs`).
    """
    backend = get_backend(target)
    return replace_folder(out_dir, lambda tmp: backend.compile(graph, tmp, **options),
                          f"compile --target {target}", force=force, inputs=inputs)


def estimate(graph: Graph, spikes: np.ndarray | Mapping[str, np.ndarray] | None = None,
             device: Any = "loihi", **options: Any):
    """Count synaptic ops, neuron updates, spikes and memory of `graph` on `spikes` and
    estimate the energy per inference on `device` ("loihi", "loihi,truenorth", a TOML file):
    an `Estimate` with `.table()`, `.to_json()`, `.plot(path)`. See
    `nmcompile.analysis.estimate` for the options (analytic `rates=`, `backend=`, ...)."""
    from .analysis import estimate as _estimate

    return _estimate(graph, spikes, device, **options)
