"""The public entry points, written once over all targets. `run` and `is_quantized` live in
`runtime` (below `verify` and `analysis`, which need them too) and are re-exported here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .contract import require
from .ir import Graph
from .outputs import replace_folder
from .registry import get_backend
from .runtime import is_quantized, run

__all__ = ["compile", "estimate", "is_quantized", "quantize", "run"]


def quantize(graph: Graph, profile: str = "loihi2", calibration: Any = None, **kwargs: Any):
    """Quantise a float graph for a fixed-point profile (see `nmcompile.quantization.quantizer`)."""
    from .quantization.quantizer import quantize as _quantize

    return _quantize(graph, profile, calibration, **kwargs)


def compile(graph: Graph, out_dir: str | Path, target: str, *, force: bool = False,
            inputs: Sequence[str | Path] = (), **options: Any) -> Path:
    """Write `target`'s artefact for a quantised graph into `out_dir`, atomically.

    The backend writes into a fresh temporary folder beside `out_dir`; only when it succeeds
    is that folder renamed into place, so a failed compile leaves nothing half-written. An
    existing `out_dir` is replaced only when it is empty or an earlier nmcompile artefact
    (`force=True` replaces any folder); a symlink, a file, or a folder that is or holds one
    of `inputs` (the files the graph was read from) is refused (`nmcompile.outputs`). The
    backend's `check` runs first, as for `run`.
    """
    backend = get_backend(target)
    require(backend, "compile", graph, options)
    return replace_folder(out_dir, lambda tmp: backend.compile(graph, tmp, **options),
                          f"compile --target {target}", force=force, inputs=inputs)


def estimate(graph: Graph, spikes: np.ndarray | Mapping[str, np.ndarray] | None = None,
             device: Any = "loihi", **options: Any):
    """Count synaptic ops, neuron updates, spikes and memory of `graph` on `spikes` and
    estimate the energy per inference on `device` ("loihi", "loihi,truenorth", a TOML file):
    an `Estimate` with `.table()`, `.to_json()`, `.plot(path)`. See
    `nmcompile.analysis.estimation` for the options (analytic `rates=`, `backend=`, ...)."""
    from .analysis import estimate as _estimate

    return _estimate(graph, spikes, device, **options)
