"""Mapping a quantised graph onto a chip's cores (issue 15; docs/mapping.md).

`map_graph(qgraph, chip)` partitions every neuron layer into core-sized pieces, places them
on the chip's mesh and returns the graph with its `placement`; a run of a placed graph on the
emulator counts the messages and mesh hops its spikes make (`traffic.count`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..errors import GraphError, NmcompileError
from ..ir import Graph
from ..ir.placement import Placement
from . import partition
from .chips import Chip, available, load_chip
from .loads import check, links, refuse_unfit

STRATEGIES = ("traffic", "sequential")
OBJECTIVES = ("traffic", "latency")

__all__ = ["STRATEGIES", "Chip", "available", "load_chip", "map_graph"]


def map_graph(graph: Graph, chip: str | Path | Chip = "loihi2", *, strategy: str = "traffic",
              rates: Mapping[str, Any] | None = None, inputs: Any = None,
              cores: int | None = None, objective: str = "traffic",
              host_layers: Iterable[str] = (), paths: Iterable[str | Path] = ()) -> Graph:
    """`graph` (quantised) with a placement on `chip`'s cores.

    `rates` (layer -> spikes per step, scalar or per neuron) weigh the traffic; without them
    a calibration run on `inputs` (T, batch, ...) measures them, and without either every
    neuron counts as firing once per step. `cores` asks for at least that many cores;
    `objective="latency"` balances synaptic events per core instead of minimising traffic.
    `host_layers` are read out by the host instead of placed (a readout whose fan-in no core
    holds): their inputs are messages to the host port; nothing on the chip may read them.
    """
    from ..runtime import is_quantized

    if not is_quantized(graph):
        raise GraphError("map needs a quantised graph: run nmcompile.quantize first")
    if strategy not in STRATEGIES:
        raise NmcompileError(f"unknown strategy {strategy!r}; known: {', '.join(STRATEGIES)}")
    if objective not in OBJECTIVES:
        raise NmcompileError(f"unknown objective {objective!r}; known: {', '.join(OBJECTIVES)}")
    if cores is not None and (not isinstance(cores, int) or cores < 1):
        raise NmcompileError(f"cores must be a positive integer, got {cores!r}")
    chip = load_chip(chip, paths)
    host = _host_layers(graph, host_layers)
    refuse_unfit(graph, chip, host)
    shapes = graph.shapes()
    per_neuron = _rates(graph, shapes, rates, inputs)
    made = (partition.sequential(graph, chip, cores, host) if strategy == "sequential"
            else partition.traffic(graph, chip, per_neuron, objective, cores, host))
    units, part, n = made["units"], made["part"], made["n"]
    if cores:
        part, n = partition.at_least(graph, chip, units, part, n, cores, per_neuron, shapes)
    pairs = made.get("pairs") or partition.pairs_of(graph, units)
    units, part, n, pairs = partition._split_until_fit(graph, chip, units, part, n, pairs)
    sizes = {k: math.prod(s) for k, s in shapes.items()}
    per_neuron = {k: partition._expand(units[k], sizes[k], part[k]) for k in units}
    if strategy == "sequential":
        where = partition.place_in_order(n)
    else:
        where = partition.place_by_traffic(chip, *_part_traffic(made, per_neuron, n))
    placed = {k: where[v] for k, v in per_neuron.items()}
    check(graph, chip, placed, int(where.max()) + 1, pairs)
    out = copy.copy(graph)  # the nodes are shared (read-only); only the placement is new
    out.placement = Placement(dict(chip.doc), strategy, placed)
    return out


def _host_layers(graph: Graph, names: Iterable[str]) -> frozenset[str]:
    """`names`, checked: neuron layers that no placed layer reads (through projections)."""
    host = frozenset(names)
    for name in host:
        if name not in graph or graph[name].kind != "neuron":
            raise GraphError(f"host layer {name!r} is not a neuron layer of the graph")
    for link in links(graph):
        if link.source in host and link.target not in host:
            raise GraphError(f"host layer {link.source!r} feeds layer {link.target!r} on the "
                             f"chip; only a readout (a layer nothing on the chip reads) can "
                             f"stay on the host")
    return host


def _rates(graph: Graph, shapes, rates, inputs) -> dict[str, np.ndarray]:
    """Spikes per step of every neuron of every source layer."""
    sizes = {k: math.prod(s) for k, s in shapes.items()}
    sources = [*graph.inputs, *[n for n in graph.schedule() if graph[n].kind == "neuron"]]
    if rates is not None:
        return {k: np.broadcast_to(np.asarray(rates.get(k, 1.0), np.float64),
                                   (sizes[k],)).copy() for k in sources}
    if inputs is None:
        return {k: np.ones(sizes[k]) for k in sources}
    from ..runtime import run

    result = run(graph, inputs, record=True)
    x = inputs if isinstance(inputs, Mapping) else {graph.inputs[0]: inputs}
    out = {}
    for k in sources:
        arr = np.asarray(x[k]) if k in x else result.spikes.get(k)
        if arr is None:  # a non-spiking layer: graded values every step
            out[k] = np.ones(sizes[k])
            continue
        steps = arr.shape[0] * arr.shape[1]
        out[k] = np.count_nonzero(arr.reshape(steps, -1), axis=0) / max(steps, 1)
    return out


def _part_traffic(made, per_neuron: dict[str, np.ndarray], n: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Traffic between parts and from the host to each part, from the unit graph (a unit
    cut in two since counts with the part of its first neuron)."""
    ids, edges = made["ids"], made["edges"]
    n_units = edges.shape[0]
    label = np.full(n_units, n, np.int64)  # n: the host (input units)
    for k, parts in per_neuron.items():
        label[ids[k][::-1]] = parts[::-1]  # reversed: the first neuron's part is kept
    agg = sp.coo_matrix((np.ones(n_units), (np.arange(n_units), label)), shape=(n_units, n + 1))
    between = (agg.T @ edges @ agg).toarray()
    return between[:n, :n], between[n, :n]
