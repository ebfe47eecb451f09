"""Lateral inhibition as the classic pair of projections (Diehl and Cook 2015).

Each excitatory neuron k drives its own inhibitory neuron k (E -> I, one to one: `w_ei` times
the identity); inhibitory neuron k inhibits every *other* excitatory neuron of its group
(I -> E, a hollow matrix of `-w_ie`), so the first neuron to fire suppresses its rivals. With
patches each patch is a group: a winner silences only the neurons that look at its patch.

The inhibitory neurons are integrate-and-fire with `threshold` below `w_ei`: each fires on the
step its excitatory partner's spike arrives, and nothing is left over. Both projections carry
an edge delay (`delay_ei`, `delay_ie`), simulated exactly in training; their sum is the delay
of the E -> I -> E loop, which must be >= 1 (the IR's rule) and >= 2 for Lava, where each of
the loop's two projections adds one step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import NmcompileError

__all__ = ["Inhibition", "e_to_i", "i_to_e"]


@dataclass(frozen=True)
class Inhibition:
    """E -> I (identity * w_ei, delay_ei) and I -> E (hollow * -w_ie, delay_ie); the
    inhibitory neurons are IF(threshold): v = v + x; s = v > threshold; v = 0 where s."""

    w_ie: float = 4.0
    w_ei: float = 1.0
    threshold: float = 0.5
    delay_ei: int = 1
    delay_ie: int = 1

    def __post_init__(self) -> None:
        if not (self.w_ie >= 0 and self.w_ei > self.threshold > 0):
            raise NmcompileError(f"Inhibition: need w_ie >= 0 and w_ei > threshold > 0 so each "
                                 f"excitatory spike fires its inhibitory partner; got w_ie="
                                 f"{self.w_ie}, w_ei={self.w_ei}, threshold={self.threshold}")
        for name in ("delay_ei", "delay_ie"):
            d = getattr(self, name)
            if not (isinstance(d, int) and d >= 0):
                raise NmcompileError(f"Inhibition: {name} must be an integer >= 0, got {d!r}")
        if self.delay_ei + self.delay_ie < 1:
            raise NmcompileError("Inhibition: the E -> I -> E loop needs a total delay >= 1 "
                                 "(delay_ei + delay_ie); Lava needs >= 2")


def e_to_i(n: int, weight: float) -> np.ndarray:
    """(n, n): weight on the diagonal, excitatory neuron k drives inhibitory neuron k."""
    return np.eye(n) * weight


def i_to_e(groups: int, per_group: int, weight: float) -> np.ndarray:
    """(N, N), N = groups * per_group: -weight from inhibitory k to every excitatory neuron
    of k's group except k itself (a block-diagonal of hollow blocks)."""
    block = -weight * (np.ones((per_group, per_group)) - np.eye(per_group))
    return np.kron(np.eye(groups), block) + 0.0  # + 0.0: no -0.0 entries
