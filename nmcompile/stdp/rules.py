"""Learning rules: event-based postsynaptic STDP and pair-based STDP with traces.

A rule sees, each step, the presynaptic spikes `pre` (batch, P, L) and the postsynaptic spikes
`post` (batch, P, n) of P learners (patches) with n neurons and L inputs each, and the weights
`w` (G, n, L) (G = 1: one learner shared by every patch; G = P: one per patch). It returns the
change per patch, dw (P, n, L), summed over the batch (None when nothing changes); the network
sums it over patches when the learner is shared and then calls `apply`, which clips to
[w_min, w_max].

Bounds: `soft=True` scales potentiation by (w_max - w) and depression by (w - w_min)
(multiplicative STDP: weights approach the bounds without crossing them); `soft=False` adds
fixed amounts and relies on the clip. Both rules are batched: every sample of the batch runs
the same weights during a step, and the batch's changes are summed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from ..errors import NmcompileError

__all__ = ["EventSTDP", "PairSTDP", "Rule"]


class Rule(Protocol):
    w_min: float
    w_max: float

    def init(self, batch: int, pre_shape: tuple[int, int], post_shape: tuple[int, int],
             dtype: torch.dtype) -> dict[str, Tensor]: ...

    def update(self, state: dict[str, Tensor], pre: Tensor, post: Tensor, w: Tensor
               ) -> Tensor | None: ...

    def apply(self, w: Tensor, dw: Tensor) -> Tensor: ...


def _check_bounds(rule: EventSTDP | PairSTDP) -> None:
    if not (math.isfinite(rule.w_min) and math.isfinite(rule.w_max) and rule.w_min < rule.w_max):
        raise NmcompileError(f"{type(rule).__name__}: need finite w_min < w_max, got "
                             f"{rule.w_min!r}, {rule.w_max!r}")
    for name in ("a_plus", "a_minus"):
        if not getattr(rule, name) >= 0:
            raise NmcompileError(f"{type(rule).__name__}: {name} must be >= 0")


def _factors(rule: EventSTDP | PairSTDP, w: Tensor) -> tuple[Tensor | float, Tensor | float]:
    """(potentiation, depression) scale per weight: soft bounds or 1."""
    if rule.soft:
        return rule.w_max - w, w - rule.w_min
    return 1.0, 1.0


def _clip(rule: EventSTDP | PairSTDP, w: Tensor, dw: Tensor) -> Tensor:
    return (w + dw).clamp_(rule.w_min, rule.w_max)


@dataclass
class EventSTDP:
    """Event-based postsynaptic STDP (after Tavanaei, Masquelier and Maida, "Representation
    learning using event-based STDP", Neural Networks 2018).

    Only a postsynaptic spike triggers learning. When neuron k fires at step t, every incoming
    weight changes:

        dw_kj = +a_plus  * (w_max - w_kj)   if input j spiked in steps t - window + 1 .. t
        dw_kj = -a_minus * (w_kj - w_min)   otherwise

    (soft bounds; with `soft=False` the factors are 1 and the result is clipped). Inputs that
    are silent when the neuron fires decay towards w_min at every postsynaptic spike: the
    rule's built-in weight decay. At equilibrium, w_kj - w_min = (w_max - w_min) * a_plus p /
    (a_plus p + a_minus (1 - p)), p the probability that input j is active when k fires, so a
    neuron's weights become the average input pattern that makes it fire.
    """

    a_plus: float = 0.02
    a_minus: float = 0.02
    window: int = 3
    w_min: float = 0.0
    w_max: float = 1.0
    soft: bool = True

    def __post_init__(self) -> None:
        _check_bounds(self)
        if not (isinstance(self.window, int) and self.window >= 1):
            raise NmcompileError(f"EventSTDP: window must be an integer >= 1 step, got "
                                 f"{self.window!r}")

    def init(self, batch: int, pre_shape: tuple[int, int], post_shape: tuple[int, int],
             dtype: torch.dtype) -> dict[str, Tensor]:
        # steps since each input's last spike; `window` or more means "not recent"
        return {"age": torch.full((batch, *pre_shape), float(self.window), dtype=dtype)}

    def update(self, state: dict[str, Tensor], pre: Tensor, post: Tensor, w: Tensor
               ) -> Tensor | None:
        age = torch.where(pre > 0, torch.zeros_like(state["age"]), state["age"] + 1)
        state["age"] = age.clamp_(max=self.window)
        if not bool(post.any()):
            return None  # no postsynaptic spike: nothing learns
        recent = (age < self.window).to(w.dtype)
        fired = post.sum(0)                                          # (P, n)
        pot = torch.einsum("bpn,bpl->pnl", post, recent)             # post spikes with j recent
        dep = fired.unsqueeze(-1) - pot                              # ... with j silent
        f_plus, f_minus = _factors(self, w)
        return self.a_plus * pot * f_plus - self.a_minus * dep * f_minus

    def apply(self, w: Tensor, dw: Tensor) -> Tensor:
        return _clip(self, w, dw)


@dataclass
class PairSTDP:
    """Pair-based STDP with exponential traces (all-to-all pairing).

    Each step, in this order (s_pre, s_post the step's spikes):

        x_pre  = exp(-1/tau_plus)  * x_pre + s_pre          presynaptic trace
        x_post = exp(-1/tau_minus) * x_post                 postsynaptic trace, decayed
        dw    += a_plus  * s_post * x_pre * (w_max - w)     post after (or with) pre: LTP
        dw    -= a_minus * x_post * s_pre * (w - w_min)     pre after post: LTD
        x_post = x_post + s_post

    so a pre spike at step t0 and a post spike at t1 >= t0 change w by
    a_plus * exp(-(t1 - t0)/tau_plus) (times the soft bound), a post at t1 before a pre at
    t0 > t1 by -a_minus * exp(-(t0 - t1)/tau_minus); simultaneous spikes count as causal.
    Traces are per sample (batch), reset at the start of each run.
    """

    a_plus: float = 0.01
    a_minus: float = 0.0105
    tau_plus: float = 5.0
    tau_minus: float = 5.0
    w_min: float = 0.0
    w_max: float = 1.0
    soft: bool = True

    def __post_init__(self) -> None:
        _check_bounds(self)
        if not (self.tau_plus > 0 and self.tau_minus > 0):
            raise NmcompileError("PairSTDP: tau_plus and tau_minus must be > 0 (steps)")

    def init(self, batch: int, pre_shape: tuple[int, int], post_shape: tuple[int, int],
             dtype: torch.dtype) -> dict[str, Tensor]:
        return {"x_pre": torch.zeros((batch, *pre_shape), dtype=dtype),
                "x_post": torch.zeros((batch, *post_shape), dtype=dtype)}

    def update(self, state: dict[str, Tensor], pre: Tensor, post: Tensor, w: Tensor
               ) -> Tensor | None:
        x_pre = math.exp(-1.0 / self.tau_plus) * state["x_pre"] + pre
        state["x_pre"] = x_pre
        if not (bool(post.any()) or bool(state["x_post"].any())):
            return None  # no postsynaptic activity yet: no pair to learn from
        x_post = math.exp(-1.0 / self.tau_minus) * state["x_post"]  # without this step's
        ltp = torch.einsum("bpn,bpl->pnl", post, x_pre)
        ltd = torch.einsum("bpn,bpl->pnl", x_post, pre)
        state["x_post"] = x_post + post
        f_plus, f_minus = _factors(self, w)
        return self.a_plus * ltp * f_plus - self.a_minus * ltd * f_minus

    def apply(self, w: Tensor, dw: Tensor) -> Tensor:
        return _clip(self, w, dw)
