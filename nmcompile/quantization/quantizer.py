"""`quantize`: float graph -> quantised graph (integers as the hardware stores them).

Per neuron layer, one scale S maps float state to integer state (v_int = S * v). Every
projection into the layer gets the weight exponent that uses its mantissa range best:
`W_int * 2**weight_exp * 64 = S * W`; the threshold is `vth = S * threshold / 64`, the bias
`bias_mant << bias_exp = S * bias`, the decays `du = 4095 - 4096 * alpha`,
`dv = 4096 * (1 - beta)`. S is the largest scale for which the layer's peak state stays within
`headroom` of the 24-bit range, vth fits 17 bits, the bias fits, and every weight exponent
stays in the profile's range, rounded down to a power of two. Peaks come from calibration
data (a float run) when given, else from a worst-case bound (every input spiking at once).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..errors import LimitError, NmcompileError, UnsupportedError
from ..ir import ALIF, IF, LI, LIF, Conv2d, Graph, Input, Output, Sparse
from ..ir.neurons import Neuron
from ..ir.quantized import (
    ACT_SHIFT,
    QALIF,
    QLI,
    QLIF,
    VTH_MAX,
    Owned,
    QConv2d,
    QDense,
    QSparse,
    blocks,
    narrowest,
)
from .profiles import Profile, get_profile

UNIT = 1 << ACT_SHIFT  # synaptic input a counts in units of 64 of u and v


@dataclass
class ProjectionReport:
    name: str
    source: str
    kind: str
    weight_exp: int
    sign_mode: str
    clipped: float          # fraction of weights clipped to the mantissa range
    worst_error: float      # largest |W_q - W| / max |W|
    density: float
    dropped: int = 0        # synapses of the float projection the quantised one does not store
    bits: int = 8           # mantissa width (sign included) the weights were rounded to


@dataclass
class LayerReport:
    name: str
    kind: str
    scale: float            # integer units of v per float unit
    peak: float             # estimated peak |state| (float units)
    peak_fraction: float    # peak * scale / 2^23
    vth: Any
    du: Any
    dv: Any
    bias_exp: int
    lossy: list[str] = field(default_factory=list)
    projections: list[ProjectionReport] = field(default_factory=list)
    calibrated: bool = False
    #: Measured on the calibration data (None without): the fraction of equal (step, sample,
    #: neuron) spike bins of the float and the quantised (emulator) run, and the quantised
    #: minus the float firing rate (spikes per neuron and step).
    agreement: float | None = None
    rate_error: float | None = None

    @property
    def warnings(self) -> list[str]:
        out = list(self.lossy)
        if self.peak_fraction > 1:
            out.append(f"estimated peak state is {self.peak_fraction:.2f}x the safe range")
        return out


@dataclass
class QuantizationReport:
    profile: str
    layers: list[LayerReport]

    def table(self) -> str:
        lines = [f"quantised for profile {self.profile!r}"]
        head = ("layer", "from", "kind", "bits", "w_exp", "sign", "clipped", "worst err",
                "scale", "vth", "peak/safe", "agree", "rate err")
        rows = [head]
        for layer in self.layers:
            vth = layer.vth if np.ndim(layer.vth) == 0 else \
                f"[{np.min(layer.vth)}..{np.max(layer.vth)}]"
            measured = ("-", "-") if layer.agreement is None else (
                f"{layer.agreement:.2%}", f"{layer.rate_error:+.4f}")
            for k, p in enumerate(layer.projections):
                first = k == 0
                rows.append((layer.name if first else "", p.source, p.kind, str(p.bits),
                             str(p.weight_exp), p.sign_mode, f"{p.clipped:.1%}",
                             f"{p.worst_error:.2%}", f"{layer.scale:.4g}" if first else "",
                             str(vth) if first else "",
                             f"{layer.peak_fraction:.2f}" + ("" if layer.calibrated else "*")
                             if first else "", *(measured if first else ("", ""))))
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                  for r in rows]
        if not all(layer.calibrated for layer in self.layers):
            lines.append("(* peak from a worst-case bound; calibrate for measured peaks)")
        if any(layer.agreement is not None for layer in self.layers):
            lines.append("(agree, rate err: float vs quantised spikes of each layer on the "
                         "calibration data; rate in spikes per neuron and step)")
        for layer in self.layers:
            for w in layer.warnings:
                lines.append(f"warning: layer {layer.name!r}: {w}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        def clean(v: Any) -> Any:
            if isinstance(v, np.ndarray):
                return {"min": int(v.min()), "max": int(v.max())}
            return v
        return {"profile": self.profile, "layers": [
            {k: clean(v) for k, v in vars(layer).items() if k != "projections"}
            | {"projections": [vars(p) for p in layer.projections]} for layer in self.layers]}


def _mantissa_range(profile: Profile, mode: str) -> tuple[int, int, int]:
    """(lowest, highest mantissa, exponent offset) for a sign mode. A Loihi mixed-sign synapse
    stores a `weight_bits` two's-complement mantissa m and applies 2m (Lava drops the lowest
    bit of the 8-bit weight, docs/fixed_point.md section 3.1): the IR holds m itself and
    moves the factor 2 into `weight_exp` (offset 1), exactly, and one byte per weight."""
    b = profile.weight_bits
    if not profile.drop_low_bit_if_mixed or mode == "mixed":
        return -(2 ** (b - 1)), 2 ** (b - 1) - 1, int(profile.drop_low_bit_if_mixed)
    if mode == "excitatory":
        return 0, 2 ** b - 1, 0
    return -(2 ** b - 1), 0, 0


def _sign_mode(w: np.ndarray) -> str:
    """From min and max: no full-size temporary (an empty matrix is excitatory)."""
    if not w.size or w.min() >= 0:
        return "excitatory"
    if w.max() <= 0:
        return "inhibitory"
    return "mixed"


def _abs_max(w: np.ndarray) -> float:
    """max |w| (0 when empty) from min and max: no full-size temporary."""
    return float(max(-w.min(), w.max())) if w.size else 0.0


def _weight_exp(wmax: float, hi: int, profile: Profile, offset: int) -> int:
    """Smallest exponent (within the profile's range, moved by `offset`) at which the largest
    scaled weight fits."""
    lo_e, hi_e = profile.weight_exp_range
    if wmax == 0:
        return 0
    return int(np.clip(math.ceil(math.log2(wmax / hi)), lo_e + offset, hi_e + offset))


def _weights(node) -> np.ndarray:
    """A float projection's weights: its matrix or kernel, or a `Sparse` one's values."""
    return node.values if isinstance(node, Sparse) else node.weight


def _quantize_weights(name: str, source: str, node, scale: float, profile: Profile
                      ) -> tuple[Any, ProjectionReport]:
    """The projection's mantissas, computed block by block of rows (no full-size float64
    temporary) and written straight into the narrow array the node keeps (`Owned`). A
    `Sparse` becomes a `QSparse` of its entries that do not round to zero."""
    weight = _weights(node)
    mode = _sign_mode(weight)
    lo, hi, offset = _mantissa_range(profile, mode)
    # max |W * scale / UNIT| is max |W| * scale / UNIT: both roundings are monotonic
    e = _weight_exp(_abs_max(weight) * scale / UNIT, min(hi, -lo) if mode == "mixed" else
                    max(hi, -lo), profile, offset)
    stored = np.empty(weight.shape, narrowest(lo, hi))  # int8 for loihi2 mixed, else int16
    n_clipped = nonzero = 0
    err = 0.0
    for rows in blocks(weight):
        block = weight[rows]
        exact = block * scale / UNIT / 2.0 ** e
        q = np.round(exact)
        n_clipped += int(np.count_nonzero((q < lo) | (q > hi)))
        np.clip(q, lo, hi, out=q)
        nonzero += int(np.count_nonzero(q))
        err = max(err, float(np.abs(q * 2.0 ** e * UNIT / scale - block).max(initial=0)))
        stored[rows] = q  # integers within [lo, hi]: exact
    size = weight.size
    clipped = n_clipped / size if size else 0.0
    wmax = _abs_max(weight)
    cells = math.prod(node.shape) if isinstance(node, Sparse) else size  # of the whole matrix
    density = nonzero / cells if cells else 0.0
    if isinstance(node, Conv2d):
        qnode = QConv2d(Owned(stored), e, node.stride, node.padding, node.dilation, node.groups)
        kind = "conv"
    elif isinstance(node, Sparse):
        keep = np.flatnonzero(stored)
        qnode = QSparse(node.rows[keep], node.cols[keep], Owned(stored[keep]), node.shape, e,
                        node.out_shape)
        kind = "sparse"
    elif density < profile.sparse_below:
        rows, cols = np.nonzero(stored)
        qnode = QSparse(rows, cols, Owned(stored[rows, cols]), stored.shape, e,
                        node.out_shape)
        kind = "sparse"
    else:
        qnode = QDense(Owned(stored), e, node.out_shape)
        kind = "dense"
    report = ProjectionReport(name, source, kind, e, mode, clipped,
                              err / wmax if wmax else 0.0, density,
                              _synapses(node) - _synapses(qnode), profile.weight_bits)
    return qnode, report


def _synapses(node) -> int:
    """Stored synapses of a matrix projection (a convolution keeps its geometry: 0 here, its
    float and quantised forms store the same taps)."""
    if isinstance(node, (Sparse, QSparse)):
        return int(node.values.size)
    return 0 if isinstance(node, (Conv2d, QConv2d)) else int(node.weight.size)


def _fan_in_bound(node) -> float:
    """Largest sum of |weights| into one output: the input when every source spikes (block by
    block of rows)."""
    if isinstance(node, Sparse):  # per row, block by block of entries
        per_row = np.zeros(node.shape[0])
        for k in blocks(node.values):
            per_row += np.bincount(node.rows[k], np.abs(node.values[k]), node.shape[0])
        return float(per_row.max(initial=0))
    axes = (1, 2, 3) if isinstance(node, Conv2d) else 1
    w = node.weight
    return max((float(np.abs(w[rows]).sum(axis=axes).max(initial=0)) for rows in blocks(w)),
               default=0.0)


def _amax(value: Any) -> float:
    return float(np.max(np.abs(value)))


def _decay(factor: Any, offset: int, what: str, lossy: list[str]) -> Any:
    """4096 * (1 - factor) - offset as a 12-bit integer (scalar or per neuron)."""
    d = np.rint(4096 * (1 - np.asarray(factor, dtype=np.float64)) - offset)
    clipped = np.clip(d, 0, 4095)
    if np.any(clipped != d):
        lossy.append(f"{what} {np.asarray(factor).min():g}..{np.asarray(factor).max():g} "
                     f"is outside what 12 bits hold; clipped")
    leak = 1 - np.asarray(factor, dtype=np.float64)
    if np.any((leak > 0) & (clipped + offset == 0)):
        lossy.append(f"{what} {np.asarray(factor).max():g} rounds to no decay at all in 12 "
                     f"bits (1 - {what} below 1/8192): the quantised state never relaxes")
    out = clipped.astype(np.int64)
    return int(out) if out.ndim == 0 else out


def _calibrate(graph: Graph, calibration: Any) -> tuple[dict[str, float], Any]:
    """Measured peak |i| and |v| (float units) per neuron layer of the folded graph, and the
    float run they come from."""
    from ..ir.interpret import interpret

    result = interpret(graph, calibration, record=True)
    peaks = {}
    for name, states in result.states.items():
        node = graph[name]
        extra = _amax(getattr(node, "threshold", 0.0)) + _amax(node.bias)
        peaks[name] = max(float(np.abs(s).max(initial=0)) for s in states.values()) + extra
    return peaks, result


def _measure(qgraph: Graph, float_run: Any, calibration: Any, layers: list[LayerReport]
             ) -> None:
    """Fill each layer's agreement and rate error: the quantised graph on the emulator (the
    reference core) against the float run, on the same calibration data."""
    from ..fidelity import fidelity
    from ..runtime import run

    measured = fidelity(float_run, run(qgraph, calibration, backend="emulator", record=True))
    for layer in layers:
        m = measured["layers"].get(layer.name)
        if m is not None:
            layer.agreement, layer.rate_error = m["agreement"], m["rate_error"]


def _weight_widths(folded: Graph, prof: Profile, weight_bits: int | None,
                   layer_bits: Mapping[str, int] | None) -> dict[str, int]:
    """Bits of each projection's mantissas: `weight_bits` (default the profile's) for all,
    `layer_bits` by neuron layer (every projection into it) or by projection (wins). A
    profile may only be narrowed: its weight memory holds `prof.weight_bits`."""
    into = {name: [p for p, _ in folded.predecessors(name)] for name in folded.schedule()
            if isinstance(folded[name], Neuron)}
    projections = {p for ps in into.values() for p in ps}

    def width(value: Any, what: str) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or \
                not 2 <= value <= prof.weight_bits:
            raise NmcompileError(f"{what}: {value!r} weight bits; give an integer in "
                                 f"[2, {prof.weight_bits}] (profile {prof.name!r} stores "
                                 f"{prof.weight_bits}-bit weights; a profile may only be "
                                 f"narrowed)")
        return int(value)

    default = prof.weight_bits if weight_bits is None else width(weight_bits, "weight_bits")
    out = dict.fromkeys(sorted(projections), default)
    overrides = dict(layer_bits or {})
    for key, value in sorted(overrides.items(), key=lambda kv: kv[0] in projections):
        if key in into:
            out.update(dict.fromkeys(into[key], width(value, f"layer {key!r}")))
        elif key in projections:
            out[key] = width(value, f"projection {key!r}")
        else:
            raise NmcompileError(f"layer_bits names {key!r}, which is neither a neuron layer "
                                 f"({', '.join(into)}) nor a projection ({', '.join(out)}) "
                                 f"of the folded graph")
    return out


def quantize(graph: Graph, profile: str | Profile = "loihi2",
             calibration: np.ndarray | Mapping[str, np.ndarray] | None = None,
             *, report: bool = False, max_bytes: int | str | None = None,
             weight_bits: int | None = None, layer_bits: Mapping[str, int] | None = None
             ) -> Graph | tuple[Graph, QuantizationReport]:
    """Quantise a float graph for `profile`; with `report=True` also return the per-layer
    report (bits, exponents, clipping, rounding errors, safe-range use and, with calibration
    data, each layer's float-vs-quantised spike agreement and rate error on that data).

    `weight_bits` narrows every projection's mantissas (default: the profile's width);
    `layer_bits` narrows some, by neuron layer name (all projections into it) or projection
    name, e.g. `{"lif1": 4}`. `max_bytes` is the folding pass's memory budget
    (`nmcompile.limits`)."""
    from ..passes import fold_linear  # imports PyTorch: only when quantising

    prof = get_profile(profile)
    _check_delays(graph, prof)  # before folding (which may add delays up) and again after
    folded = fold_linear(graph, max_bytes=max_bytes)  # validated
    _check_delays(folded, prof)
    bits = _weight_widths(folded, prof, weight_bits, layer_bits)
    measured, float_run = _calibrate(folded, calibration) if calibration is not None else \
        (None, None)
    out = Graph(dt=graph.dt, metadata=dict(graph.metadata))
    layers: list[LayerReport] = []
    half = 2.0 ** (prof.state_bits - 1)
    for name in folded.schedule():
        node = folded[name]
        if isinstance(node, Input):
            out.add_node(name, node)
        elif isinstance(node, Output):
            for src, _ in folded.predecessors(name):
                if not isinstance(folded[src], Neuron):
                    raise UnsupportedError(f"output {name!r} is fed by a projection; the "
                                           f"fixed-point targets need a neuron layer (an LI "
                                           f"readout) before each output")
            out.add_node(name, node)
        elif isinstance(node, Neuron):
            layers.append(_quantize_layer(folded, name, node, prof, measured, half, out, bits))
    for u, v, d in folded.edges():
        out.add_edge(u, v, d)
    dropped = {p.name: p.dropped for r in layers for p in r.projections if p.dropped}
    from ..ir.serialize import digest

    # the float graph it came from, so that `verify --reference` can refuse another one
    out.metadata["quantization"] = {"profile": prof.name,
                                    "scales": {r.name: r.scale for r in layers},
                                    "source": {"sha256": digest(graph)}}
    if dropped:
        out.metadata["quantization"]["dropped_synapses"] = dropped
    narrowed = {k: b for k, b in bits.items() if b != prof.weight_bits}
    if narrowed:
        out.metadata["quantization"]["weight_bits"] = narrowed
    out.validate()
    if report and float_run is not None:
        _measure(out, float_run, calibration, layers)
    rep = QuantizationReport(prof.name, layers)
    return (out, rep) if report else out


def _check_delays(graph: Graph, prof: Profile) -> None:
    """Refuse, before anything is built, an edge longer than the profile's `max_delay`."""
    for u, v, d in graph.edges():
        if d > prof.max_delay:
            raise LimitError(f"edge {u!r} -> {v!r} has a delay of {d:,} steps, more than "
                             f"profile {prof.name!r} allows (max_delay={prof.max_delay}); "
                             f"shorten the delay, or quantise with a profile whose max_delay "
                             f"is larger")


