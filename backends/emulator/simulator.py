"""Run a quantised graph: window by window where the graph is feed-forward, step by step
inside cycles.

A node outside every cycle sees its whole input as soon as its sources are done (a delay only
shifts it in time), so a projection is one matrix product over all T steps and a neuron one
call of the compiled update over T steps. The nodes of a cycle (a strongly connected
component, whose delays are >= 1) are advanced together one step at a time, with the same
projection and neuron code on windows of one step.

Counters (exact, per node; see `RunResult`): a projection's synaptic events (delivered
non-zero input x stored synapse) and those of them on a non-zero weight; a neuron layer's
updates, and its active updates: the (step, sample, neuron) triples at which at least one
synaptic event (or a non-zero direct input) arrived or the neuron spiked.
"""

from __future__ import annotations

from collections.abc import Mapping

import networkx as nx
import numpy as np

from nmcompile.ir import Graph, Input, Output
from nmcompile.ir.inputs import check_activity, normalize_inputs
from nmcompile.ir.neurons import Neuron
from nmcompile.ir.quantized import QDense
from nmcompile.result import RunResult, assemble_outputs

from .neuron import NeuronLayer
from .projections import check_neuron_input, projection, projection_bound


def _window(out: np.ndarray, t0: int, t1: int, d: int) -> np.ndarray:
    """Steps t0..t1-1 of a node's outputs (T, B, n) as seen through an edge of delay d."""
    lo, hi = t0 - d, t1 - d
    if lo >= 0:
        return out[lo:hi]
    zeros = np.zeros((min(-lo, t1 - t0), *out.shape[1:]), out.dtype)
    return np.concatenate([zeros, out[:max(hi, 0)]])


def _groups(graph: Graph, order: list[str]) -> list[list[str]]:
    """The nodes in an order that respects every edge, delayed ones included (a window needs
    its sources' whole outputs), those of one cycle grouped, in schedule order, to be stepped
    together."""
    position = {name: i for i, name in enumerate(order)}
    condensed = nx.condensation(graph.nx)
    members = {c: sorted(condensed.nodes[c]["members"], key=position.__getitem__)
               for c in condensed}
    return [members[c] for c in nx.lexicographical_topological_sort(
        condensed, key=lambda c: position[members[c][0]])]


