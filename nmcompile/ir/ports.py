"""Where data enters and leaves a graph."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import GraphError, ShapeError
from .node import Node, Shape, register


@register
@dataclass(eq=False)
class Input(Node):
    """An external input of shape `shape` (features only: no time, no batch axis).

    Each step it emits the caller's values for that step: binary spikes, or graded integers.
    """

    shape: Shape
    kind = "port"

    def __post_init__(self) -> None:
        self.shape = tuple(int(s) for s in self.shape)
        if not self.shape or any(s <= 0 for s in self.shape):
            raise GraphError(f"Input shape must be non-empty and positive, got {self.shape}")

    def output_shape(self, input_shape: Shape | None, name: str) -> Shape:
        if input_shape is not None:
            raise ShapeError(f"input node {name!r} cannot have incoming edges")
        return self.shape


@register
@dataclass(eq=False)
class Output(Node):
    """A network output: the sum of its incoming edges, recorded every step.

    Fed by spiking neurons it records spikes; fed by an `LI` readout it records the voltage.
    """

    kind = "port"

    def output_shape(self, input_shape: Shape | None, name: str) -> Shape:
        if input_shape is None:
            raise ShapeError(f"output node {name!r} has no incoming edge")
        return input_shape
