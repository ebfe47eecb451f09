"""What a network does on an input, counted exactly per node: synaptic operations, neuron
updates (active and idle), spikes, and the memory its weights and states take.

A synaptic operation is one (delivered non-zero input, stored synapse) pair. A dense matrix
stores its zeros, a sparse one only its listed entries, a convolution every kernel tap that
lands inside the input (padding holds no synapse), so both the stored-synapse count and the
count on non-zero weights are kept. A neuron update is active when at least one synaptic
event (or a non-zero direct input) reached the neuron on that step, or it spiked; otherwise
idle.

Counts come from a backend's counters where it keeps them all (the emulator), else they are
derived here from the recorded spikes of every layer (the float interpreter, Lava): two
implementations that tests hold equal. Routing counts (messages between cores, mesh hops)
exist only for a run mapped onto cores, whose result carries them (`ROUTING`); a run without
a mapping has none, and the energy models then leave out the terms that need them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..errors import UnsupportedError
from ..ir import Graph, Input, Neuron
from ..ir.inputs import delayed
from ..ir.projections import Conv2d, Dense, Sparse
from ..ir.quantized import QConv2d, QDense, QSparse, abs_max
from ..ir.synapses import conv_fanout, matrix_fanout, sparse_fanout
from ..result import RunResult

#: Counters a backend must keep for `from_result` to use them instead of recorded spikes.
EXACT_COUNTERS = ("spikes", "neuron_updates", "active_neuron_updates", "synaptic_events",
                  "synaptic_events_nonzero")
FLOAT_BITS = 32  # a float graph's weights and states, as float32 hardware would hold them
PROJECTIONS = (Dense, Sparse, Conv2d, QDense, QSparse, QConv2d)
#: The synapse format a projection is stored in, by node type: chips price them differently
#: (SANA-FE's Loihi model has dense, sparse and conv synapse units). A float matrix is dense
#: (folded pool/flatten chains included), a float `Sparse` sparse, as their quantised forms.
SYNAPSE_KINDS = {Dense: "dense", QDense: "dense", Sparse: "sparse", QSparse: "sparse",
                 Conv2d: "conv", QConv2d: "conv"}
_KIND_OF_TYPE = {cls.__name__: kind for cls, kind in SYNAPSE_KINDS.items()}  # rows hold names
#: Routing counts -> the `RunResult.counters` entry a mapped run reports them in, each
#: {layer: total over the run and batch}: messages sent (one per spiking neuron and
#: destination core, inputs entering from the host included), the mesh hops they travel
#: under XY routing, per axis, and those whose source and destination core share a tile.
ROUTING = {"core_messages": "core_messages", "hops_east_west": "hops_east_west",
           "hops_north_south": "hops_north_south", "within_tile_messages": "messages_within_tile"}


@dataclass
class LayerCounts:
    """One node's counts over a run of `samples` inputs of `steps` steps (floats when they are
    expectations, from `analytic`).

    Projection (input x, fan-out f_i stored synapses of input i, f'_i of them non-zero):
        synaptic_ops = sum_{t, b} sum_{i: x[t, b, i] != 0} f_i;  synaptic_ops_nonzero with f'_i
        synapses = sum_i f_i (connections, padding excluded), nonzero_synapses = sum_i f'_i;
        weights: stored weight values (a kernel is stored once), weight_bits = weights x width
        (+ index_bits: one target index per stored synapse of a sparse matrix)
    Neuron layer (n neurons):
        neuron_updates = steps x samples x n;  active_updates: updates reached by an event or
        with a spike;  spikes;  state_bits = n x states x width
    Input: spikes = non-zero input values (`neurons` = its size).
    """

    name: str
    type: str
    kind: str  # "input", "projection" or "neuron"
    shape: tuple[int, ...]
    sources: list[str] = field(default_factory=list)
    synapses: int = 0
    nonzero_synapses: int = 0
    weights: int = 0
    weight_bits: int = 0
    index_bits: int = 0
    synaptic_ops: float = 0
    synaptic_ops_nonzero: float = 0
    neurons: int = 0
    state_bits: int = 0
    neuron_updates: float = 0
    active_updates: float = 0
    spikes: float = 0

    @property
    def idle_updates(self) -> float:
        return self.neuron_updates - self.active_updates

    @property
    def synapse_kind(self) -> str | None:
        """"dense", "sparse" or "conv" for a projection (`SYNAPSE_KINDS`), else None."""
        return _KIND_OF_TYPE.get(self.type) if self.kind == "projection" else None

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["shape"] = list(self.shape)
        out["idle_updates"] = self.idle_updates
        out["synapse_kind"] = self.synapse_kind
        return out


#: Totals of these fields are summed over layers (`input_spikes` separately).
TOTALS = ("synapses", "nonzero_synapses", "weights", "weight_bits", "index_bits",
          "synaptic_ops", "synaptic_ops_nonzero", "neurons", "state_bits", "neuron_updates",
          "active_updates", "idle_updates", "spikes")


@dataclass
class Counts:
    """Per-node counts of one run (`measured`) or their expectation (`analytic`);
    `routing` holds the routing counts of a run mapped onto cores ({count in `ROUTING`:
    {layer: total over the run}}), empty without a mapping."""

    layers: list[LayerCounts]
    steps: int
    samples: int
    measured: bool = True
    backend: str | None = None
    notes: list[str] = field(default_factory=list)
    routing: dict[str, dict[str, float]] = field(default_factory=dict)

    def layer(self, name: str) -> LayerCounts:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    def total(self) -> dict[str, float]:
        """Sums over layers, over the whole run; `input_spikes` counts the inputs' events;
        the routing counts the run carries (`routing`) are summed too."""
        out = {key: sum(getattr(layer, key) for layer in self.layers if layer.kind != "input")
               for key in TOTALS}
        out["input_spikes"] = sum(layer.spikes for layer in self.layers if layer.kind == "input")
        out |= {key: sum(per_layer.values()) for key, per_layer in self.routing.items()}
        return out

    def synaptic_ops_by_kind(self) -> dict[str, float]:
        """Synaptic ops over the run by synapse format: dense, sparse and conv."""
        runs = [self._run_share(layer) for layer in self.layers]
        return {kind: sum(r[f"synaptic_ops_{kind}"] for r in runs)
                for kind in ("dense", "sparse", "conv")}

    def activation_reads(self) -> int:
        """Input values one ANN pass reads: each projection reads each element of each of
        its sources once (a layer feeding two projections is read twice)."""
        size = {layer.name: int(np.prod(layer.shape)) for layer in self.layers}
        return sum(self._pass_share(layer, size)["activation_reads"] for layer in self.layers)

    def _run_share(self, layer: LayerCounts) -> dict[str, float]:
        """`layer`'s part of each count that `per_inference` divides by `samples` (over the
        whole run): an input's events are `input_spikes`, not `spikes`; a layer's routing
        counts are what the mapped run's counters give it."""
        inp = layer.kind == "input"
        out = {"synaptic_ops": layer.synaptic_ops,
               "synaptic_ops_nonzero": layer.synaptic_ops_nonzero,
               "neuron_updates": 0 if inp else layer.neuron_updates,
               "active_updates": 0 if inp else layer.active_updates,
               "idle_updates": 0 if inp else layer.idle_updates,
               "spikes": 0 if inp else layer.spikes,
               "input_spikes": layer.spikes if inp else 0}
        for kind in ("dense", "sparse", "conv"):
            out[f"synaptic_ops_{kind}"] = layer.synaptic_ops if layer.synapse_kind == kind else 0
        return out

    def _pass_share(self, layer: LayerCounts, size: Mapping[str, int]) -> dict[str, float]:
        """`layer`'s part of the counts that are already per inference: one ANN pass
        (`macs`, `weight_reads`, `activation_reads`) and every synapse on every step."""
        reads = sum(size[s] for s in layer.sources) if layer.kind == "projection" else 0
        return {"macs": layer.synapses, "weight_reads": layer.weights,
                "activation_reads": reads, "dense_synaptic_ops": layer.synapses * self.steps}

    def per_layer(self) -> dict[str, dict[str, float]]:
        """Layer -> its part of every count of `per_inference` (the same keys; summed over
        layers they give `per_inference`), so that a device prices each layer with the same
        `Device.energy` as the whole network."""
        size = {layer.name: int(np.prod(layer.shape)) for layer in self.layers}
        out = {}
        for layer in self.layers:
            share = {k: v / self.samples for k, v in self._run_share(layer).items()}
            share |= self._pass_share(layer, size)
            share |= {key: per.get(layer.name, 0) / self.samples
                      for key, per in self.routing.items()}
            _add_tile_hops(share)
            out[layer.name] = share
        return out

    def per_inference(self) -> dict[str, float]:
        """What one inference (one sample of `steps` steps) costs, for the energy models
        (`nmcompile.analysis.energy.COUNTS` defines each): the run's totals divided by
        `samples`, the synaptic ops split by synapse format, what a conventional ANN of the
        same topology does in one pass (`macs`, `weight_reads`, `activation_reads`),
        `dense_synaptic_ops` (every synapse on every step, as a clocked simulation does),
        and the routing counts, only when the run carries them (a mapped run). Each is the
        sum of the layers' parts (`per_layer`), defined once in `_run_share`/`_pass_share`."""
        size = {layer.name: int(np.prod(layer.shape)) for layer in self.layers}
        runs = [self._run_share(layer) for layer in self.layers]
        passes = [self._pass_share(layer, size) for layer in self.layers]
        # summed over the run first, then divided: exact for integer counts
        out = {key: sum(r[key] for r in runs) / self.samples for key in _RUN_KEYS}
        out |= {key: sum(p[key] for p in passes) for key in _PASS_KEYS}
        # every routing count the run carries, also for nodes that are not rows (as before)
        out |= {key: sum(per.values()) / self.samples for key, per in self.routing.items()}
        _add_tile_hops(out)
        return out


