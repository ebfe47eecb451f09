"""Run a quantised graph: window by window where the graph is feed-forward, step by step
inside cycles.

A node outside every cycle sees its whole input as soon as its sources are done (a delay only
shifts it in time), so a projection is one matrix product over all T steps and a neuron one
call of the compiled update over T steps. The nodes of a cycle (a strongly connected
component, whose delays are >= 1) are advanced together one step at a time, with the same
projection and neuron code on windows of one step.
"""

from __future__ import annotations

from collections.abc import Mapping

import networkx as nx
import numpy as np

from nmcompile.errors import LimitError, NmcompileError
from nmcompile.ir import Graph, Input, Output
from nmcompile.ir.interpret import normalize_inputs
from nmcompile.ir.neurons import Neuron
from nmcompile.result import RunResult

from .neuron import NeuronLayer
from .projections import projection

MAX_BYTES = 8 << 30


def _window(out: np.ndarray, t0: int, t1: int, d: int) -> np.ndarray:
    """Steps t0..t1-1 of a node's outputs (T, B, n) as seen through an edge of delay d."""
    lo, hi = t0 - d, t1 - d
    if lo >= 0:
        return out[lo:hi]
    zeros = np.zeros((min(-lo, t1 - t0), *out.shape[1:]), out.dtype)
    return np.concatenate([zeros, out[:max(hi, 0)]])


def simulate(graph: Graph, inputs: np.ndarray | Mapping[str, np.ndarray], *,
             record: bool = False) -> RunResult:
    shapes = graph.validate()
    inputs, T, B = normalize_inputs(graph, inputs, shapes)
    sizes = {name: int(np.prod(shape)) for name, shape in shapes.items()}
    planned = 8 * T * B * sum(sizes.values()) * (3 if record else 1)
    if planned > MAX_BYTES:
        raise LimitError(f"emulating {T} steps of batch {B} would hold {planned / 2**30:.1f} GiB "
                         f"(limit {MAX_BYTES / 2**30:.0f} GiB); run a smaller batch")
    for name, arr in inputs.items():
        if arr.dtype.kind == "f" and not np.array_equal(arr, np.rint(arr)):
            raise NmcompileError(f"input {name!r}: the emulator takes integer spikes or graded "
                                 f"integers")

    preds = {name: graph.predecessors(name) for name in graph}
    out: dict[str, np.ndarray] = {}  # node -> (T, B, n) int64
    for name, arr in inputs.items():
        out[name] = np.ascontiguousarray(arr.reshape(T, B, -1), dtype=np.int64)
    # Bound on each node's output magnitude, for choosing an exact matmul type.
    bound = {name: int(np.abs(arr).max(initial=0)) for name, arr in out.items()}
    layers, ops, events = {}, {}, {}
    traces: dict[str, dict[str, np.ndarray]] = {}
    for name in graph.schedule():
        node = graph[name]
        if isinstance(node, Neuron):
            layers[name] = NeuronLayer(node, B, sizes[name], shapes[name])
            bound[name] = 2**23 if not layers[name].spiking else 1
            traces[name] = {k: np.zeros((T, B, sizes[name]), np.int64) for k in ("u", "v")} \
                if record else {}
        elif not isinstance(node, (Input, Output)):
            src = preds[name][0][0]
            max_in = max(bound.get(s, 2**23) for s, _ in preds[name])
            ops[name] = projection(node, shapes[src], max_in)
            events[name] = 0
            bound[name] = 2**31

    def compute(name: str, t0: int, t1: int) -> None:
        """Fill out[name][t0:t1] from the sources' outputs."""
        x = None
        for src, d in preds[name]:
            part = _window(out[src], t0, t1, d)
            x = part if x is None else x + part
        node = graph[name]
        rows = x.reshape((t1 - t0) * B, -1)
        if name in ops:
            apply, count = ops[name]
            events[name] += count(rows)
            out[name][t0:t1] = apply(rows).reshape(t1 - t0, B, -1)
        elif name in layers:
            y, u, v = layers[name].step(x.reshape(t1 - t0, -1), record)
            out[name][t0:t1] = y.reshape(t1 - t0, B, -1)
            if record:
                traces[name]["u"][t0:t1] = u.reshape(t1 - t0, B, -1)
                traces[name]["v"][t0:t1] = v.reshape(t1 - t0, B, -1)
        elif isinstance(node, Output):
            out[name][t0:t1] = x

    order = graph.schedule()
    for name in order:
        if name not in out:
            out[name] = np.zeros((T, B, sizes[name]), np.int64)
    position = {name: i for i, name in enumerate(order)}
    done = set(inputs)
    condensed = nx.condensation(graph.nx)
    for scc in nx.lexicographical_topological_sort(
            condensed, key=lambda c: min(position[n] for n in condensed.nodes[c]["members"])):
        members = sorted(condensed.nodes[scc]["members"] - done, key=position.__getitem__)
        if not members:
            continue
        if len(members) == 1 and not graph.nx.has_edge(members[0], members[0]):
            compute(members[0], 0, T)
        else:
            for t in range(T):
                for name in members:
                    compute(name, t, t + 1)
        done.update(members)

    spiking = [n for n, layer in layers.items() if layer.spiking]
    outputs = {}
    for name in graph.outputs:
        sources = [src for src, _ in preds[name]]
        values = out[name]
        outputs[name] = values.astype(np.uint8) if all(s in spiking for s in sources) else values
    spikes = {n: out[n].astype(np.uint8) for n in spiking}
    counters = {
        "spikes": {n: int(spikes[n].sum(dtype=np.int64)) for n in spiking},
        "neuron_updates": {n: T * B * sizes[n] for n in layers},
        "synaptic_events": events,
        "unsafe_updates": {n: int(layer.unsafe.sum()) for n, layer in layers.items()},
    }
    return RunResult(outputs=outputs, backend="emulator", spikes=spikes if record else {},
                     states=traces if record else {}, counters=counters)
