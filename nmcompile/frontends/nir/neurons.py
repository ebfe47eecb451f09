"""NIR's neuron equations <-> the IR's neurons, discretised with forward Euler at `dt`.

NIR states its neurons in continuous time. With `x` the node's summed input held constant over
one step (forward Euler, NIR's reference discretisation, and what snnTorch's and Norse's
exporters assume), one step of length dt is:

    LIF      tau dv/dt = (v_leak - v) + r x     v' = (1 - dt/tau) v + (dt r/tau) x + (dt/tau) v_leak
    IF           dv/dt = r x                    v' = v + (dt r) x
    LI       as LIF, without spikes             I: as IF, without spikes
    CubaLIF  tau_syn dI/dt = -I + w_in x        I  = (1 - dt/tau_syn) I + (dt w_in/tau_syn) x
             tau_mem dv/dt = (v_leak - v) + r I v' = (1 - dt/tau_mem) v + (dt r/tau_mem) I + ...
    CubaLI   as CubaLIF, without spikes
    Threshold  z = x > threshold               (no state)

then z = v' > v_threshold (strictly) and v = v_reset where z. The IR neuron has the same form
with per-step factors, so the mapping is exact:

    beta  = 1 - dt/tau(_mem)            alpha = 1 - dt/tau_syn
    bias  = (dt/tau(_mem)) v_leak       threshold = v_threshold
    gain  = dt r/tau  (LIF, LI)         gain = dt r (IF, I)
    gain  = (dt r/tau_mem)(dt w_in/tau_syn) (CubaLIF, CubaLI; the IR's current is the NIR
                                              current times dt r/tau_mem)

`gain` scales the neuron's input; the frontend puts it in a `Scale` node ahead of the neuron
when it is not exactly 1. A CubaLIF's voltage uses the current of the same step (the IR's
canonical order, and snnTorch's); Norse uses the previous step's current, which is the same
network with one more step of delay on the input. `v_reset` must be 0 (the IR resets to 0, or
subtracts the threshold when asked to), and dt <= tau (a larger step would make forward Euler
overshoot: beta < 0).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ...errors import UnsupportedError
from ...ir import ALIF, IF, LI, LIF, Neuron

#: NIR neuron types this module maps, by class name.
NEURONS = ("LIF", "IF", "LI", "I", "CubaLIF", "CubaLI", "Threshold")


def collapse(value: Any) -> float | np.ndarray:
    """A parameter as a Python float when every element is equal (NIR stores arrays only)."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.size and np.all(arr == arr.flat[0]):
        return float(arr.flat[0])
    return arr.copy()


def _f64(node: Any, field: str) -> np.ndarray:
    return np.asarray(getattr(node, field), dtype=np.float64)


def _decay(dt: float, tau: np.ndarray, field: str, name: str) -> np.ndarray:
    if np.any(~np.isfinite(tau)) or np.any(tau <= 0):
        raise UnsupportedError(f"NIR node {name!r}: {field} must be finite and > 0, got "
                               f"{tau.min():g}..{tau.max():g}")
    if np.any(dt > tau * (1 + 1e-12)):
        raise UnsupportedError(
            f"NIR node {name!r}: dt={dt:g} s is larger than {field}={tau.min():g} s, where "
            f"forward Euler overshoots (decay factor 1 - dt/{field} < 0); pass a smaller dt")
    return np.clip(1.0 - dt / tau, 0.0, 1.0)


def _no_reset_voltage(node: Any, name: str) -> None:
    v_reset = getattr(node, "v_reset", None)
    if v_reset is not None and np.any(np.asarray(v_reset, dtype=np.float64) != 0):
        raise UnsupportedError(
            f"NIR node {name!r} ({type(node).__name__}) resets to v_reset != 0; the IR resets "
            f"the voltage to 0 (or subtracts the threshold). Shift v_leak, v_threshold and "
            f"v_reset by -v_reset to express the same neuron")


