"""Neurons: stateful nodes updated once per step, in discrete time.

Decays are per-step factors (what remains of a state after one step), not time constants; the
graph's `dt` is kept for reference only. Every parameter is a scalar or an array that
broadcasts to the layer's shape (per neuron, or per channel as (C, 1, 1)).

Each step, in this order (the canonical order every backend follows; `x` is the sum of the
node's incoming edges at this step):

    i = alpha * i + x                       synaptic current (alpha = 0: no current, i = x)
    v = beta * v + i + bias                 voltage
    s = v > theta                           spike, strictly greater
    v = 0 if s (reset "zero"); v = v - theta if s (reset "subtract")

with theta the threshold. The exact float expressions live in `dynamics.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import GraphError
from .node import Node, Shape, ShapeError, check_broadcast, float_param, register

RESETS = ("zero", "subtract")


class Neuron(Node):
    kind = "neuron"
    #: Names of the state variables, in update order; `v` is always last.
    states: tuple[str, ...] = ("v",)
    #: Whether the node emits spikes (False: it emits its voltage, like `LI`).
    spiking: bool = True
    _decays: tuple[str, ...] = ()
    _floats: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for field in self._floats:
            setattr(self, field, float_param(getattr(self, field), field))
        for field in self._decays:
            if np.any(np.asarray(getattr(self, field)) < 0) or np.any(
                    np.asarray(getattr(self, field)) > 1):
                raise GraphError(f"{type(self).__name__} decay factor {field!r} must lie in "
                                 f"[0, 1] (fraction of the state kept per step)")
        reset = getattr(self, "reset", "zero")
        if reset not in RESETS:
            raise GraphError(f"{type(self).__name__} reset must be one of {RESETS}, "
                             f"got {reset!r}")

    def output_shape(self, input_shape: Shape | None, name: str) -> Shape:
        if input_shape is None:
            raise ShapeError(f"neuron node {name!r} has no incoming edge")
        for field in self._per_neuron_fields():
            check_broadcast(getattr(self, field), input_shape, field, name)
        return input_shape

    def _per_neuron_fields(self) -> tuple[str, ...]:
        """The parameters that may be given per neuron (checked against the layer's shape)."""
        return self._floats


@register
@dataclass(eq=False)
class LIF(Neuron):
    """Leaky integrate-and-fire, with an optional synaptic current (alpha > 0: current-based).

        i = alpha * i + x;  v = beta * v + i + bias;  s = v > threshold;  reset v
    """

    beta: float | np.ndarray
    threshold: float | np.ndarray = 1.0
    alpha: float | np.ndarray = 0.0
    bias: float | np.ndarray = 0.0
    reset: str = "zero"
    states = ("i", "v")
    _decays = ("alpha", "beta")
    _floats = ("beta", "threshold", "alpha", "bias")


@register
@dataclass(eq=False)
class IF(Neuron):
    """Integrate-and-fire, no leak: `v = v + x + bias; s = v > threshold; reset v`.

    Equal to `LIF(beta=1, alpha=0)`, kept as its own type because hardware maps it directly.
    """

    threshold: float | np.ndarray = 1.0
    bias: float | np.ndarray = 0.0
    reset: str = "zero"
    _floats = ("threshold", "bias")


@register
@dataclass(eq=False)
class ALIF(Neuron):
    """LIF with an adaptive threshold `theta = threshold + a`:

        i = alpha * i + x;  v = beta * v + i + bias
        a = rho * a                             the adaptation decays back towards 0
        s = v > threshold + a;  reset v (by subtracting threshold + a, or to zero)
        a = a + adapt_step * s                  each spike raises the threshold
    """

    beta: float | np.ndarray
    threshold: float | np.ndarray = 1.0
    rho: float | np.ndarray = 1.0
    adapt_step: float | np.ndarray = 0.0
    alpha: float | np.ndarray = 0.0
    bias: float | np.ndarray = 0.0
    reset: str = "zero"
    states = ("i", "a", "v")
    _decays = ("alpha", "beta", "rho")
    _floats = ("beta", "threshold", "rho", "adapt_step", "alpha", "bias")


@register
@dataclass(eq=False)
class LI(Neuron):
    """Leaky integrator, non-spiking readout; it emits its voltage every step:

        i = alpha * i + x;  v = beta * v + i + bias
    """

    beta: float | np.ndarray
    alpha: float | np.ndarray = 0.0
    bias: float | np.ndarray = 0.0
    states = ("i", "v")
    spiking = False
    _decays = ("alpha", "beta")
    _floats = ("beta", "alpha", "bias")
