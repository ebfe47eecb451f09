"""Spike-for-spike comparison of targets on the same input.

`verify` runs one quantised graph on several backends and compares every output and every
layer's spikes exactly; a mismatch is reported by its first step, layer and neuron. Given a
float graph it quantises it first, and also reports how far the quantised network is from the
float one (the fraction of equal output bins, and accuracies when the model names its data).

Equal spikes are a proof only inside the fixed-point safe range (docs/fixed_point.md, section
8): the report also carries every counting backend's unsafe updates per layer, and a verdict
that fails on them unless `allow_unsafe`. The verdict's reasons carry the CLI's exit codes
(`EXIT_CODES`): when several apply, the lowest is the command's status.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .ir import Graph
from .result import RunResult
from .runtime import is_quantized, run


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


#: `nmcompile verify`'s exit status: the same table is in `verify --help` and docs/backends.md.
EXIT_CODES = {
    0: "verified",
    1: "error (unreadable input, unsupported graph, missing tool)",
    2: "usage (also: a single backend on a quantised model; bounds that cannot be checked)",
    3: "the targets disagree",
    4: "the reference counted unsafe updates (or none counts them), no --allow-unsafe",
    5: "float-vs-quantised fidelity below --min-agreement / --max-accuracy-drop",
}
DISAGREE, UNSAFE, LOW_FIDELITY = 3, 4, 5


@dataclass
class VerifyReport:
    """`equal`: spikes equal across targets. `safe`: no counting backend saw an unsafe update
    (None when none of them counts). `unsafe_updates`: {backend: {layer: n}} for the backends
    that count them (emulator, verilog; Lava does not). `fidelity`: float vs quantised, None
    for a quantised model. `reasons`: (exit code, message) of each failed check."""

    equal: bool
    backends: dict[str, dict[str, Any]]
    reference: str
    mismatches: list[Mismatch] = field(default_factory=list)
    float_agreement: float | None = None
    accuracy: dict[str, float] = field(default_factory=dict)
    safe: bool | None = None
    unsafe_updates: dict[str, dict[str, int]] = field(default_factory=dict)
    fidelity: dict[str, Any] | None = None
    reasons: list[tuple[int, str]] = field(default_factory=list)

    @property
    def verdict(self) -> str | list[str]:
        """"pass", or every reason the run is not verified, lowest exit code first."""
        return "pass" if not self.reasons else [m for _, m in sorted(self.reasons)]

    @property
    def exit_code(self) -> int:
        """0 when verified, else the lowest code of the reasons (see `EXIT_CODES`)."""
        return min((c for c, _ in self.reasons), default=0)

    def not_counting(self) -> list[str]:
        """Backends that ran but count no unsafe updates (Lava)."""
        return [b for b in self.backends if b not in self.unsafe_updates]

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        del out["reasons"]
        out["mismatches"] = [asdict(m) | {"message": str(m)} for m in self.mismatches]
        out["verdict"] = self.verdict
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


def usage_problem(quantized: bool, backends: Sequence[str], has_labels: bool,
                  min_agreement: float | None = None,
                  max_accuracy_drop: float | None = None) -> str | None:
    """Why a verify request cannot prove anything (exit 2), or None. A quantised model on one
    backend compares it with itself; the fidelity bounds need a float model (and labels)."""
    if quantized and len(set(backends)) < 2:
        return (f"a quantised model on {', '.join(backends) or 'no backend'} alone is compared "
                "with itself: name two or more backends, e.g. --backends emulator,lava")
    if quantized and (min_agreement is not None or max_accuracy_drop is not None):
        return ("--min-agreement and --max-accuracy-drop compare a float model with its "
                "quantised form: give the float MODEL")
    if max_accuracy_drop is not None and not has_labels:
        return ("--max-accuracy-drop needs the labels of the model's data set: use --samples "
                "instead of --input, on a model whose metadata names its data set")
    return None


def verify(graph: Graph, spikes: np.ndarray | Mapping[str, np.ndarray],
           backends: Sequence[str] = ("emulator",), *, profile: str = "loihi2",
           labels: np.ndarray | None = None,
           backend_options: Mapping[str, Mapping[str, Any]] | None = None,
           allow_unsafe: bool = False, min_agreement: float | None = None,
           max_accuracy_drop: float | None = None, **options: Any) -> VerifyReport:
    """Run `spikes` through every backend in `backends` and compare them exactly.

    `options` go to every backend's `run`; `backend_options` to one backend each, e.g.
    `{"verilog": {"simulator": "verilator"}}`. The verdict fails on a mismatch, on unsafe
    updates (unless `allow_unsafe`), and, for a float graph, on an agreement below
    `min_agreement` (a fraction of output bins) or an accuracy drop above `max_accuracy_drop`
    (a fraction: 0.02 is 2 points; needs `labels`)."""
    float_result = None
    qgraph = graph
    if not is_quantized(graph):
        from .quantization import quantize

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
    if float_result is not None:
        report.fidelity = {"agreement": report.float_agreement, "accuracy": report.accuracy}
    report.reasons = [(DISAGREE, f"the targets disagree: {m}") for m in mismatches]
    _check_safety(report, results, allow_unsafe)
    report.reasons += _fidelity_reasons(report, min_agreement, max_accuracy_drop)
    return report


def _check_safety(report: VerifyReport, results: Mapping[str, RunResult],
                  allow_unsafe: bool) -> None:
    """Fill `safe` and `unsafe_updates` from the backends that count them; an unsafe update
    anywhere makes equal spikes prove nothing (the overflow is outside the contract)."""
    report.unsafe_updates = {name: {k: int(n) for k, n in r.counters["unsafe_updates"].items()}
                             for name, r in results.items() if "unsafe_updates" in r.counters}
    if not report.unsafe_updates:
        report.safe = None
        if not allow_unsafe:
            report.reasons.append((UNSAFE, f"no backend of {', '.join(results)} counts unsafe "
                                   "updates, so the safe range is unchecked: add emulator to "
                                   "--backends, or pass --allow-unsafe"))
        return
    report.safe = not any(sum(c.values()) for c in report.unsafe_updates.values())
    if report.safe or allow_unsafe:
        return
    name, counts = next((b, c) for b, c in report.unsafe_updates.items() if sum(c.values()))
    updates = results[name].counters.get("neuron_updates", {})
    layers = ", ".join(f"{k!r} {n:,} of {updates.get(k, 0):,}" for k, n in counts.items() if n)
    report.reasons.append((UNSAFE, f"{name} counted {sum(counts.values()):,} unsafe updates "
                           f"(u wrapped or v saturated; layer {layers} updates): equal spikes "
                           "outside the fixed-point safe range prove nothing (docs/"
                           "fixed_point.md, section 8); lower the weights (quantize with "
                           "--calibrate) or pass --allow-unsafe"))


def _fidelity_reasons(report: VerifyReport, min_agreement: float | None,
                      max_accuracy_drop: float | None) -> list[tuple[int, str]]:
    """Float-vs-quantised checks: agreement of output bins, and the drop in accuracy."""
    reasons = []
    agreement = report.float_agreement
    if min_agreement is not None and (agreement is None or agreement < min_agreement):
        shown = "not measurable" if agreement is None else f"{agreement:.2%}"
        reasons.append((LOW_FIDELITY, f"float vs quantised agreement {shown} of output bins is "
                        f"below --min-agreement {min_agreement:g}"))
    acc = report.accuracy
    if max_accuracy_drop is not None and {"float", "quantized"} <= acc.keys():
        drop = acc["float"] - acc["quantized"]
        if drop > max_accuracy_drop:
            reasons.append((LOW_FIDELITY, f"accuracy drops {100 * drop:.2f} points (float "
                            f"{acc['float']:.2%}, "
                            f"quantised {acc['quantized']:.2%}), more than --max-accuracy-drop "
                            f"{max_accuracy_drop:g}"))
    return reasons
