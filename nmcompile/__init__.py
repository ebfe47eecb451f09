"""nmcompile: compile trained spiking neural networks to neuromorphic targets.

    graph = nmcompile.from_torch(model, example_spikes)   # float IR, equal to the model
    graph = nmcompile.from_nir("net.nir", dt=1e-4)        # or from NIR (to_nir writes one)
    result = nmcompile.run(graph, spikes)                 # float interpreter -> RunResult
    qgraph = nmcompile.quantize(graph)                    # fixed point, for the targets
    model, history = nmcompile.finetune(model, (spikes, labels), "loihi2")  # quantisation-aware
    result = nmcompile.run(qgraph, spikes)                # the emulator, bit-accurate
    nmcompile.verify(qgraph, spikes, ["emulator", "lava"])  # targets agree spike for spike
    nmcompile.estimate(qgraph, spikes, "loihi,truenorth")  # synaptic ops, energy per device
    nmcompile.save(graph, "net.nmc"); nmcompile.load("net.nmc")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .api import compile, estimate, is_quantized, quantize, run
from .errors import (
    FormatError,
    GraphError,
    LimitError,
    NmcompileError,
    ShapeError,
    UnsupportedError,
)
from .ir import Graph, load, save
from .result import RunResult
from .verification import verify

if TYPE_CHECKING:
    import torch

__version__ = "0.1.0"


def from_torch(model: torch.nn.Module, example_input: Any, **kwargs: Any) -> Graph:
    """Trace a PyTorch model into a float `Graph` (see `nmcompile.frontends.pytorch`).

    Imported lazily, so that `import nmcompile` (and so the CLI) does not load PyTorch.
    """
    from .frontends.pytorch import from_torch as _from_torch

    return _from_torch(model, example_input, **kwargs)


def finetune(model: torch.nn.Module, data: Any, profile: Any = "loihi2",
             **kwargs: Any) -> tuple[torch.nn.Module, Any]:
    """Quantisation-aware fine-tuning of a copy of `model` for `profile`: straight-through
    fake quantisation matched to `quantize` (see `nmcompile.quantization.qat.finetune` and
    docs/fixed_point.md). Returns (the fine-tuned copy, its `FinetuneHistory`). Imported
    lazily."""
    from .quantization.qat import finetune as _finetune

    return _finetune(model, data, profile, **kwargs)


def from_stdp(network: Any, frozen_thresholds: bool = True, **kwargs: Any) -> Graph:
    """A trained `nmcompile.stdp.STDPNetwork` as a float `Graph` (frozen thresholds as a LIF,
    else an ALIF; see `nmcompile.frontends.stdp` and docs/stdp.md). Imported lazily."""
    from .frontends.stdp import from_stdp as _from_stdp

    return _from_stdp(network, frozen_thresholds, **kwargs)


def from_nir(source: Any, dt: float | None = None, reset: str | None = None,
             **kwargs: Any) -> Graph:
    """Read a NIR graph (`.nir` file or `nir.NIRGraph`) into a float `Graph`; `dt` in seconds
    is required (see `nmcompile.frontends.nir` and docs/nir.md). Imported lazily."""
    from .frontends.nir import from_nir as _from_nir

    return _from_nir(source, dt, reset, **kwargs)


def map(graph: Graph, chip: Any = "loihi2", **kwargs: Any) -> Graph:
    """A quantised graph placed on `chip`'s cores (a name, a TOML file or a `Chip`): every
    layer partitioned into core-sized pieces, the pieces placed on the mesh, the placement
    stored with the graph (see `nmcompile.mapping.map_graph` and docs/mapping.md)."""
    from .mapping import map_graph

    return map_graph(graph, chip, **kwargs)


def to_nir(graph: Graph, path: Any = None, **kwargs: Any) -> Any:
    """Write a float `Graph` as NIR (returns the `nir.NIRGraph`; writes `path` when given),
    keeping dt and reset modes in its metadata. Imported lazily."""
    from .frontends.nir import to_nir as _to_nir

    return _to_nir(graph, path, **kwargs)


__all__ = [
    "FormatError",
    "Graph",
    "GraphError",
    "LimitError",
    "NmcompileError",
    "RunResult",
    "ShapeError",
    "UnsupportedError",
    "__version__",
    "compile",
    "estimate",
    "finetune",
    "from_nir",
    "from_stdp",
    "from_torch",
    "is_quantized",
    "load",
    "map",
    "quantize",
    "run",
    "save",
    "to_nir",
    "verify",
]
