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
    pairs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (source core, n: the
    # host; destination core; messages)
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
        pairs.append((np.where(src == mesh.HOST, n, src), m.col, m.data))
    rows, cols, data = (np.concatenate([p[k] for p in pairs] or [np.zeros(0)]) for k in range(3))
    per_pair = sp.coo_matrix((data, (rows.astype(np.int64), cols.astype(np.int64))),
                             shape=(n + 1, n))
    traffic = _traffic(chip, per_pair, to_host, n)
    traffic["core_events"] = {str(c): round(float(e)) for c, e in enumerate(events)}
    return counters, traffic


def _traffic(chip: Chip, per_pair: sp.coo_matrix, to_host: np.ndarray, n: int
             ) -> dict[str, Any]:
    """The traffic dict from the messages of each (source core or host = row n, destination
    core) pair and those to the host, every route at once (`mesh.link_packets`)."""
    per_pair = per_pair.tocsr().tocoo()  # duplicates summed, zeros dropped
    keep = per_pair.data != 0
    a, b = per_pair.row[keep], per_pair.col[keep]
    msgs = np.rint(per_pair.data[keep]).astype(np.int64)
    src = np.where(a == n, mesh.HOST, a)
    ew, ns = mesh.hops(chip, src, b)
    back = np.flatnonzero(to_host)
    back_msgs = np.rint(to_host[back]).astype(np.int64)
    out_ew, out_ns = mesh.hops(chip, np.full(back.size, mesh.HOST), back)  # same route back
    sources = np.concatenate([a, back])
    all_msgs = np.concatenate([msgs, back_msgs])
    all_hops = np.concatenate([ew + ns, out_ew + out_ns])
    key = ["host" if s == n else str(s) for s in range(n + 1)]
    sent = np.bincount(sources, all_msgs, n + 1)
    hops = np.bincount(sources, all_msgs * all_hops, n + 1)
    used = np.unique(sources)
    return {"core_messages": {key[s]: round(float(sent[s])) for s in used},
            "spike_hops": {key[s]: round(float(hops[s])) for s in used},
            "link_packets": mesh.link_packets(chip, src, b, msgs, back, back_msgs),
            "longest_route": (int(ew.max(initial=0)), int(ns.max(initial=0)))}