def from_nir(node: Any, dt: float, reset: str, name: str,
             shape_fix: Callable[[np.ndarray], np.ndarray] | None = None
             ) -> tuple[Neuron, float | np.ndarray]:
    """(IR neuron, input gain) for a NIR neuron node. `shape_fix` reshapes per-neuron arrays
    to the IR layer's layout (a 1-D signal is a height-1 image in the IR)."""
    kind = type(node).__name__
    fix = shape_fix or (lambda a: a)

    def p(value: Any) -> float | np.ndarray:
        return collapse(fix(np.asarray(value, dtype=np.float64)))

    _no_reset_voltage(node, name)
    if kind in ("LIF", "LI"):
        tau, r, v_leak = _f64(node, "tau"), _f64(node, "r"), _f64(node, "v_leak")
        beta = _decay(dt, tau, "tau", name)
        gain, bias = p(dt * r / tau), p(dt * v_leak / tau)
        if kind == "LI":
            return LI(beta=p(beta), bias=bias), gain
        return LIF(beta=p(beta), threshold=p(_f64(node, "v_threshold")), bias=bias,
                   reset=reset), gain
    if kind in ("IF", "I"):
        gain = p(dt * _f64(node, "r"))
        if kind == "I":
            return LI(beta=1.0), gain
        return IF(threshold=p(_f64(node, "v_threshold")), reset=reset), gain
    if kind in ("CubaLIF", "CubaLI"):
        tau_syn, tau_mem = _f64(node, "tau_syn"), _f64(node, "tau_mem")
        r, w_in, v_leak = _f64(node, "r"), _f64(node, "w_in"), _f64(node, "v_leak")
        alpha = _decay(dt, tau_syn, "tau_syn", name)
        beta = _decay(dt, tau_mem, "tau_mem", name)
        gain = p((dt * r / tau_mem) * (dt * w_in / tau_syn))
        bias = p(dt * v_leak / tau_mem)
        if kind == "CubaLI":
            return LI(beta=p(beta), alpha=p(alpha), bias=bias), gain
        return LIF(beta=p(beta), threshold=p(_f64(node, "v_threshold")), alpha=p(alpha),
                   bias=bias, reset=reset), gain
    if kind == "Threshold":
        # No state: with beta = 0 the voltage is this step's input alone, v' = x, and
        # s = x > threshold, NIR's strict comparison. The reset never matters.
        return LIF(beta=0.0, threshold=p(_f64(node, "threshold"))), 1.0
    raise UnsupportedError(f"NIR node {name!r}: {kind} is not a neuron nmcompile maps")


def _full(value: float | np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return np.array(np.broadcast_to(np.asarray(value, dtype=np.float64), shape))


def _all(value: Any, target: float) -> bool:
    return bool(np.all(np.asarray(value) == target))


def to_nir(node: Neuron, dt: float, shape: tuple[int, ...], name: str) -> Any:
    """The NIR node whose forward-Euler step at `dt` is the IR neuron `node` (input gain 1)."""
    import nir

    def full(value: Any) -> np.ndarray:
        return _full(value, shape)

    def no(field: str, why: str) -> UnsupportedError:
        return UnsupportedError(f"node {name!r} ({type(node).__name__}) cannot be written to "
                                f"NIR: {field} {why}")

    if isinstance(node, ALIF):
        raise UnsupportedError(f"node {name!r} (ALIF) cannot be written to NIR: NIR 1.0 has no "
                               f"neuron with an adaptive threshold")
    zero = full(0.0)
    if isinstance(node, IF):
        if not _all(node.bias, 0.0):
            raise no("bias", "is not 0 and NIR's IF has no leak or bias term")
        return nir.IF(r=full(1.0 / dt), v_threshold=full(node.threshold), v_reset=zero)
    alpha = np.asarray(node.alpha, dtype=np.float64)
    beta = np.asarray(node.beta, dtype=np.float64)
    spiking = isinstance(node, LIF)
    if _all(alpha, 0.0):
        if _all(beta, 1.0):
            if not _all(node.bias, 0.0):
                raise no("bias", "is not 0 on a neuron without leak (beta = 1): NIR's "
                         "IF and I have no bias term")
            if spiking:
                return nir.IF(r=full(1.0 / dt), v_threshold=full(node.threshold), v_reset=zero)
            return nir.I(r=full(1.0 / dt))
        if np.any(beta == 1.0):
            raise no("beta", "is 1 for some neurons and < 1 for others; NIR's LIF needs a "
                     "finite tau for every neuron")
        if spiking and _all(beta, 0.0) and _all(node.bias, 0.0):
            return nir.Threshold(threshold=full(node.threshold))
        tau = full(dt / (1.0 - beta))
        common = {"tau": tau, "r": tau / dt, "v_leak": full(node.bias) * tau / dt}
        if spiking:
            return nir.LIF(v_threshold=full(node.threshold), v_reset=zero, **common)
        return nir.LI(**common)
    if np.any(alpha == 1.0) or np.any(beta == 1.0):
        raise no("alpha or beta", "is 1 (no decay); NIR's CubaLIF needs finite time constants")
    tau_syn, tau_mem = full(dt / (1.0 - alpha)), full(dt / (1.0 - beta))
    common = {"tau_syn": tau_syn, "tau_mem": tau_mem, "r": tau_mem / dt,
              "v_leak": full(node.bias) * tau_mem / dt, "w_in": tau_syn / dt}
    if spiking:
        return nir.CubaLIF(v_threshold=full(node.threshold), v_reset=zero, **common)
    return nir.CubaLI(**common)
