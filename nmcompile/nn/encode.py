"""Encoders from data to spike trains.

Every encoder returns a time-major float tensor of 0.0/1.0 spikes, `(T, batch, *features)` (the
delta encoder adds an on/off axis, see `delta`), with the dtype of its input when that is a
floating-point dtype and the default dtype otherwise. `poisson` is random and reproducible from
a `torch.Generator` or an integer `seed`; `latency` and `delta` are deterministic.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from nmcompile.errors import NmcompileError

__all__ = ["delta", "latency", "poisson"]


def _as_float(x: Tensor, fn: str, min_dim: int, layout: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise NmcompileError(f"{fn}: x must be a torch.Tensor {layout}, got {type(x).__name__}")
    if x.dim() < min_dim:
        raise NmcompileError(f"{fn}: x must have shape {layout}, got shape {tuple(x.shape)}")
    return x.detach() if x.is_floating_point() else x.detach().to(torch.get_default_dtype())


def _check_unit_interval(x: Tensor, fn: str) -> None:
    if not bool(((x >= 0) & (x <= 1)).all()):
        raise NmcompileError(
            f"{fn}: x must lie in [0, 1] (and not be NaN); got values in "
            f"[{x.min().item():g}, {x.max().item():g}]: normalise the data first"
        )


def _check_steps(num_steps: int, fn: str) -> None:
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
        raise NmcompileError(f"{fn}: num_steps must be an integer >= 1, got {num_steps!r}")


def _check_number(value: float, fn: str, name: str, low: float, strict: bool) -> float:
    ok = not isinstance(value, bool) and isinstance(value, int | float)
    ok = ok and math.isfinite(value) and (value > low if strict else value >= low)
    if not ok:
        bound = f"> {low:g}" if strict else f">= {low:g}"
        raise NmcompileError(f"{fn}: {name} must be a finite number {bound}, got {value!r}")
    return float(value)


def _generator(
    generator: torch.Generator | None, seed: int | None, device: torch.device
) -> torch.Generator | None:
    if seed is None:
        return generator
    if generator is not None:
        raise NmcompileError("poisson: pass either generator or seed, not both")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise NmcompileError(f"poisson: seed must be an integer, got {seed!r}")
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g


def poisson(
    x: Tensor,
    num_steps: int,
    rate: float = 1.0,
    generator: torch.Generator | None = None,
    seed: int | None = None,
) -> Tensor:
    """Rate (Bernoulli) coding: `(num_steps, batch, *features)` spikes.

    Each step, independently, feature i spikes with probability p_i = rate * x_i:

        s[t, i] = 1.0 if u[t, i] < rate * x[i] else 0.0,   u[t, i] ~ Uniform[0, 1)

    so the expected spike count over T steps is T * rate * x_i. `x` is `(batch, *features)` in
    [0, 1], and rate * x must not exceed 1. Reproducible from `generator` (on x's device) or
    `seed`; with neither, torch's global generator is used.
    """
    x = _as_float(x, "poisson", 1, "(batch, *features)")
    _check_steps(num_steps, "poisson")
    rate = _check_number(rate, "poisson", "rate", 0.0, strict=False)
    _check_unit_interval(x, "poisson")
    p = rate * x
    if bool((p > 1).any()):
        raise NmcompileError(
            f"poisson: rate * x must be <= 1 (a probability per step), got max "
            f"{p.max().item():g}: lower rate to at most {1.0 / x.max().item():g}"
        )
    g = _generator(generator, seed, x.device)
    u = torch.rand((num_steps, *x.shape), generator=g, dtype=x.dtype, device=x.device)
    return (u < p).to(x.dtype)


def _spike_at(times: Tensor, fires: Tensor, num_steps: int, dtype: torch.dtype) -> Tensor:
    """One spike per feature at step `times` where `fires`, none elsewhere."""
    out = torch.zeros((num_steps, *times.shape), dtype=dtype, device=times.device)
    idx = times.to(torch.long).unsqueeze(0)
    return out.scatter_(0, idx, fires.to(dtype).unsqueeze(0))


def latency(
    x: Tensor,
    num_steps: int,
    mode: str = "linear",
    tau: float = 1.0,
    threshold: float = 0.01,
) -> Tensor:
    """Latency coding: at most one spike per feature, earlier for larger x.

    `x` is `(batch, *features)` in [0, 1]; the result is `(num_steps, batch, *features)`.
    A feature with x <= threshold never spikes (in both modes). Otherwise it spikes once, at

        linear:  t = round((1 - x) * (num_steps - 1))
        log:     t = min(round(tau * ln(x / (x - threshold))), num_steps - 1)

    The log mode is the charging time of an RC circuit with time constant tau driven by a
    constant current x up to the threshold (snnTorch's `spikegen.latency`); spikes later than
    the window are clipped to its last step. `round` is `torch.round` (half to even).
    `tau` is used by the log mode only; threshold must lie in [0, 1) (in (0, 1) for log).
    """
    x = _as_float(x, "latency", 1, "(batch, *features)")
    _check_steps(num_steps, "latency")
    _check_unit_interval(x, "latency")
    if mode not in ("linear", "log"):
        raise NmcompileError(f"latency: mode must be 'linear' or 'log', got {mode!r}")
    threshold = _check_number(threshold, "latency", "threshold", 0.0, strict=(mode == "log"))
    if threshold >= 1:
        raise NmcompileError(f"latency: threshold must be < 1, got {threshold!r}")
    fires = x > threshold
    if mode == "linear":
        times = torch.round((1.0 - x) * (num_steps - 1))
    else:
        tau = _check_number(tau, "latency", "tau", 0.0, strict=True)
        safe = torch.where(fires, x, torch.ones_like(x))  # keeps the log finite where unused
        times = torch.round(tau * torch.log(safe / (safe - threshold)))
        times = times.clamp(max=num_steps - 1)
    return _spike_at(times, fires, num_steps, x.dtype)


def delta(x: Tensor, threshold: float = 0.1, off_spikes: bool = True) -> Tensor:
    """Delta (level-crossing) modulation of a time series `x` of shape `(T, batch, *features)`.

    Per feature, a reference level r starts at r_0 = x[0] (so step 0 never spikes). At each
    step t >= 1, with d = x[t] - r:

        on[t]  = 1 if d >  threshold,     off[t] = 1 if d < -threshold,

    and after an event the reference moves to the current value, r = x[t] (otherwise r is
    kept, so slow drifts add up until they cross the threshold). With `off_spikes` the result
    is `(T, batch, 2, *features)`, channel 0 the on and channel 1 the off events; without, only
    the on events, `(T, batch, *features)`.
    """
    x = _as_float(x, "delta", 2, "(T, batch, *features)")
    threshold = _check_number(threshold, "delta", "threshold", 0.0, strict=False)
    if not bool(torch.isfinite(x).all()):
        raise NmcompileError("delta: x contains NaN or infinite values; clean the signal first")
    on = torch.zeros_like(x)
    off = torch.zeros_like(x)
    ref = x[0]
    for t in range(1, x.shape[0]):
        d = x[t] - ref
        up = d > threshold
        down = d < -threshold
        on[t] = up.to(x.dtype)
        off[t] = down.to(x.dtype)
        ref = torch.where(up | down, x[t], ref)
    if off_spikes:
        return torch.stack((on, off), dim=2)
    return on