def simulate(graph: Graph, inputs: np.ndarray | Mapping[str, np.ndarray], *,
             record: bool = False) -> RunResult:
    shapes = graph.validate()  # in schedule order
    order = list(shapes)
    inputs, T, B = normalize_inputs(graph, inputs, shapes, integers=True)
    sizes = {name: int(np.prod(shape)) for name, shape in shapes.items()}
    check_activity(T, B, shapes, record)
    out: dict[str, np.ndarray] = {}  # node -> its outputs (T, B, n)
    for name, arr in inputs.items():
        out[name] = arr.reshape(T, B, -1)
        if arr.dtype.kind == "f" or arr.dtype == np.uint64:  # int64 arithmetic throughout
            out[name] = out[name].astype(np.int64)

    preds = {name: graph.predecessors(name) for name in order}
    # max |x| from min and max as Python ints: np.abs of an int8 -128 is -128
    bound = {name: max(-int(arr.min()), int(arr.max())) if arr.size else 0
             for name, arr in out.items()}
    layers: dict[str, NeuronLayer] = {}
    ops, events, nonzero_events = {}, {}, {}
    reached: dict[str, np.ndarray] = {}  # projection -> (T, B, out or 1) bool: an event arrived
    for name in order:  # bounds on each node's output choose an exact matmul type
        node = graph[name]
        if isinstance(node, Neuron):
            layers[name] = NeuronLayer(node, B, sizes[name], shapes[name])
            bound[name] = 1 if layers[name].spiking else 2**23
        elif not isinstance(node, (Input, Output)):
            max_in = max(bound.get(s, 2**23) for s, _ in preds[name])
            bound[name] = projection_bound(name, node, max_in)
            ops[name] = projection(node, shapes[preds[name][0][0]], max_in)
            events[name] = nonzero_events[name] = 0
            width = 1 if isinstance(node, QDense) else sizes[name]  # dense: all alike
            reached[name] = np.zeros((T, B, width), bool)
    for name in layers:
        check_neuron_input(name, [bound.get(src, 2**23) for src, _ in preds[name]])
    active = dict.fromkeys(layers, 0)
    traces = {n: {k: np.zeros((T, B, sizes[n]), np.int64) for k in ("u", "v")}
              for n in layers} if record else {}

    def compute(name: str, t0: int, t1: int) -> np.ndarray:
        """The node's outputs for steps t0..t1-1, from its sources' outputs."""
        x = None
        for src, d in preds[name]:
            part = _window(out[src], t0, t1, d)
            x = part if x is None else x.astype(np.int64) + part  # a sum of several: int64
        steps = t1 - t0
        if name in ops:
            apply, count = ops[name]
            rows = x.reshape(steps * B, -1)
            n_events, n_nonzero, hit = count(rows)
            events[name] += n_events
            nonzero_events[name] += n_nonzero
            reached[name][t0:t1] = hit.reshape(steps, B, -1)
            return apply(rows).reshape(steps, B, -1)
        if name in layers:
            y, u, v = layers[name].step(np.ascontiguousarray(x.reshape(steps, -1)), record)
            if record:
                traces[name]["u"][t0:t1] = u.reshape(steps, B, -1)
                traces[name]["v"][t0:t1] = v.reshape(steps, B, -1)
            y = y.reshape(steps, B, -1)
            hit = y != 0 if layers[name].spiking else np.zeros(y.shape, bool)
            for src, d in preds[name]:
                hit |= (_window(reached[src], t0, t1, d) if src in reached
                        else _window(out[src], t0, t1, d) != 0)
            active[name] += int(np.count_nonzero(hit))
            return y
        raise AssertionError(f"no step for {name!r}")  # Outputs: assemble_outputs below

    outputs_of = set(graph.outputs)
    for group in _groups(graph, order):
        if group[0] in out or group[0] in outputs_of:
            continue
        if len(group) == 1:
            out[group[0]] = compute(group[0], 0, T)
            continue
        for name in group:  # a cycle: every member's buffer filled step by step
            dtype = np.uint8 if name in layers and layers[name].spiking else np.int64
            out[name] = np.zeros((T, B, sizes[name]), dtype)
        for t in range(T):
            for name in group:
                out[name][t:t + 1] = compute(name, t, t + 1)

    spiking = [n for n, layer in layers.items() if layer.spiking]
    # An output of spikes only is uint8 in the end, and a uint8 sum wraps mod 256 as the
    # final cast of an int64 sum does: summed in uint8, it skips an int64 copy of every step.
    sources = {n: preds[n] for n in graph.outputs}
    binary = {n for n, p in sources.items() if all(s in spiking for s, _ in p)}
    parts = {**assemble_outputs({n: sources[n] for n in sources if n in binary}, out, spiking,
                                dtype=np.uint8),
             **assemble_outputs({n: sources[n] for n in sources if n not in binary}, out,
                                spiking)}
    outputs = {n: parts[n] for n in sources}
    counters = {
        "spikes": {n: int(out[n].sum(dtype=np.int64)) for n in spiking},
        "neuron_updates": {n: T * B * sizes[n] for n in layers},
        "synaptic_events": events,
        "synaptic_events_nonzero": nonzero_events,
        "active_neuron_updates": active,
        "unsafe_updates": {n: int(layer.unsafe.sum()) for n, layer in layers.items()},
    }
    traffic = {}
    if graph.placement is not None:  # messages and hops, from what every source sent
        from nmcompile.mapping.traffic import count

        sent = {n: np.count_nonzero(out[n].reshape(T * B, -1), axis=0)
                for n in (*graph.inputs, *layers)}
        routed, traffic = count(graph, sent)
        counters.update(routed)
    return RunResult(outputs=outputs, backend="emulator",
                     spikes={n: out[n] for n in spiking} if record else {},
                     states=traces, counters=counters, traffic=traffic)