_RUN_KEYS = ("synaptic_ops", "synaptic_ops_nonzero", "neuron_updates", "active_updates",
             "idle_updates", "spikes", "input_spikes", "synaptic_ops_dense",
             "synaptic_ops_sparse", "synaptic_ops_conv")
_PASS_KEYS = ("macs", "weight_reads", "activation_reads", "dense_synaptic_ops")


def _add_tile_hops(counts: dict[str, float]) -> None:
    """tile_hops, when both mesh axes' hops are known (a mapped run)."""
    if {"hops_east_west", "hops_north_south"} <= set(counts):
        counts["tile_hops"] = counts["hops_east_west"] + counts["hops_north_south"]


# ------------------------------------------------------------------------------------------
# What a graph stores
# ------------------------------------------------------------------------------------------


def weight_width(graph: Graph) -> int:
    """Bits per stored weight: the quantisation profile's width, else the narrowest signed
    width holding every quantised weight, else 32 for a float graph."""
    from ..quantization.profiles import PROFILES

    profile = graph.metadata.get("quantization", {}).get("profile")
    if profile in PROFILES:
        return PROFILES[profile].weight_bits
    stored = [node.values if isinstance(node, QSparse) else node.weight
              for node in graph.nodes.values() if isinstance(node, (QDense, QSparse, QConv2d))]
    if not stored:
        return FLOAT_BITS
    return max(abs_max(w).bit_length() + 1 for w in stored)  # Python ints: no int8 wrap


