"""The excitatory layer: LIF neurons with an adaptive threshold.

Within one sample (a run of T steps from zero state) a neuron is exactly the IR's `ALIF`
(`nmcompile.ir.dynamics.alif_step`, the function the float interpreter runs), with a learned,
per-neuron threshold offset `theta`:

    v' = beta * v + x
    a' = rho * a                                   adaptation relaxes back
    s  = v' > threshold + theta + a'
    v  = 0 where s (reset "zero"), or v' - (threshold + theta + a') ("subtract")
    a  = a' + adapt_step * s                       each spike raises the threshold

`theta` is homeostasis across samples (Diehl and Cook's adaptive threshold): after each
training batch it takes over what the samples' adaptation built up and relaxes over the steps
that passed, `theta <- rho**(B T) * theta + sum over the batch of a[T]` (B samples of T
steps: the adaptation of consecutive samples, applied once per batch). A neuron that wins
often ends with a high threshold, so rarely used neurons get their turn.

At inference the threshold is either frozen (`LIF` with the per-neuron threshold
`threshold + theta`, as Diehl and Cook test) or keeps adapting within each sample (`ALIF`
with that threshold, `rho` and `adapt_step`); `from_stdp(..., frozen_thresholds=...)` picks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import NmcompileError
from ..ir import dynamics

__all__ = ["AdaptiveLIF"]


@dataclass(frozen=True)
class AdaptiveLIF:
    """Excitatory LIF parameters (per step): `beta` leak, `threshold` base, `rho` how much of
    the adaptation is kept per step, `adapt_step` the rise per spike, `reset` zero/subtract."""

    beta: float = 0.95
    threshold: float = 1.0
    rho: float = 0.99999
    adapt_step: float = 0.05
    reset: str = "zero"

    def __post_init__(self) -> None:
        for name in ("beta", "rho"):
            if not 0 <= getattr(self, name) <= 1:
                raise NmcompileError(f"AdaptiveLIF: {name} is a decay factor per step and must "
                                     f"lie in [0, 1], got {getattr(self, name)!r}")
        if not (self.threshold > 0 and self.adapt_step >= 0):
            raise NmcompileError("AdaptiveLIF: need threshold > 0 and adapt_step >= 0")
        if self.reset not in ("zero", "subtract"):
            raise NmcompileError(f"AdaptiveLIF: reset must be 'zero' or 'subtract', got "
                                 f"{self.reset!r}")

    def step(self, x: Tensor, state: dict[str, Tensor], threshold: Tensor, adapt: bool
             ) -> Tensor:
        """One step on `state` {'i', 'a', 'v'} (batch, n) with per-neuron `threshold`
        (threshold + theta); `adapt=False` is the frozen LIF. Returns the spikes."""
        if adapt:
            s, state["i"], state["a"], state["v"], _, _ = dynamics.alif_step(
                x, state["i"], state["a"], state["v"], beta=self.beta, threshold=threshold,
                rho=self.rho, adapt_step=self.adapt_step, alpha=0.0, bias=0.0,
                reset=self.reset)
        else:
            s, state["i"], state["v"], _ = dynamics.lif_step(
                x, state["i"], state["v"], beta=self.beta, threshold=threshold, alpha=0.0,
                bias=0.0, reset=self.reset)
        return s

    def init(self, batch: int, n: int, dtype: torch.dtype) -> dict[str, Tensor]:
        return {k: torch.zeros((batch, n), dtype=dtype) for k in ("i", "a", "v")}
