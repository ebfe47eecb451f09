"""Expected counts from firing rates alone, without simulating: size a network before it is
trained, or before its inputs exist.

Each input and spiking layer s is given a rate r_s, the probability that a given element emits
a spike (a non-zero value) on a given step; a non-spiking readout emits on every step (rate 1).
Assuming every element of a layer fires independently at its layer's rate, over T steps and B
samples:

    synaptic_ops(p)   = T B r_p S_p          S_p: stored synapses of projection p,
                                             r_p = 1 - prod_s (1 - r_s (T - d_s) / T)
                                             over p's sources s through edges of delay d_s
    synaptic_ops_nonzero(p) = T B r_p S'_p   S'_p: its non-zero synapses
    spikes(l)         = T B r_l n_l
    neuron_updates(l) = T B n_l              (exact)
    active_updates(l) = T B sum_j [1 - (1 - r_l) prod_p (1 - r_p)^(k_pj)]
                                             k_pj: stored synapses from p into neuron j

The first three are exact in expectation whenever the rate is uniform over a layer's
elements. A convolution's fan-out varies with position (fewer taps at the borders), so
spatially uneven activity makes its count differ either way: a digit's ink, in the centre
where the fan-out is largest, puts the measured count above the estimate, activity at the
borders below it. `active_updates` also assumes that elements fire independently, and
overestimates when spikes cluster in time or in space. docs/estimation.md gives the
measured error on the examples.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..errors import NmcompileError, UnsupportedError
from ..ir import Graph
from ..ir.projections import Conv2d, Dense, Sparse
from ..ir.quantized import QConv2d, QDense, QSparse
from ..ir.synapses import conv_fanin
from .counts import Counts, static_counts


def fanin(node, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> np.ndarray:
    """Stored synapses into each output element of a projection."""
    if isinstance(node, (Dense, QDense)):
        return np.full(node.weight.shape[0], node.weight.shape[1], np.int64)
    if isinstance(node, (Sparse, QSparse)):
        return np.bincount(node.rows, minlength=node.shape[0]).astype(np.int64)
    if isinstance(node, (Conv2d, QConv2d)):
        return conv_fanin(node.weight, in_shape, out_shape, node.stride, node.padding,
                          node.dilation, node.groups)
    raise UnsupportedError(f"no fan-in rule for {type(node).__name__} nodes; fold linear "
                           f"chains first (nmcompile.passes.fold.fold_linear)")


def layer_rates(graph: Graph, rates: float | Mapping[str, float]) -> dict[str, float]:
    """Rate of every input and neuron layer from a number (all of them) or a mapping by layer
    name, with "default" for the others; a non-spiking layer defaults to 1."""
    rows = static_counts(graph)
    emitting = [n for n, r in rows.items() if r.kind in ("input", "neuron")]
    if isinstance(rates, Mapping):
        unknown = set(rates) - set(emitting) - {"default"}
        if unknown:
            raise NmcompileError(f"rates given for {sorted(unknown)}, which are not input or "
                                 f"neuron layers; layers: {', '.join(emitting)}")
        given = dict(rates)
    else:
        given = {"default": float(rates)}
    out = {}
    for name in emitting:
        spiking = rows[name].kind == "input" or graph[name].spiking
        if name in given:
            out[name] = float(given[name])
        elif not spiking:
            out[name] = 1.0
        elif "default" in given:
            out[name] = float(given["default"])
        else:
            raise NmcompileError(f"no rate for layer {name!r}: give it, or a 'default'")
        if not 0.0 <= out[name] <= 1.0:
            raise NmcompileError(f"rate of {name!r} must lie in [0, 1] (spikes per neuron per "
                                 f"step), got {out[name]}")
    return out


def analytic(graph: Graph, steps: int, rates: float | Mapping[str, float], samples: int = 1
             ) -> Counts:
    """Expected counts of `samples` inferences of `steps` steps at the given firing rates."""
    if steps < 1 or samples < 1:
        raise NmcompileError(f"steps and samples must be at least 1, got {steps}, {samples}")
    rows = static_counts(graph)
    shapes = graph.validate()
    rate = layer_rates(graph, rates)
    TB = steps * samples

    def averaged(src: str, d: int) -> float:  # a delay-d edge is silent on its first d steps
        return rate[src] * max(steps - d, 0) / steps

    proj_rate = {}
    for name, row in rows.items():
        if row.kind != "projection":
            continue
        silent = np.prod([1.0 - averaged(s, d) for s, d in graph.predecessors(name)])
        proj_rate[name] = 1.0 - float(silent)
        row.synaptic_ops = TB * proj_rate[name] * row.synapses
        row.synaptic_ops_nonzero = TB * proj_rate[name] * row.nonzero_synapses
    for name, row in rows.items():
        if row.kind == "input":
            row.spikes = TB * rate[name] * row.neurons
        if row.kind != "neuron":
            continue
        spiking = graph[name].spiking
        log_quiet = np.zeros(row.neurons)  # log P(no event reaches neuron j)
        for src, d in graph.predecessors(name):
            if src in proj_rate:
                r = proj_rate[src] * max(steps - d, 0) / steps
                k = fanin(graph[src], shapes[rows[src].sources[0]], rows[src].shape)
                log_quiet += k * np.log1p(-r) if r < 1 else np.where(k > 0, -np.inf, 0.0)
            else:
                r = averaged(src, d)
                log_quiet += np.log1p(-r) if r < 1 else -np.inf
        s = rate[name] if spiking else 0.0
        row.neuron_updates = TB * row.neurons
        row.active_updates = TB * float(np.sum(1.0 - (1.0 - s) * np.exp(log_quiet)))
        row.spikes = TB * s * row.neurons if spiking else 0.0
    return Counts(list(rows.values()), steps, samples, measured=False, backend=None,
                  notes=[f"analytic: expected counts at rates {rate}"])


def measured_rates(counts: Counts) -> dict[str, float]:
    """The mean rate of each input and spiking layer in a measured run (to feed `analytic`;
    a non-spiking readout is left to its default, 1)."""
    out = {}
    for layer in counts.layers:
        if layer.kind in ("input", "neuron") and layer.type not in ("LI", "QLI"):
            out[layer.name] = layer.spikes / (counts.steps * counts.samples * layer.neurons)
    return out
