"""Float vs quantised on the same input, per layer: what `verify --reference`, the quantiser's
report and the bit-width sweep measure. Only numpy and results: the quantiser imports it
without importing the verifier (nor the verifier the quantiser's callers)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .result import RunResult


def accuracy(result: RunResult, labels: np.ndarray) -> float:
    """Fraction of samples whose output with the most spikes (or the highest value, for an
    LI readout) is the label."""
    out = result.output()
    scores = out.sum(axis=0) if out.dtype == np.uint8 else out.max(axis=0)
    return float((scores.argmax(axis=1) == labels).mean())


def fidelity(float_result: RunResult, quantized: RunResult,
             labels: np.ndarray | None = None) -> dict[str, Any]:
    """How far a quantised run is from its float graph's on the same input, per layer: the
    fraction of equal (step, sample, neuron) spike bins, both firing rates (spikes per neuron
    and step) and their difference, and the first step at which any spike differs. Also the
    output bins' agreement, the worst layer's agreement (`agreement`, what verify bounds) and,
    with `labels`, both accuracies."""
    layers = {}
    for name, f in float_result.spikes.items():
        q = quantized.spikes.get(name)
        if q is None or q.shape != f.shape:
            continue
        a = np.asarray(f).reshape(f.shape[0], f.shape[1], -1) != 0
        b = np.asarray(q).reshape(a.shape) != 0
        equal = a == b
        steps = np.flatnonzero(~equal.all(axis=(1, 2)))
        layers[name] = {"agreement": float(equal.mean()), "rate_float": float(a.mean()),
                        "rate_quantized": float(b.mean()),
                        "rate_error": float(b.mean() - a.mean()),
                        "first_divergent_step": int(steps[0]) if steps.size else None}
    bins = [np.mean(float_result.outputs[k] == quantized.outputs[k]) for k in quantized.outputs
            if k in float_result.outputs
            and float_result.outputs[k].dtype == quantized.outputs[k].dtype]
    out: dict[str, Any] = {"layers": layers,
                           "output_agreement": float(np.mean(bins)) if bins else None}
    worst = min(layers, key=lambda k: layers[k]["agreement"]) if layers else None
    out["worst_layer"] = worst
    out["agreement"] = layers[worst]["agreement"] if worst else out["output_agreement"]
    if labels is not None:
        out["accuracy"] = {"float": accuracy(float_result, labels),
                           "quantized": accuracy(quantized, labels)}
    return out
