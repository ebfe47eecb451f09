"""Trainable spiking layers. Each is stateful and computes one time step per call on
(batch, *features); wrap the per-step body in `TimeLoop` to map (T, batch, ...) to
(T, batch, ...). The arithmetic is `nmcompile.ir.dynamics`, the very code the IR's float
interpreter runs, and `to_ir()` gives the layer's IR node with its current parameters.

Parameters (`beta`, `alpha`, `threshold`, `bias`, `rho`, `adapt_step`) are scalars or tensors
that broadcast to the layer's shape (per neuron: shape (n,) or (C, H, W); per channel:
(C, 1, 1)). Decay factors are clamped to [0, 1] when used, so learning cannot leave the range.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from .. import ir
from ..errors import NmcompileError
from ..ir import Node, dynamics
from . import surrogate as surrogates

RESETS = ("zero", "subtract")


def _to_numpy(t: Tensor) -> float | np.ndarray:
    arr = t.detach().cpu().to(torch.float64).numpy()
    return float(arr) if arr.ndim == 0 else arr.copy()


class SpikingModule(nn.Module):
    """Base of the stateful layers: holds parameters and the state between calls."""

    _decays: tuple[str, ...] = ()

    def __init__(self) -> None:
        super().__init__()
        self.state: dict[str, Tensor] | None = None

    def _param(self, name: str, value: float | Tensor, learn: bool) -> None:
        t = torch.as_tensor(value, dtype=torch.get_default_dtype()).clone()
        if learn:
            self.register_parameter(name, nn.Parameter(t))
        else:
            self.register_buffer(name, t)

    def _spiking(self, reset: str, surrogate: str, detach_reset: bool) -> None:
        if reset not in RESETS:
            raise NmcompileError(f"reset must be one of {RESETS}, got {reset!r}")
        self.reset, self.detach_reset = reset, detach_reset
        self.spike_fn = surrogates.get(surrogate)

    def ir_params(self, *names: str) -> dict[str, float | np.ndarray]:
        """Parameters as the IR node takes them: float64, decays clamped."""
        return {name: _to_numpy(self.value(name)) for name in names}

    def value(self, name: str) -> Tensor:
        """A parameter as the dynamics use it (decays clamped to [0, 1])."""
        t = getattr(self, name)
        return t.clamp(0.0, 1.0) if name in self._decays else t

    def reset_state(self) -> None:
        """Forget the state: the next call starts from zero, as at step 0."""
        self.state = None

    def _state(self, x: Tensor, names: tuple[str, ...]) -> dict[str, Tensor]:
        if self.state is None or next(iter(self.state.values())).shape != x.shape:
            self.state = {k: torch.zeros_like(x) for k in names}
        return self.state

    def to_ir(self) -> Node:
        raise NotImplementedError


class LIF(SpikingModule):
    """Leaky integrate-and-fire (current-based when `alpha` > 0), one step per call:

        i = alpha * i + x;  v = beta * v + i + bias;  s = v > threshold
        reset: v = 0 where s ("zero"), or v = v - threshold where s ("subtract")

    The spike's gradient is the `surrogate` ('fast_sigmoid', 'sigmoid', 'arctan' or a
    callable); with `detach_reset` no gradient flows through the reset.
    """

    _decays = ("alpha", "beta")

    def __init__(self, beta: float | Tensor, threshold: float | Tensor = 1.0, *,
                 alpha: float | Tensor = 0.0, bias: float | Tensor = 0.0, reset: str = "zero",
                 surrogate: str = "fast_sigmoid", detach_reset: bool = True,
                 learn_beta: bool = False, learn_alpha: bool = False,
                 learn_threshold: bool = False, learn_bias: bool = False) -> None:
        super().__init__()
        self._spiking(reset, surrogate, detach_reset)
        self._param("beta", beta, learn_beta)
        self._param("alpha", alpha, learn_alpha)
        self._param("threshold", threshold, learn_threshold)
        self._param("bias", bias, learn_bias)

    def forward(self, x: Tensor) -> Tensor:
        st = self._state(x, ("i", "v"))
        s, st["i"], st["v"], _ = dynamics.lif_step(
            x, st["i"], st["v"], beta=self.value("beta"), threshold=self.threshold,
            alpha=self.value("alpha"), bias=self.bias, reset=self.reset,
            spike_fn=self.spike_fn, detach_reset=self.detach_reset)
        return s

    def to_ir(self) -> Node:
        return ir.LIF(**self.ir_params("beta", "threshold", "alpha", "bias"), reset=self.reset)


class CubaLIF(LIF):
    """Current-based LIF: `LIF` with a synaptic current that decays by `alpha` per step."""

    def __init__(self, alpha: float | Tensor, beta: float | Tensor,
                 threshold: float | Tensor = 1.0, **kwargs) -> None:
        super().__init__(beta, threshold, alpha=alpha, **kwargs)


class ALIF(SpikingModule):
    """LIF with an adaptive threshold, one step per call:

        i = alpha * i + x;  v = beta * v + i + bias;  a = rho * a
        s = v > threshold + a;  reset v;  a = a + adapt_step * s
    """

    _decays = ("alpha", "beta", "rho")

    def __init__(self, beta: float | Tensor, threshold: float | Tensor = 1.0, *,
                 rho: float | Tensor = 0.95, adapt_step: float | Tensor = 0.1,
                 alpha: float | Tensor = 0.0, bias: float | Tensor = 0.0, reset: str = "zero",
                 surrogate: str = "fast_sigmoid", detach_reset: bool = True,
                 learn_beta: bool = False, learn_threshold: bool = False) -> None:
        super().__init__()
        self._spiking(reset, surrogate, detach_reset)
        self._param("beta", beta, learn_beta)
        self._param("threshold", threshold, learn_threshold)
        self._param("rho", rho, False)
        self._param("adapt_step", adapt_step, False)
        self._param("alpha", alpha, False)
        self._param("bias", bias, False)

    def forward(self, x: Tensor) -> Tensor:
        st = self._state(x, ("i", "a", "v"))
        s, st["i"], st["a"], st["v"], _, _ = dynamics.alif_step(
            x, st["i"], st["a"], st["v"], beta=self.value("beta"), threshold=self.threshold,
            rho=self.value("rho"), adapt_step=self.adapt_step, alpha=self.value("alpha"),
            bias=self.bias, reset=self.reset, spike_fn=self.spike_fn,
            detach_reset=self.detach_reset)
        return s

    def to_ir(self) -> Node:
        return ir.ALIF(**self.ir_params("beta", "threshold", "rho", "adapt_step", "alpha", "bias"),
                       reset=self.reset)


class LI(SpikingModule):
    """Leaky integrator readout (no spikes); returns its voltage each step:

        i = alpha * i + x;  v = beta * v + i + bias
    """

    _decays = ("alpha", "beta")

    def __init__(self, beta: float | Tensor, *, alpha: float | Tensor = 0.0,
                 bias: float | Tensor = 0.0, learn_beta: bool = False) -> None:
        super().__init__()
        self._param("beta", beta, learn_beta)
        self._param("alpha", alpha, False)
        self._param("bias", bias, False)

    def forward(self, x: Tensor) -> Tensor:
        st = self._state(x, ("i", "v"))
        st["i"], st["v"] = dynamics.li_step(x, st["i"], st["v"], beta=self.value("beta"),
                                            alpha=self.value("alpha"), bias=self.bias)
        return st["v"]

    def to_ir(self) -> Node:
        return ir.LI(**self.ir_params("beta", "alpha", "bias"))


class Recurrent(SpikingModule):
    """A spiking layer with all-to-all recurrent weights: at step t the layer receives
    `x[t] + W_rec @ s[t-1]` (a `Dense` with delay 1 back into the layer in the IR).

        layer = Recurrent(LIF(beta=0.9), size=128)
    """

    def __init__(self, neuron: SpikingModule, size: int, bias: bool = False) -> None:
        super().__init__()
        if not isinstance(neuron, (LIF, ALIF)):
            raise NmcompileError("Recurrent wraps a spiking layer (LIF, CubaLIF or ALIF), "
                                 f"got {type(neuron).__name__}")
        self.neuron = neuron
        self.rec = nn.Linear(size, size, bias=bias)

    def reset_state(self) -> None:
        super().reset_state()
        self.neuron.reset_state()

    def forward(self, x: Tensor) -> Tensor:
        st = self._state(x, ("s",))
        s = self.neuron(x + self.rec(st["s"]))
        st["s"] = s
        return s

    def to_ir(self) -> Node:
        return self.neuron.to_ir()

    def recurrent_ir(self) -> Node:
        bias = None if self.rec.bias is None else _to_numpy(self.rec.bias)
        return ir.Dense(weight=_to_numpy(self.rec.weight), bias=bias)
