"""Classification losses on time-major outputs `(T, batch, n_classes)`.

`targets` is always a `(batch,)` integer tensor of class indices in [0, n_classes). Every loss
is the mean over the batch of a cross-entropy,

    CE(z, y) = -z_y + log(sum_j exp(z_j)),

on logits z that each loss derives from the time series in its own way (spike counts, a reduced
membrane potential, negative first-spike times).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from nmcompile.errors import NmcompileError

__all__ = ["accuracy_count", "ce_count", "ce_membrane", "first_spike_time", "predict_count", "ttfs"]

_LAYOUT = "(T, batch, n_classes)"
_INDEX_DTYPES = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)


def _check_outputs(x: Tensor, fn: str, name: str) -> None:
    if not isinstance(x, Tensor):
        raise NmcompileError(f"{fn}: {name} must be a torch.Tensor {_LAYOUT}, got {type(x)}")
    if x.dim() != 3 or x.shape[0] < 1 or x.shape[2] < 1:
        raise NmcompileError(
            f"{fn}: {name} must have shape {_LAYOUT} with T >= 1 and n_classes >= 1, got "
            f"{tuple(x.shape)}; flatten the features of the output layer first"
        )
    if not x.is_floating_point():
        raise NmcompileError(f"{fn}: {name} must be a floating-point tensor, got {x.dtype}")


def _check_targets(targets: Tensor, x: Tensor, fn: str) -> None:
    batch, n = x.shape[1], x.shape[2]
    if not isinstance(targets, Tensor) or targets.dtype not in _INDEX_DTYPES:
        raise NmcompileError(f"{fn}: targets must be an integer tensor of class indices")
    if tuple(targets.shape) != (batch,):
        raise NmcompileError(
            f"{fn}: targets must have shape (batch,) = ({batch},), got {tuple(targets.shape)}"
        )
    if batch and not bool(((targets >= 0) & (targets < n)).all()):
        raise NmcompileError(
            f"{fn}: targets must lie in [0, {n}) (n_classes = {n}), got values in "
            f"[{targets.min().item()}, {targets.max().item()}]"
        )


def _check_positive(value: float, fn: str, name: str) -> float:
    ok = not isinstance(value, bool) and isinstance(value, int | float)
    if not (ok and math.isfinite(value) and value > 0):
        raise NmcompileError(f"{fn}: {name} must be a positive finite number, got {value!r}")
    return float(value)


def ce_count(spikes: Tensor, targets: Tensor) -> Tensor:
    """Cross-entropy on spike counts: z_j = sum_t s[t, b, j], loss = mean_b CE(z_b, y_b)."""
    _check_outputs(spikes, "ce_count", "spikes")
    _check_targets(targets, spikes, "ce_count")
    return F.cross_entropy(spikes.sum(0), targets.long())


def ce_membrane(v: Tensor, targets: Tensor, reduce: str = "max") -> Tensor:
    """Cross-entropy on the membrane potential v of a non-spiking readout, reduced over time.

        max:  z_j = max_t v[t, b, j]     mean:  z_j = (1/T) sum_t v[t, b, j]
        last: z_j = v[T-1, b, j]

    loss = mean_b CE(z_b, y_b).
    """
    _check_outputs(v, "ce_membrane", "v")
    _check_targets(targets, v, "ce_membrane")
    if reduce == "max":
        z = v.max(0).values
    elif reduce == "mean":
        z = v.mean(0)
    elif reduce == "last":
        z = v[-1]
    else:
        raise NmcompileError(f"ce_membrane: reduce must be 'max', 'mean' or 'last', got {reduce!r}")
    return F.cross_entropy(z, targets.long())


def first_spike_time(spikes: Tensor) -> Tensor:
    """Differentiable first-spike time of each neuron, `(T, batch, n)` -> `(batch, n)`.

        t_first = sum_{t=0}^{T-1} prod_{k=0}^{t} (1 - s[k])

    The product is the "no spike yet by step t" indicator: 1 before the first spike and 0 from
    it on, so for 0/1 spikes t_first is exactly the index of the first spike, and T for a
    neuron that never fires. Gradients flow into every s[k] up to the first spike (and into
    all of them for a silent neuron, pushing it to fire).
    """
    return torch.cumprod(1.0 - spikes, dim=0).sum(0)


def ttfs(spikes: Tensor, targets: Tensor, temperature: float = 1.0) -> Tensor:
    """Time-to-first-spike loss: cross-entropy on negative first-spike times.

        z_j = -t_first_j / temperature,    loss = mean_b CE(z_b, y_b)

    with t_first from `first_spike_time` (T for a neuron that never fires). The loss is lower
    the earlier the target neuron fires relative to the others; `temperature` (in steps) sets
    how sharply one step of difference counts.
    """
    _check_outputs(spikes, "ttfs", "spikes")
    _check_targets(targets, spikes, "ttfs")
    temperature = _check_positive(temperature, "ttfs", "temperature")
    return F.cross_entropy(-first_spike_time(spikes) / temperature, targets.long())


def predict_count(spikes: Tensor) -> Tensor:
    """Predicted class per sample: argmax_j sum_t s[t, b, j], ties to the lowest index.

    Returns a `(batch,)` int64 tensor.
    """
    _check_outputs(spikes, "predict_count", "spikes")
    counts = spikes.detach().sum(0)
    n = counts.shape[-1]
    index = torch.arange(n, device=counts.device).expand_as(counts)
    is_max = counts == counts.max(-1, keepdim=True).values
    return torch.where(is_max, index, torch.full_like(index, n)).min(-1).values


def accuracy_count(spikes: Tensor, targets: Tensor) -> float:
    """Fraction of samples whose `predict_count` equals the target (a Python float)."""
    _check_outputs(spikes, "accuracy_count", "spikes")
    _check_targets(targets, spikes, "accuracy_count")
    if spikes.shape[1] == 0:
        raise NmcompileError("accuracy_count: the batch is empty; pass at least one sample")
    return (predict_count(spikes) == targets.long()).double().mean().item()
