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
from . import partition, place, reach
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
    rate = _rates(graph, shapes, rates, inputs)

    def cut(made: dict[str, Any]) -> tuple[dict[str, np.ndarray], int, Any]:
        """(part per neuron by layer, parts, sparse pairs): `cores` met, every part fitted."""
        units, part, n, pairs = made["units"], made["part"], made["n"], made["pairs"]
        if cores and n < cores:
            units, part, n = partition.at_least(graph, chip, units, part, n, cores, rate,
                                                shapes)
            pairs = partition.pairs_of(graph, units)
        units, part, n, pairs = partition._split_until_fit(graph, chip, units, part, n, pairs)
        return {k: partition._expand(units[k], math.prod(shapes[k]), part[k])
                for k in units}, n, pairs

    parts, n, pairs = cut(partition.sequential(graph, chip, cores, host))
    if strategy == "sequential":
        where = place.place_in_order(n)
    else:
        # METIS weighs neurons and synaptic memory, not input axons: where its parts break
        # the axons so often that the re-cuts take more cores than consecutive pieces (a
        # convolution over many channels: the DVS CNN), the pieces are kept, placed by traffic
        made = partition.traffic(graph, chip, rate, objective, cores, host, beat=n)
        metis = cut(made) if made is not None else None
        if metis is not None and metis[1] <= n:
            parts, n, pairs = metis
        where = place.place_by_traffic(chip, *_part_traffic(graph, parts, n, rate, pairs))
    placed = {k: where[v] for k, v in parts.items()}
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


def _part_traffic(graph: Graph, parts: dict[str, np.ndarray], n: int,
                  rate: dict[str, np.ndarray], pairs) -> tuple[sp.csr_matrix, np.ndarray]:
    """Messages per step between parts (n x n) and between the host and each part (inputs
    in, readouts on the host out), from the rates: what `place_by_traffic` weighs."""
    shapes = graph.shapes()
    between = sp.csr_matrix((n, n))
    host = np.zeros(n)
    for link in links(graph):
        proj = graph[link.proj] if link.proj else None
        if link.target not in parts:  # to a readout on the host: a message per spike
            if link.source in parts:
                host += np.bincount(parts[link.source], rate[link.source], n)
            continue
        if link.source in parts:
            between = between + reach.reach(
                proj, shapes[link.source], shapes[link.target], parts[link.source],
                parts[link.target], rate[link.source], n, n, pairs.get(link))
        else:
            m = reach.reach(proj, shapes[link.source], shapes[link.target],
                            np.zeros(rate[link.source].size, np.int64), parts[link.target],
                            rate[link.source], 1, n, pairs.get(link))
            host += np.asarray(m.sum(axis=0)).reshape(-1)
    return between.tocsr(), host