def state_width(graph: Graph) -> int:
    """Bits per neuron state: the quantisation profile's width, else 24 (every profile's
    default) for a quantised graph, else 32 for a float graph."""
    from ..quantization.profiles import PROFILES

    profile = graph.metadata.get("quantization", {}).get("profile")
    if profile in PROFILES:
        return PROFILES[profile].state_bits
    return 24 if any(n.quantized for n in graph.nodes.values()) else FLOAT_BITS


def fanouts(node, in_shape: tuple[int, ...], out_shape: tuple[int, ...]
            ) -> tuple[np.ndarray, np.ndarray]:
    """(fanout, nonzero fanout), one value per input element, of a projection node."""
    if isinstance(node, (Dense, QDense)):
        return matrix_fanout(node.weight), matrix_fanout(node.weight, nonzero=True)
    if isinstance(node, (Sparse, QSparse)):
        n_in = node.shape[1]
        return (sparse_fanout(node.cols, node.values, n_in),
                sparse_fanout(node.cols, node.values, n_in, nonzero=True))
    if isinstance(node, (Conv2d, QConv2d)):
        geometry = (node.stride, node.padding, node.dilation, node.groups)
        return (conv_fanout(node.weight, in_shape, out_shape, *geometry),
                conv_fanout(node.weight, in_shape, out_shape, *geometry, nonzero=True))
    raise UnsupportedError(f"no synapse count for {type(node).__name__} nodes; fold linear "
                           f"chains first (nmcompile.passes.fold.fold_linear)")


