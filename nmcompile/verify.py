"""Spike-for-spike comparison of targets on the same input.

`verify` runs one quantised graph on several backends and compares every output and every
layer's spikes exactly; a mismatch is reported by its first step, layer and neuron. Given a
float graph it quantises it first, and also reports how far the quantised network is from the
float one (the fraction of equal output bins, and accuracies when the model names its data).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .api import is_quantized, run
from .ir import Graph
from .result import RunResult


@dataclass
class Mismatch:
    backend: str
    reference: str
    layer: str
    step: int
    sample: int
    neuron: int
    expected: float
    got: float

    def __str__(self) -> str:
        return (f"{self.backend} differs from {self.reference} first at step {self.step}, "
                f"layer {self.layer!r}, sample {self.sample}, neuron {self.neuron}: "
                f"expected {self.expected:g}, got {self.got:g}")


@dataclass
class VerifyReport:
    equal: bool
    backends: dict[str, dict[str, Any]]
    reference: str
    mismatches: list[Mismatch] = field(default_factory=list)
    float_agreement: float | None = None
    accuracy: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["mismatches"] = [asdict(m) | {"message": str(m)} for m in self.mismatches]
        return out


def _first_difference(a: np.ndarray, b: np.ndarray) -> tuple[int, int, int] | None:
    diff = np.argwhere(a.reshape(a.shape[0], a.shape[1], -1) != b.reshape(a.shape[0],
                                                                          a.shape[1], -1))
    return None if len(diff) == 0 else tuple(int(v) for v in diff[0])


def compare(reference: RunResult, other: RunResult, ref_name: str, name: str) -> Mismatch | None:
    """The earliest (step, layer, neuron) where two results differ; outputs and layers."""
    candidates = []
    # layers in schedule order first, so that a tie on the step names the upstream layer
    arrays = [(k, reference.spikes[k], other.spikes.get(k)) for k in reference.spikes
              if k in other.spikes]
    arrays += [(f"output {k}", reference.outputs[k], other.outputs.get(k))
               for k in reference.outputs]
    for layer, a, b in arrays:
        if b is None or a.shape != b.shape:
            return Mismatch(name, ref_name, layer, 0, 0, 0, np.nan, np.nan)
        where = _first_difference(a, b)
        if where is not None:
            t, s, n = where
            candidates.append(Mismatch(name, ref_name, layer, t, s, n,
                                       float(a.reshape(a.shape[0], a.shape[1], -1)[t, s, n]),
                                       float(b.reshape(b.shape[0], b.shape[1], -1)[t, s, n])))
    return min(candidates, key=lambda m: m.step) if candidates else None


def _accuracy(result: RunResult, labels: np.ndarray) -> float:
    out = result.output()
    scores = out.sum(axis=0) if out.dtype == np.uint8 else out.max(axis=0)
    return float((scores.argmax(axis=1) == labels).mean())


def verify(graph: Graph, spikes: np.ndarray | Mapping[str, np.ndarray],
           backends: Sequence[str] = ("emulator",), *, profile: str = "loihi2",
           labels: np.ndarray | None = None,
           backend_options: Mapping[str, Mapping[str, Any]] | None = None,
           **options: Any) -> VerifyReport:
    """Run `spikes` through every backend in `backends` and compare them exactly.

    `options` go to every backend's `run`; `backend_options` to one backend each, e.g.
    `{"verilog": {"simulator": "verilator"}}`."""
    float_result = None
    qgraph = graph
    if not is_quantized(graph):
        from .quantize import quantize

        float_result = run(graph, spikes, backend="float")
        qgraph = quantize(graph, profile=profile)
    per = backend_options or {}
    results = {name: run(qgraph, spikes, backend=name, record=True, **options,
                         **per.get(name, {}))
               for name in backends}
    reference = backends[0]
    mismatches = [m for name in backends[1:]
                  if (m := compare(results[reference], results[name], reference, name))]
    summary = {name: {"spikes": sum(r.counters.get("spikes", {}).values()),
                      "counters": r.counters} for name, r in results.items()}
    report = VerifyReport(equal=not mismatches, backends=summary, reference=reference,
                          mismatches=mismatches)
    if float_result is not None:
        q = results[reference]
        bins = [np.mean(float_result.outputs[k] == q.outputs[k]) for k in q.outputs
                if float_result.outputs[k].dtype == q.outputs[k].dtype]
        report.float_agreement = float(np.mean(bins)) if bins else None
        if labels is not None:
            report.accuracy["float"] = _accuracy(float_result, labels)
    if labels is not None:
        report.accuracy["quantized"] = _accuracy(results[reference], labels)
    return report
