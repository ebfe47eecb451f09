"""The public entry points, written once over all targets."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
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


def quantize(graph: Graph, profile: str = "loihi2", calibration: Any = None, **kwargs: Any):
    """Quantise a float graph for a fixed-point profile (see `nmcompile.quantize.quantizer`)."""
    from .quantize.quantizer import quantize as _quantize

    return _quantize(graph, profile, calibration, **kwargs)


def compile(graph: Graph, out_dir: str | Path, target: str, **options: Any) -> Path:
    """Write `target`'s artefact for a quantised graph into `out_dir`, atomically.

    The backend writes into a fresh temporary folder beside `out_dir`; only when it succeeds
    is that folder renamed into place (replacing an older one), so a failed compile leaves
    nothing half-written.
    """
    backend = get_backend(target)
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        backend.compile(graph, tmp, **options)
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def estimate(graph: Graph, spikes: np.ndarray | Mapping[str, np.ndarray] | None = None,
             device: Any = "loihi", **options: Any):
    """Count synaptic ops, neuron updates, spikes and memory of `graph` on `spikes` and
    estimate the energy per inference on `device` ("loihi", "loihi,truenorth", a TOML file):
    an `Estimate` with `.table()`, `.to_json()`, `.plot(path)`. See
    `nmcompile.analysis.estimate` for the options (analytic `rates=`, `backend=`, ...)."""
    from .analysis import estimate as _estimate

    return _estimate(graph, spikes, device, **options)
