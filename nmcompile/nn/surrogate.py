"""Surrogate-gradient spike functions.

Every function here computes the spike exactly in the forward pass,

    S(x) = 1.0 if x > 0 else 0.0        (strictly greater; `nmcompile.ir.dynamics.heaviside`),

bit for bit the same as the float IR, and replaces the derivative dS/dx (zero almost everywhere)
by a smooth surrogate in the backward pass:

    fast_sigmoid(slope=25):  dS/dx = 1 / (slope * |x| + 1)^2                   (snnTorch)
    sigmoid(slope=5):        dS/dx = slope * sig(slope * x) * (1 - sig(slope * x))
    arctan(alpha=2):         dS/dx = (alpha / 2) / (1 + (pi / 2 * alpha * x)^2)

A surrogate is a small frozen dataclass (`Surrogate`): callable as `f(x) -> Tensor`, picklable,
comparable, and it names its kind and parameter so that frontends can record it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from nmcompile.errors import NmcompileError
from nmcompile.ir.dynamics import heaviside

__all__ = ["NAMES", "Surrogate", "arctan", "fast_sigmoid", "get", "sigmoid"]


def _d_fast_sigmoid(x: Tensor, slope: float) -> Tensor:
    return 1.0 / (slope * x.abs() + 1.0) ** 2


def _d_sigmoid(x: Tensor, slope: float) -> Tensor:
    s = torch.sigmoid(slope * x)
    return slope * s * (1.0 - s)


def _d_arctan(x: Tensor, alpha: float) -> Tensor:
    return (alpha / 2.0) / (1.0 + (math.pi / 2.0 * alpha * x) ** 2)


_DERIVATIVES: dict[str, Callable[[Tensor, float], Tensor]] = {
    "fast_sigmoid": _d_fast_sigmoid,
    "sigmoid": _d_sigmoid,
    "arctan": _d_arctan,
}

#: The surrogate names `get` accepts.
NAMES: tuple[str, ...] = tuple(_DERIVATIVES)


class _Spike(torch.autograd.Function):
    """Heaviside forward, `derivative(x, parameter)` backward."""

    @staticmethod
    def forward(ctx, x: Tensor, name: str, parameter: float) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.name = name
        ctx.parameter = parameter
        return heaviside(x)

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad_output * _DERIVATIVES[ctx.name](x, ctx.parameter), None, None


@dataclass(frozen=True)
class Surrogate:
    """A spike function: `heaviside(x)` forward, the surrogate named `name` backward.

    `parameter` is the surrogate's sharpness (`slope` for fast_sigmoid and sigmoid, `alpha`
    for arctan). Build one with `fast_sigmoid`, `sigmoid`, `arctan` or `get`.
    """

    name: str
    parameter: float

    def __call__(self, x: Tensor) -> Tensor:
        return _Spike.apply(x, self.name, self.parameter)


def _make(name: str, arg: str, value: float) -> Surrogate:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise NmcompileError(f"{name}: {arg} must be a positive number, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise NmcompileError(f"{name}: {arg} must be positive and finite, got {value!r}")
    return Surrogate(name, float(value))


def fast_sigmoid(slope: float = 25.0) -> Surrogate:
    """Spike with the fast-sigmoid surrogate: dS/dx = 1 / (slope * |x| + 1)^2."""
    return _make("fast_sigmoid", "slope", slope)


def sigmoid(slope: float = 5.0) -> Surrogate:
    """Spike with the sigmoid surrogate: dS/dx = slope * sig(slope x) * (1 - sig(slope x))."""
    return _make("sigmoid", "slope", slope)


def arctan(alpha: float = 2.0) -> Surrogate:
    """Spike with the arctan surrogate: dS/dx = (alpha / 2) / (1 + (pi / 2 * alpha * x)^2)."""
    return _make("arctan", "alpha", alpha)


_FACTORIES: dict[str, Callable[[], Surrogate]] = {
    "fast_sigmoid": fast_sigmoid,
    "sigmoid": sigmoid,
    "arctan": arctan,
}


def get(spec: str | Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
    """The spike function `spec` names (with default parameters), or `spec` itself if callable.

    A callable is returned as is; it is the caller's promise that its forward is `x > 0`.
    """
    if isinstance(spec, str):
        factory = _FACTORIES.get(spec)
        if factory is not None:
            return factory()
    elif callable(spec):
        return spec
    raise NmcompileError(
        f"surrogate: unknown spike function {spec!r}; pass one of {', '.join(NAMES)} "
        "or a callable such as nmcompile.nn.surrogate.fast_sigmoid(slope=25.0)"
    )
