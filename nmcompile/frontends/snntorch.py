"""snnTorch's neurons (`Leaky`, `Synaptic`, `RLeaky`, `RSynaptic`) in the IR, exactly.

`from_torch` traces a per-step module; snnTorch layers with `init_hidden=True` keep their state
inside, so an `nn.Sequential` of torch layers and snnTorch neurons called once per step is
such a module (the style of snnTorch's own NIR export). snnTorch 1.0 updates a layer per step
as follows, with s the spike, m the membrane, and the reset decided by the *previous* step's
spike (`reset_delay=True`, the default; `reset = H(m[t-1] - theta) = s[t-1]`):

    syn[t] = alpha syn[t-1] + x[t] (+ R s[t-1])        Synaptic, RSynaptic (R: recurrent map)
    m[t]   = beta m[t-1] + syn[t] - theta s[t-1]         "subtract" (Leaky: x[t], RLeaky: + R s)
    m[t]   = beta m[t-1] + syn[t]                        "none"
    m[t]   = beta (1 - s[t-1]) m[t-1] + x[t]             "zero", Leaky
    m[t]   = (1 - s[t-1]) (beta m[t-1] + syn[t])         "zero", Synaptic / RLeaky / RSynaptic
    s[t]   = H(m[t] - theta)                             (strictly greater, every surrogate)

The IR neuron (`i = alpha i + x; v' = beta v + i; s = v' > theta; reset v`) computes these with
v' = m:

- "zero", Leaky: the IR's reset to zero, v[t-1] = (1 - s[t-1]) m[t-1]; the same float
  operations, so spikes and voltages agree bit for bit.
- "subtract" and "none": the IR subtracts theta at once, so its next step starts from
  beta m[t-1] - beta theta s[t-1], where snnTorch has beta m[t-1] - R theta s[t-1] (R = 1, or
  0 for "none"). A self-connection `NAME.reset` (a `Scale` of c = (beta - R) theta, delay 1)
  adds the difference. Into a synaptic current (alpha > 0) it would be filtered, so a second,
  `NAME.reset2` (-alpha c, delay 2), cancels the current's memory of it: the current then
  carries exactly c s[t-1]. Exact in arithmetic; in floating point the sums are ordered
  differently, so voltages agree to rounding and spikes unless a voltage ties its threshold.
- "zero" with Synaptic, RLeaky or RSynaptic: the step after a spike discards that step's
  input; no IR neuron does that, so it is an error (reset_delay=False is exact; see below).
- `reset_delay=False`: the reset happens at once. With "zero" that is the IR's reset exactly
  (for thresholds >= 0, the post-reset voltage never exceeds the threshold). With "subtract"
  snnTorch also re-tests the reset voltage on the next step (an effective threshold of 2 theta
  when it stayed above theta): an error. snnTorch's RSynaptic ignores reset_delay=False (its
  immediate reset writes a local variable), so it is mapped as delayed.

`RLeaky`/`RSynaptic`'s recurrent map (all-to-all `Linear` or `Conv2d`, or one-to-one `V`)
becomes a projection `NAME_rec` on a cycle: layer -> rec with delay 1, rec -> layer.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import UnsupportedError
from ..ir import LIF, Conv2d, Dense, Scale

TYPES = ("Leaky", "Synaptic", "RLeaky", "RSynaptic")


def _module() -> Any:
    return sys.modules.get("snntorch")


def is_neuron(m: nn.Module) -> bool:
    """Any snnTorch neuron (a leaf for tracing); only TYPES map, the rest raise by name."""
    snn = _module()
    return snn is not None and isinstance(m, snn.SpikingNeuron)


def returns_tuple(m: nn.Module) -> bool:
    """Whether the layer returns (spikes, states...) rather than spikes alone."""
    return bool(getattr(m, "output", False)) or not getattr(m, "init_hidden", False)


def _np(t: Any) -> float | np.ndarray:
    arr = torch.as_tensor(t).detach().cpu().to(torch.float64).numpy().copy()
    return float(arr) if arr.ndim == 0 else arr


def _clamp(t: Any) -> float | np.ndarray:
    # snnTorch multiplies by beta.clamp(0, 1) (alpha too) on every step
    value = np.clip(_np(t), 0.0, 1.0)
    return float(value) if np.ndim(value) == 0 else value


def _recurrent(m: nn.Module, where: str) -> Any:
    rec = m.recurrent
    if isinstance(rec, nn.Linear):
        bias = None if rec.bias is None else _np(rec.bias)
        return Dense(_np(rec.weight), bias)
    if isinstance(rec, nn.Conv2d):
        if rec.padding_mode != "zeros" or isinstance(rec.padding, str):
            raise UnsupportedError(f"{where}: recurrent Conv2d needs zero padding given as "
                                   f"numbers")
        bias = None if rec.bias is None else _np(rec.bias)
        return Conv2d(_np(rec.weight), bias, rec.stride, rec.padding, rec.dilation, rec.groups)
    if type(rec).__name__ == "RecurrentOneToOne":
        return Scale(_np(rec.V))
    raise UnsupportedError(f"{where}: recurrent connection {type(rec).__name__} is not "
                           f"supported (Linear, Conv2d or one-to-one V)")


def to_ir(builder: Any, name: str, m: nn.Module, src: list[str], where: str) -> list[str]:
    """Add the IR nodes of snnTorch layer `m` (fed by `src`) through the PyTorch frontend's
    builder; returns [the spiking node's name], as the builder's other layers do."""
    kind = type(m).__name__
    snn = _module()
    if kind not in TYPES or type(m) is not getattr(snn, kind):
        raise UnsupportedError(f"{where}: snnTorch {kind} is not supported; supported are "
                               f"snntorch.{', snntorch.'.join(TYPES)}")
    if m.inhibition or m.state_quant:
        raise UnsupportedError(f"{where}: inhibition and state_quant are not supported")
    if np.any(np.asarray(_np(m.graded_spikes_factor)) != 1.0):
        raise UnsupportedError(f"{where}: graded_spikes_factor != 1 is not supported; scale "
                               f"the next layer's weights instead")
    mode = m.reset_mechanism
    beta, theta = _clamp(m.beta), _np(m.threshold)
    alpha = _clamp(m.alpha) if kind in ("Synaptic", "RSynaptic") else 0.0
    delayed = bool(m.reset_delay) or kind == "RSynaptic"
    c = None
    if mode == "zero":
        if delayed and kind != "Leaky":
            raise UnsupportedError(
                f"{where}: snnTorch's {kind} with reset_mechanism='zero' and reset_delay=True "
                f"zeroes the membrane *after* adding the next step's input, which no IR neuron "
                f"does; use reset_delay=False (mapped exactly) or reset_mechanism='subtract'")
        if np.any(np.asarray(theta) < 0):
            raise UnsupportedError(f"{where}: a negative threshold with reset to zero is not "
                                   f"supported")
    elif mode == "subtract" and not delayed:
        raise UnsupportedError(
            f"{where}: reset_mechanism='subtract' with reset_delay=False re-tests the reset "
            f"voltage on the next step (a threshold of 2*threshold when it stayed above), "
            f"which no IR neuron does; use reset_delay=True (the default, mapped exactly)")
    else:  # "subtract" or "none": reset after the decay, by theta or not at all
        c = beta * np.asarray(theta) - (np.asarray(theta) if mode == "subtract" else 0.0)
        c = float(c) if np.ndim(c) == 0 else c
    node = LIF(beta=beta, threshold=theta, alpha=alpha, reset="zero" if c is None else "subtract")
    (name,) = builder.add(name, node, src)
    g = builder.g

    def loop(node: Any, suffix: str, delay: int) -> None:
        (extra,) = builder.add(f"{name}{suffix}", node, [])
        g.add_edge(name, extra, delay)
        g.add_edge(extra, name, 0)

    if kind in ("RLeaky", "RSynaptic"):
        loop(_recurrent(m, where), "_rec", 1)
    if c is not None and np.any(np.asarray(c) != 0):
        loop(Scale(c), ".reset", 1)
        if np.any(np.asarray(alpha) != 0):
            minus = -np.asarray(alpha) * np.asarray(c)
            loop(Scale(float(minus) if minus.ndim == 0 else minus), ".reset2", 2)
    return [name]
