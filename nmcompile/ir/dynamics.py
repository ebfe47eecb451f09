"""The float update equations of the neuron nodes, as PyTorch expressions.

One implementation serves both the float interpreter (`interpret.py`) and the trainable layers
in `nmcompile.nn`, so a trained layer and its IR node compute the very same floating-point
operations in the same order. `spike_fn(x)` returns `x > 0` as 0.0/1.0 in the forward pass (the
layers pass a surrogate-gradient function with that forward); `detach_reset` stops gradients
through the reset, as is usual in training, without changing any value.

State tensors have the layer's shape with a leading batch axis; parameters broadcast to it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

SpikeFn = Callable[[Tensor], Tensor]


def heaviside(x: Tensor) -> Tensor:
    """The spike: 1.0 where x > 0 (strictly), else 0.0."""
    return (x > 0).to(x.dtype)


def _reset(v: Tensor, s: Tensor, theta: Tensor | float, mode: str, detach: bool) -> Tensor:
    r = s.detach() if detach else s
    if mode == "zero":
        return v * (1.0 - r)  # exactly v where r = 0 and 0 where r = 1
    return v - r * theta  # exactly v - theta where r = 1


def lif_step(x: Tensor, i: Tensor, v: Tensor, *, beta, threshold, alpha=0.0, bias=0.0,
             reset: str = "zero", spike_fn: SpikeFn = heaviside,
             detach_reset: bool = False) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One LIF step. Returns (spikes, i, v after reset, v before reset)."""
    i = alpha * i + x
    v = beta * v + i + bias
    s = spike_fn(v - threshold)
    return s, i, _reset(v, s, threshold, reset, detach_reset), v


def alif_step(x: Tensor, i: Tensor, a: Tensor, v: Tensor, *, beta, threshold, rho, adapt_step,
              alpha=0.0, bias=0.0, reset: str = "zero", spike_fn: SpikeFn = heaviside,
              detach_reset: bool = False) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """One ALIF step. Returns (spikes, i, a, v after reset, v before reset, theta)."""
    i = alpha * i + x
    v = beta * v + i + bias
    a = rho * a
    theta = threshold + a
    s = spike_fn(v - theta)
    v_post = _reset(v, s, theta, reset, detach_reset)
    return s, i, a + adapt_step * s, v_post, v, theta


def li_step(x: Tensor, i: Tensor, v: Tensor, *, beta, alpha=0.0, bias=0.0) -> tuple[Tensor, Tensor]:
    """One LI step (non-spiking readout). Returns (i, v)."""
    i = alpha * i + x
    return i, beta * v + i + bias


def as_tensor(value, dtype: torch.dtype) -> Tensor | float:
    """A node parameter as something that broadcasts against (batch, *shape) state."""
    if isinstance(value, float):
        return value
    return torch.as_tensor(value, dtype=dtype)
