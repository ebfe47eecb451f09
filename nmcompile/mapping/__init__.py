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
from .loads import check, refuse_unfit

STRATEGIES = ("traffic", "sequential")
OBJECTIVES = ("traffic", "latency")

__all__ = ["STRATEGIES", "Chip", "available", "load_chip", "map_graph"]


def map_graph(graph: Graph, chip: str | Path | Chip = "loihi2", *, strategy: str = "traffic",
              rates: Mapping[str, Any] | None = None, inputs: Any = None,
              cores: int | None = None, objective: str = "traffic",
              paths: Iterable[str | Path] = ()) -> Graph:
    """`graph` (quantised) with a placement on `chip`'s cores.

    `rates` (layer -> spikes per step, scalar or per neuron) weigh the traffic; without them
    a calibration run on `inputs` (T, batch, ...) measures them, and without either every
    neuron counts as firing once per step. `cores` asks for at least that many cores;
    `objective="latency"` balances synaptic events per core instead of minimising traffic.
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
    refuse_unfit(graph, chip)
    shapes = graph.shapes()
    per_neuron = _rates(graph, shapes, rates, inputs)
    made = (partition.sequential(graph, chip, cores) if strategy == "sequential"
            else partition.traffic(graph, chip, per_neuron, objective, cores))
    units, part, n = made["units"], made["part"], made["n"]
    if cores:
        part, n = partition.at_least(graph, chip, units, part, n, cores, per_neuron, shapes)
    part, n = partition._split_until_fit(graph, chip, units, part, n)
    if strategy == "sequential":
        where = partition.place_in_order(n)
    else:
        where = partition.place_by_traffic(chip, *_part_traffic(made, part, n, graph))
    sizes = {k: math.prod(s) for k, s in shapes.items()}
    placed = {k: where[partition._expand(units[k], sizes[k], part[k])] for k in units}
    check(graph, chip, placed, int(where.max()) + 1)
    out = copy.copy(graph)  # the nodes are shared (read-only); only the placement is new
    out.placement = Placement(dict(chip.doc), strategy, placed)
    return out


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


def _part_traffic(made, part, n, graph) -> tuple[np.ndarray, np.ndarray]:
    """Traffic between parts and from the host to each part, from the unit graph."""
    ids, edges = made["ids"], made["edges"]
    n_units = edges.shape[0]
    label = np.full(n_units, n, np.int64)  # n: the host (input units)
    for k, starts in made["units"].items():
        first = int(ids[k][0])
        label[first:first + starts.size] = part[k]
    agg = sp.coo_matrix((np.ones(n_units), (np.arange(n_units), label)), shape=(n_units, n + 1))
    between = (agg.T @ edges @ agg).toarray()
    return between[:n, :n], between[n, :n]
