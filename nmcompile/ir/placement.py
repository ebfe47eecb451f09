"""Where a mapped graph's neurons run: the IR side of `nmcompile.map` (issue 15).

A `Placement` is plain data, so that the IR and its file format need nothing from the mapper:
the chip's description as its parsed TOML document (`nmcompile.mapping.chips.parse` reads
it back, so a mapped file carries its chip with it), the strategy that made it, and per
neuron layer the global core of each neuron, in the layer's flat (C, H, W) order. Global
core `g` is core `g % cores_per_chip` of chip `g // cores_per_chip`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import GraphError
from .node import values_equal


@dataclass(eq=False)
class Placement:
    """`cores[layer][i]`: the global core of neuron i of `layer`; `chip`: its TOML document."""

    chip: dict[str, Any]
    strategy: str
    cores: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for layer, cores in self.cores.items():
            arr = np.asarray(cores)
            if arr.ndim != 1 or arr.dtype.kind not in "iu" or (arr.size and arr.min() < 0):
                raise GraphError(f"placement of layer {layer!r}: cores must be a 1-d array of "
                                 f"non-negative integers")
            arr = arr.astype(np.int32) if arr.dtype != np.int32 else arr
            arr.flags.writeable = False
            self.cores[layer] = arr

    @property
    def n_cores(self) -> int:
        """Global cores in use: one past the highest index."""
        return max((int(c.max()) + 1 for c in self.cores.values() if c.size), default=0)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Placement):
            return NotImplemented
        return (self.chip == other.chip and self.strategy == other.strategy
                and self.cores.keys() == other.cores.keys()
                and all(values_equal(v, other.cores[k]) for k, v in self.cores.items()))

    __hash__ = None
