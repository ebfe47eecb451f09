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

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .errors import GraphError
from .fidelity import accuracy as _accuracy
from .fidelity import fidelity
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
    #: `neuron` in the layer's shape, e.g. (channel, y, x) of a convolution's output
    index: tuple[int, ...] = ()

    def __str__(self) -> str:
        where = f"neuron {self.neuron}"
        if len(self.index) == 3:
            where += " (channel, y, x) = ({}, {}, {})".format(*self.index)
        elif len(self.index) > 1:
            where += f" (index {self.index})"
        return (f"{self.backend} differs from {self.reference} first at step {self.step}, "
                f"layer {self.layer!r}, sample {self.sample}, {where}: "
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
    #: what `nmcompile.plots.verify_figure` draws (not in the JSON), when a float graph was
    #: compared with a quantised one: "rasters" {"float" and the backend: {layer: (T, n)}}
    #: of the first sample, "layers" the per-layer `fidelity` of every sample, "samples"
    figure_data: dict[str, Any] = field(default_factory=dict, repr=False)

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
        del out["reasons"], out["figure_data"]
        out["mismatches"] = [asdict(m) | {"message": str(m)} for m in self.mismatches]
        out["verdict"] = self.verdict
        return out


def _first_difference(a: np.ndarray, b: np.ndarray) -> tuple[int, int, int] | None:
    diff = np.argwhere(a.reshape(a.shape[0], a.shape[1], -1) != b.reshape(a.shape[0],
                                                                          a.shape[1], -1))
    return None if len(diff) == 0 else tuple(int(v) for v in diff[0])


def compare(reference: RunResult, other: RunResult, ref_name: str, name: str,
            shapes: Mapping[str, tuple[int, ...]] | None = None) -> Mismatch | None:
    """The earliest (step, layer, neuron) where two results differ; outputs and layers. With
    the graph's `shapes` (`Graph.validate()`), the neuron is also given in its layer's shape,
    e.g. (channel, y, x): results hold every layer flat, (T, batch, n)."""
    candidates = []
    # layers in schedule order first, so that a tie on the step names the upstream layer
    arrays = [(k, k, reference.spikes[k], other.spikes.get(k)) for k in reference.spikes
              if k in other.spikes]
    arrays += [(f"output {k}", k, reference.outputs[k], other.outputs.get(k))
               for k in reference.outputs]
    for layer, node, a, b in arrays:
        if b is None or a.shape != b.shape:
            return Mismatch(name, ref_name, layer, 0, 0, 0, np.nan, np.nan)
        where = _first_difference(a, b)
        if where is not None:
            t, s, n = where
            shape = (shapes or {}).get(node, a.shape[2:])
            index = tuple(int(i) for i in np.unravel_index(n, shape)) \
                if math.prod(shape) == math.prod(a.shape[2:]) else (n,)
            candidates.append(Mismatch(name, ref_name, layer, t, s, n,
                                       float(a.reshape(a.shape[0], a.shape[1], -1)[t, s, n]),
                                       float(b.reshape(b.shape[0], b.shape[1], -1)[t, s, n]),
                                       index))
    return min(candidates, key=lambda m: m.step) if candidates else None


#: `verify`'s fidelity bounds when a float reference is given and none are named.
MIN_AGREEMENT, MAX_ACCURACY_DROP = 0.95, 0.02


def usage_problem(quantized: bool, backends: Sequence[str], has_labels: bool,
                  min_agreement: float | None = None,
                  max_accuracy_drop: float | None = None,
                  has_reference: bool = False) -> str | None:
    """Why a verify request cannot prove anything (exit 2), or None. A quantised model on one
    backend compares it with itself, unless a float reference is given; the fidelity bounds
    need a float model or reference (and labels)."""
    if quantized and len(set(backends)) < 2 and not has_reference:
        return (f"a quantised model on {', '.join(backends) or 'no backend'} alone is compared "
                "with itself: name two or more backends, e.g. --backends emulator,lava, or "
                "compare it with the float model it was made from: --reference FLOAT.nmc")
    if quantized and not has_reference and (min_agreement is not None
                                            or max_accuracy_drop is not None):
        return ("--min-agreement and --max-accuracy-drop compare a float model with its "
                "quantised form: give the float MODEL, or --reference FLOAT.nmc")
    if max_accuracy_drop is not None and not has_labels:
        return ("--max-accuracy-drop needs the labels of the model's data set: use --samples "
                "instead of --input, on a model whose metadata names its data set")
    return None


def check_source(qgraph: Graph, reference: Graph) -> None:
    """Refuse a float `reference` that is not the graph `qgraph` was quantised from (the
    SHA-256 the quantiser recorded in `metadata.quantization.source`)."""
    from .ir.serialize import digest

    source = qgraph.metadata.get("quantization", {}).get("source", {})
    if "sha256" not in source:
        raise GraphError("the quantised model records no float source (it was quantised by an "
                         "older nmcompile): quantise the float model again, then verify "
                         "--reference against it")
    if is_quantized(reference):
        raise GraphError("--reference must be the float model the quantised one was made from; "
                         "this one is quantised")
    got = digest(reference)
    if got != source["sha256"]:
        name = f" ({source['file']})" if source.get("file") else ""
        raise GraphError(f"the reference is not the float model this one was quantised "
                         f"from{name}: its SHA-256 is {got[:12]}..., the quantised model "
                         f"records {source['sha256'][:12]}...")


def verify(graph: Graph, spikes: np.ndarray | Mapping[str, np.ndarray],
           backends: Sequence[str] = ("emulator",), *, profile: str = "loihi2",
           labels: np.ndarray | None = None,
           backend_options: Mapping[str, Mapping[str, Any]] | None = None,
           allow_unsafe: bool = False, min_agreement: float | None = None,
           max_accuracy_drop: float | None = None, reference: Graph | None = None,
           **options: Any) -> VerifyReport:
    """Run `spikes` through every backend in `backends` and compare them exactly.

    `options` go to every backend's `run`; `backend_options` to one backend each, e.g.
    `{"verilog": {"simulator": "verilator"}}`. The verdict fails on a mismatch, on unsafe
    updates (unless `allow_unsafe`), and, for a float graph, on an agreement below
    `min_agreement` (a fraction of output bins) or an accuracy drop above `max_accuracy_drop`
    (a fraction: 0.02 is 2 points; needs `labels`).

    `reference`: the float graph a quantised `graph` was made from (checked by the SHA-256
    the quantiser recorded): the first backend's run is compared with it layer by layer
    (`fidelity`), with the bounds defaulting to `MIN_AGREEMENT` of the worst layer's spike
    bins and `MAX_ACCURACY_DROP`."""
    if reference is not None:
        if not is_quantized(graph):
            raise GraphError("--reference compares a quantised model with its float source; "
                             "this model is float (it is its own reference)")
        check_source(graph, reference)
        return _verify_reference(graph, reference, spikes, backends, labels=labels,
                                 backend_options=backend_options, allow_unsafe=allow_unsafe,
                                 min_agreement=MIN_AGREEMENT if min_agreement is None
                                 else min_agreement,
                                 max_accuracy_drop=MAX_ACCURACY_DROP if max_accuracy_drop is None
                                 else max_accuracy_drop, **options)
    float_result = None
    qgraph = graph
    if not is_quantized(graph):
        from .quantization import quantize

        # recorded: the figure shows the float layers beside the quantised ones
        float_result = run(graph, spikes, backend="float", record=True)
        qgraph = quantize(graph, profile=profile)
    from .progress import bar

    per = backend_options or {}
    results = {}
    steps = bar(backends, "verify", unit="backend")
    for name in steps:
        if hasattr(steps, "set_postfix_str"):  # a tqdm bar: say which backend is running
            steps.set_postfix_str(name)
        results[name] = run(qgraph, spikes, backend=name, record=True, **options,
                            **per.get(name, {}))
    reference = backends[0]
    shapes = qgraph.validate()
    mismatches = [m for name in backends[1:]
                  if (m := compare(results[reference], results[name], reference, name,
                                   shapes))]
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
        report.figure_data = _figure_data(float_result, results[reference], reference)
    report.reasons = [(DISAGREE, f"the targets disagree: {m}") for m in mismatches]
    _check_safety(report, results, allow_unsafe)
    report.reasons += _fidelity_reasons(report, min_agreement, max_accuracy_drop)
    return report


def _verify_reference(qgraph: Graph, reference: Graph, spikes, backends: Sequence[str], *,
                      labels, backend_options, allow_unsafe: bool, min_agreement: float,
                      max_accuracy_drop: float, **options: Any) -> VerifyReport:
    report = verify(qgraph, spikes, backends, labels=labels, backend_options=backend_options,
                    allow_unsafe=allow_unsafe, **options) if len(set(backends)) > 1 else None
    per = backend_options or {}
    ref = backends[0]
    q = run(qgraph, spikes, backend=ref, record=True, **options, **per.get(ref, {}))
    float_result = run(reference, spikes, backend="float", record=True)
    fid = fidelity(float_result, q, labels)
    if report is None:
        report = VerifyReport(equal=True, backends={ref: {
            "spikes": sum(q.counters.get("spikes", {}).values()), "counters": q.counters}},
            reference=ref)
        _check_safety(report, {ref: q}, allow_unsafe)
    report.fidelity = fid
    report.figure_data = _figure_data(float_result, q, ref, fid["layers"])
    report.float_agreement = fid["agreement"]
    report.accuracy = fid.get("accuracy", {})
    report.reasons += _fidelity_reasons(report, min_agreement,
                                        max_accuracy_drop if labels is not None else None)
    return report


def _figure_data(float_result: RunResult, quantized: RunResult, backend: str,
                 layers: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """`VerifyReport.figure_data`: the first sample of both runs, every layer flat (T, n),
    and the per-layer fidelity over every sample (`layers`, computed when not given)."""
    def first(result: RunResult) -> dict[str, np.ndarray]:
        return {k: np.asarray(v)[:, 0].reshape(v.shape[0], -1) for k, v in result.spikes.items()}

    out = next(iter(quantized.outputs.values()), None)
    return {"rasters": {"float": first(float_result), backend: first(quantized)},
            "layers": dict(layers if layers is not None
                           else fidelity(float_result, quantized)["layers"]),
            "samples": None if out is None else int(out.shape[1])}


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
        worst = (report.fidelity or {}).get("worst_layer")
        what = f"of the spike bins of layer {worst!r}" if worst else "of output bins"
        reasons.append((LOW_FIDELITY, f"float vs quantised agreement {shown} {what} is "
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
