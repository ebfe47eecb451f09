"""Spike traffic of a placed graph, counted from what a run sent.

Given how many non-zero values each source neuron sent over a run (spikes, or an input's
non-zero values), every one becomes one message per destination core that holds a target of
it (`reach`), as Loihi's axon routing sends them, and each message crosses the mesh by XY
routing (`mesh`). The counts, totals over the run and batch:

- counters (per source layer, as `RunResult.counters` holds them): `core_messages`,
  `hops_east_west`, `hops_north_south`, `messages_within_tile` (source and destination core
  share a tile, the same core included; inputs never do);
- traffic (`RunResult.traffic`): `core_messages` {core -> messages sent; "host" for inputs},
  `spike_hops` {core -> hops its messages travel}, `link_packets` {"x0,y0->x1,y1" -> packets
  over that directed mesh link; "host->x,y" for the host port}, `core_events` {core ->
  synaptic events its neurons received}, `longest_route` (east-west, north-south hops of
  the longest route a message took).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..ir import Graph
from . import mesh
from .chips import Chip, parse
from .loads import links
from .reach import events_into, reach


def chip_of(graph: Graph) -> Chip:
    return parse(graph.placement.chip, f"the placement of {graph.placement.chip.get('name')!r}")


def count(graph: Graph, sent: dict[str, np.ndarray]) -> tuple[dict[str, dict[str, int]],
                                                              dict[str, Any]]:
    """(counters, traffic) for a placed graph from `sent[layer]`, per neuron (flat)."""
    chip = chip_of(graph)
    cores = graph.placement.cores
    n = graph.placement.n_cores
    shapes = graph.shapes()
    counters = {k: {} for k in ("core_messages", "hops_east_west", "hops_north_south",
                                "messages_within_tile")}
    per_pair = np.zeros((n + 1, n))  # row n: the host
    to_host = np.zeros(n)  # messages from each core to a readout on the host
    events = np.zeros(n)
    for link in links(graph):
        if link.source not in sent:
            continue
        proj = graph[link.proj] if link.proj else None
        placed = link.source in cores
        gs = cores[link.source] if placed else np.zeros(math.prod(shapes[link.source]),
                                                         np.int64)
        if link.target not in cores:  # a readout on the host: one message per value sent
            m = sp.coo_matrix(np.bincount(gs, sent[link.source], n)[:, None])
            ew, ns = mesh.hops(chip, np.full(m.nnz, mesh.HOST), m.row)  # the way back
            for key, value in (("core_messages", m.data), ("hops_east_west", m.data * ew),
                               ("hops_north_south", m.data * ns)):
                counters[key][link.source] = counters[key].get(link.source, 0) + \
                    round(float(np.sum(value)))
            counters["messages_within_tile"].setdefault(link.source, 0)
            np.add.at(to_host, m.row, m.data)
            continue
        if proj is not None:
            events += np.bincount(cores[link.target], events_into(
                proj, shapes[link.source], shapes[link.target], sent[link.source]), n)
        m = reach(proj, shapes[link.source], shapes[link.target], gs, cores[link.target],
                  sent[link.source], n if placed else 1, n).tocoo()
        src = m.row if placed else np.full(m.nnz, mesh.HOST)
        ew, ns = mesh.hops(chip, src, m.col)
        within = mesh.same_tile(chip, src, m.col)
        for key, value in (("core_messages", m.data), ("hops_east_west", m.data * ew),
                           ("hops_north_south", m.data * ns),
                           ("messages_within_tile", m.data * within)):
            counters[key][link.source] = counters[key].get(link.source, 0) + \
                round(float(np.sum(value)))
        np.add.at(per_pair, (np.where(src == mesh.HOST, n, src), m.col), m.data)
    traffic = _traffic(chip, per_pair, to_host, n)
    traffic["core_events"] = {str(c): round(float(e)) for c, e in enumerate(events)}
    return counters, traffic


def _traffic(chip: Chip, per_pair: np.ndarray, to_host: np.ndarray, n: int
             ) -> dict[str, Any]:
    sent: dict[str, int] = {}
    hops: dict[str, int] = {}
    packets: dict[str, int] = {}
    longest = [0, 0]
    for a, b in zip(*np.nonzero(per_pair), strict=True):
        msgs = round(float(per_pair[a, b]))
        src = mesh.HOST if a == n else int(a)
        key = "host" if src == mesh.HOST else str(src)
        route = mesh.route(chip, src, int(b))
        ew = sum(1 for x0, y0, _, y1 in route
                 if (chip.host_side in ("west", "east") if x0 < 0 else y0 == y1))
        longest = [max(longest[0], ew), max(longest[1], len(route) - ew)]
        sent[key] = sent.get(key, 0) + msgs
        hops[key] = hops.get(key, 0) + msgs * len(route)
        for x0, y0, x1, y1 in route:
            name = f"host->{x1},{y1}" if x0 < 0 else f"{x0},{y0}->{x1},{y1}"
            packets[name] = packets.get(name, 0) + msgs
    for a in np.flatnonzero(to_host):  # to a readout on the host: XY to the host tile, out
        msgs = round(float(to_host[a]))
        route = mesh.route(chip, int(a), mesh.HOST)
        sent[str(a)] = sent.get(str(a), 0) + msgs
        hops[str(a)] = hops.get(str(a), 0) + msgs * len(route)
        for x0, y0, x1, y1 in route:
            name = f"{x0},{y0}->host" if x1 < 0 else f"{x0},{y0}->{x1},{y1}"
            packets[name] = packets.get(name, 0) + msgs
    return {"core_messages": sent, "spike_hops": hops, "link_packets": packets,
            "longest_route": tuple(longest)}