def _quantize_layer(folded: Graph, name: str, node: Neuron, prof: Profile,
                    measured: dict[str, float] | None, half: float, out: Graph,
                    bits: Mapping[str, int]) -> LayerReport:
    if isinstance(node, (LIF, ALIF, IF)) and np.any(np.asarray(node.threshold) <= 0):
        raise NmcompileError(f"layer {name!r}: thresholds must be > 0 in fixed point "
                             f"(vth is unsigned)")
    projections = []
    for pname, _ in folded.predecessors(name):
        src = folded.predecessors(pname)[0][0]
        if isinstance(folded[src], LI):
            raise UnsupportedError(f"layer {name!r} is fed by the voltage of LI layer {src!r}; "
                                   f"on the fixed-point targets only spikes and inputs travel")
        projections.append((pname, src, folded[pname],
                            prof if bits[pname] == prof.weight_bits else
                            replace(prof, weight_bits=bits[pname])))
    alpha = getattr(node, "alpha", 0.0)
    beta = getattr(node, "beta", 1.0)
    bias = _amax(node.bias)
    thr = _amax(getattr(node, "threshold", 0.0))
    thr += _amax(getattr(node, "adapt_step", 0.0)) * 4  # room for a few adaptation steps
    if measured is not None:
        peak = measured[name]
    else:
        x = sum(_fan_in_bound(p) for _, _, p, _ in projections)
        i = x / max(1e-6, 1 - _amax(alpha))
        peak = thr + i + bias if node.spiking else (i + bias) / max(1e-3, 1 - _amax(beta))
    scale = prof.headroom * half / max(peak, 1e-12)
    if thr > 0:
        scale = min(scale, (2 ** prof.vth_bits - 1) * UNIT / thr)
    if bias > 0:
        scale = min(scale, (2 ** (prof.bias_mant_bits - 1) - 1) * 2 ** prof.bias_exp_range[1]
                    / bias)
    for _, _, p, pprof in projections:
        wmax = _abs_max(_weights(p))
        lo, hi, offset = _mantissa_range(pprof, _sign_mode(_weights(p)))
        if wmax:  # largest mantissa magnitude: both signs for mixed, one sign otherwise
            top = min(hi, -lo) if lo < 0 < hi else max(hi, -lo)
            scale = min(scale, top * 2.0 ** (prof.weight_exp_range[1] + offset) * UNIT / wmax)
    # A power of two: dyadic parameters (1.0, 0.5, 0.75, ...) then map to integers exactly,
    # at the cost of at most half the headroom of a 24-bit state.
    scale = 2.0 ** math.floor(math.log2(scale))
    lossy: list[str] = []
    threshold = getattr(node, "threshold", None)
    if threshold is not None:
        vth = np.clip(np.rint(np.asarray(threshold) * scale / UNIT), 0, VTH_MAX).astype(np.int64)
        vth = int(vth) if vth.ndim == 0 else vth
    reports = []
    for pname, src, p, pprof in projections:
        qnode, rep = _quantize_weights(pname, src, p, scale, pprof)
        out.add_node(pname, qnode)
        reports.append(rep)
    b = np.asarray(node.bias, dtype=np.float64) * scale
    bmax_mant = 2 ** (prof.bias_mant_bits - 1) - 1
    bias_exp = int(np.clip(math.ceil(math.log2(max(_amax(b), 1) / bmax_mant)),
                           *prof.bias_exp_range)) if _amax(b) > bmax_mant else 0
    bias_mant = np.rint(b / 2 ** bias_exp).astype(np.int64)
    bias_mant = int(bias_mant) if bias_mant.ndim == 0 else bias_mant
    du = _decay(alpha, 1, "alpha", lossy)
    dv = _decay(beta, 0, "beta", lossy)
    common = {"du": du, "dv": dv, "bias_mant": bias_mant, "bias_exp": bias_exp}
    if isinstance(node, LI):
        qnode = QLI(**common)
    elif isinstance(node, ALIF):
        step = np.rint(np.asarray(node.adapt_step) * scale / UNIT).astype(np.int64)
        qnode = QALIF(vth=vth, vth_step=int(step) if step.ndim == 0 else step,
                      da=_decay(node.rho, 0, "rho", lossy), reset=node.reset, **common)
    else:
        qnode = QLIF(vth=vth, reset=node.reset, **common)
    out.add_node(name, qnode)
    return LayerReport(name, type(node).__name__, scale, peak, peak * scale / half,
                       qnode.params().get("vth"), du, dv, bias_exp, lossy, reports,
                       measured is not None)