def static_counts(graph: Graph) -> dict[str, LayerCounts]:
    """Every input, projection and neuron node with what it stores, in schedule order."""
    shapes = graph.validate()
    wbits, sbits = weight_width(graph), state_width(graph)
    out = {}
    for name, shape in shapes.items():
        node = graph[name]
        preds = graph.predecessors(name)
        row = LayerCounts(name, type(node).__name__, "", tuple(shape),
                          sources=[s for s, _ in preds])
        n = int(np.prod(shape))
        if isinstance(node, Input):
            row.kind, row.neurons = "input", n
        elif isinstance(node, Neuron):
            row.kind, row.neurons = "neuron", n
            row.state_bits = n * len(node.states) * sbits
        elif isinstance(node, PROJECTIONS):
            row.kind = "projection"
            fan, nz = fanouts(node, shapes[preds[0][0]], shape)
            row.synapses, row.nonzero_synapses = int(fan.sum()), int(nz.sum())
            sparse = isinstance(node, (Sparse, QSparse))
            row.weights = len(node.values) if sparse else node.weight.size
            row.weight_bits = row.weights * wbits
            if sparse:
                row.index_bits = row.weights * max(1, math.ceil(math.log2(node.shape[0])))
        elif node.kind == "projection":
            raise UnsupportedError(f"node {name!r} ({type(node).__name__}): fold linear chains "
                                   f"into single projections first "
                                   f"(nmcompile.passes.fold.fold_linear)")
        else:
            continue  # Output: records, stores nothing
        out[name] = row
    return out


# ------------------------------------------------------------------------------------------
# What a run does
# ------------------------------------------------------------------------------------------


def _reached(node, mask: np.ndarray, in_shape: tuple[int, ...]) -> np.ndarray:
    """mask (M, in) bool -> (M, out) or (M, 1) bool: outputs that at least one event reaches."""
    if isinstance(node, (Dense, QDense)):
        return mask.any(axis=1)[:, None]
    if isinstance(node, (Sparse, QSparse)):
        structure = sp.csr_matrix((np.ones(len(node.rows), np.int32), (node.rows, node.cols)),
                                  shape=node.shape)
        return np.asarray((structure @ mask.T.astype(np.int32)).T) > 0
    import torch
    import torch.nn.functional as F

    ones = torch.ones(node.weight.shape, dtype=torch.float32)
    x = torch.as_tensor(mask.reshape(-1, *in_shape), dtype=torch.float32)
    hits = F.conv2d(x, ones, None, node.stride, node.padding, node.dilation, node.groups)
    return hits.reshape(len(mask), -1).numpy() > 0


