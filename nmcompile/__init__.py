"""nmcompile: compile trained spiking neural networks to neuromorphic targets.

    graph = nmcompile.from_torch(model, example_spikes)   # float IR, equal to the model
    result = nmcompile.run(graph, spikes)                 # float interpreter -> RunResult
    qgraph = nmcompile.quantize(graph)                    # fixed point, for the targets
    result = nmcompile.run(qgraph, spikes)                # the emulator, bit-accurate
    nmcompile.verify(qgraph, spikes, ["emulator", "lava"])  # targets agree spike for spike
    nmcompile.save(graph, "net.nmc"); nmcompile.load("net.nmc")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import quantize as _quantize_package  # noqa: F401 - bound before the function below
from .api import compile, is_quantized, quantize, run
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
from .verify import verify

if TYPE_CHECKING:
    import torch

__version__ = "0.1.0"


def from_torch(model: torch.nn.Module, example_input: Any, **kwargs: Any) -> Graph:
    """Trace a PyTorch model into a float `Graph` (see `nmcompile.frontends.pytorch`).

    Imported lazily, so that `import nmcompile` (and so the CLI) does not load PyTorch.
    """
    from .frontends.pytorch import from_torch as _from_torch

    return _from_torch(model, example_input, **kwargs)


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
    "from_torch",
    "is_quantized",
    "load",
    "quantize",
    "run",
    "save",
    "verify",
]