def from_spikes(graph: Graph, values: Mapping[str, np.ndarray], steps: int, samples: int,
                backend: str | None = None) -> Counts:
    """Counts derived from what every input and neuron layer emitted: `values` maps each
    input and neuron node to (T, B, ...) (spikes, or an LI readout's values). Each projection
    must be fed by inputs and neuron layers only (a folded graph)."""
    rows = static_counts(graph)
    flat = {name: np.asarray(v).reshape(steps, samples, -1) for name, v in values.items()}
    shapes = graph.validate()
    reached: dict[str, np.ndarray] = {}
    for name, row in rows.items():
        if row.kind != "projection":
            continue
        node = graph[name]
        x = None
        for src, d in graph.predecessors(name):
            if src not in flat:
                raise UnsupportedError(f"projection {name!r} is fed by {src!r}, which is not an "
                                       f"input or neuron layer: fold linear chains first")
            part = delayed(flat[src], d)
            x = part if x is None else x.astype(np.int64) + part
        mask = (x != 0).reshape(steps * samples, -1)
        fan, nz = fanouts(node, shapes[row.sources[0]], row.shape)
        per_input = mask.sum(axis=0, dtype=np.int64)
        row.synaptic_ops, row.synaptic_ops_nonzero = int(per_input @ fan), int(per_input @ nz)
        reached[name] = _reached(node, mask, shapes[row.sources[0]]).reshape(steps, samples, -1)
    for name, row in rows.items():
        if row.kind == "input":
            row.spikes = int(np.count_nonzero(flat[name]))
        if row.kind != "neuron":
            continue
        y = flat[name]
        spiking = graph[name].spiking
        hit = (y != 0) if spiking else np.zeros(y.shape, bool)
        for src, d in graph.predecessors(name):
            hit |= delayed(reached[src], d) if src in reached else delayed(flat[src] != 0, d)
        row.neuron_updates = steps * samples * row.neurons
        row.active_updates = int(np.count_nonzero(hit))
        row.spikes = int(np.count_nonzero(y)) if spiking else 0
    return Counts(list(rows.values()), steps, samples, True, backend)


def routing_counts(graph: Graph, counters: Mapping[str, Mapping[str, int]]
                   ) -> dict[str, dict[str, float]]:
    """The routing counts (`ROUTING`) among a mapped run's `counters`, by count name. A
    counter the run does not report stays absent, not zero: without a mapping the traffic is
    unknown, and on a chip it is not zero. A layer the graph does not have is refused, so that
    counters keyed by something else (cores, say) are not taken for layers."""
    out = {}
    for count, counter in ROUTING.items():
        if counter not in counters:
            continue
        unknown = set(counters[counter]) - set(graph.nodes)
        if unknown:
            raise UnsupportedError(f"counter {counter!r} names {sorted(map(str, unknown))}, "
                                   f"which are not nodes of the graph")
        out[count] = {name: int(value) for name, value in counters[counter].items()}
    return out


def from_result(graph: Graph, inputs: Mapping[str, np.ndarray], result: RunResult,
                steps: int, samples: int) -> Counts:
    """Counts of a run: the backend's own counters when it keeps all of `EXACT_COUNTERS`,
    else derived from the recorded spikes (`result` must then come from `record=True`); the
    routing counts when the result carries them (a run mapped onto cores)."""
    counts = _from_result(graph, inputs, result, steps, samples)
    counts.routing = routing_counts(graph, result.counters)
    return counts


def _from_result(graph: Graph, inputs: Mapping[str, np.ndarray], result: RunResult,
                 steps: int, samples: int) -> Counts:
    c = result.counters
    if all(key in c for key in EXACT_COUNTERS):
        rows = static_counts(graph)
        for name, row in rows.items():
            if row.kind == "input":
                row.spikes = int(np.count_nonzero(inputs[name]))
            elif row.kind == "projection":
                row.synaptic_ops = c["synaptic_events"][name]
                row.synaptic_ops_nonzero = c["synaptic_events_nonzero"][name]
            else:
                row.neuron_updates = c["neuron_updates"][name]
                row.active_updates = c["active_neuron_updates"][name]
                row.spikes = c["spikes"].get(name, 0)
        return Counts(list(rows.values()), steps, samples, True, result.backend)
    values = dict(inputs)
    for name, row in static_counts(graph).items():
        if row.kind != "neuron":
            continue
        if graph[name].spiking:
            if name not in result.spikes:
                raise UnsupportedError(f"the {result.backend} result holds no spikes of "
                                       f"{name!r}: run with record=True")
            values[name] = result.spikes[name]
        else:
            values[name] = result.states[name]["v"]
    return from_spikes(graph, values, steps, samples, result.backend)

