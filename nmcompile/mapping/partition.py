"""Partition every neuron layer into core-sized pieces and place the pieces on cores.

Both strategies work on *units*: consecutive runs of a layer's flat neurons, whole rows of a
(C, H, W) layer (so that no core splits a row: `reach` is then exact for convolutions) or
blocks of `UNIT` neurons of a flat one, never larger than a core holds.

- `sequential` (the baseline, what Lava's own compiler does): layers in schedule order, each
  cut into consecutive pieces, the largest that fit a core (greedy over units, in order),
  pieces on global cores 0, 1, 2, ... (tiles row-major, a tile's cores in turn).
- `traffic`: a graph over the units (and the input units, which stay at the host), edge
  weights the spikes per step one unit sends the other (firing rates times reach), cut by
  METIS (`pymetis`: multilevel k-way partitioning, the standard tool and what SNEAP builds
  on; it cuts a 10^4-unit graph in well under a second) into as many parts as the capacity
  needs, then placed greedily: each part, in order of traffic, on the free core with the
  fewest traffic-weighted hops to the parts already placed and to the host.

Either way a part that breaks a limit (the unit sums are exact for neurons and synapses, not
for axons) is cut in two, in unit order, until every core fits; `cores=N` cuts the parts with
the most synaptic events until there are at least N.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import scipy.sparse as sp

from ..errors import LimitError
from ..ir import Graph
from ..ir.neurons import Neuron
from ..ir.quantized import QConv2d, QDense, QSparse
from ..ir.synapses import axis_reads
from . import mesh
from .chips import Chip
from .loads import LIMITS, Pairs, core_loads, kernel_bits, links, neuron_bits
from .reach import fanin, reach, sparse_pairs

UNIT = 64  # neurons per unit of a flat layer, at most an eighth of a core


def unit_starts(shape: tuple[int, ...], bits: np.ndarray, chip: Chip, cores: int | None = None,
                fan_in: float = 0.0) -> np.ndarray:
    """Start indices of a layer's units (whole rows of a (C, H, W) layer): one unit for a
    layer that fits a core, unless at least `cores` cores are asked for (then units small
    enough to give each of them several). A unit holds at most a quarter of what one core's
    input axons take at the layer's mean fan-in (`fan_in` source neurons per neuron), so
    that a part can take the shape that shares its sources best."""
    n = math.prod(shape)
    if not cores and n <= chip.neurons and int(bits.sum()) <= chip.synapse_memory_bits:
        return np.zeros(1, np.int64)  # a layer that fits one core stays whole: its targets
        # share their sources, which a graph cut cannot see (one message per core, not unit)
    unit = max(1, min(UNIT, chip.neurons // 8,  # a core holds several: room to choose
                      math.ceil(n / (4 * cores)) if cores else UNIT,
                      int(4 * chip.input_axons / fan_in) if fan_in else UNIT))
    per = max(1, int(bits.max(initial=0)))
    step = max(1, min(unit, chip.neurons, chip.synapse_memory_bits // per))
    if len(shape) == 3 and step >= shape[-1]:
        step -= step % shape[-1]  # whole rows, never across a channel (H * W is a multiple)
    return np.arange(0, n, step)


def _units(graph: Graph, chip: Chip, cores: int | None, host: frozenset[str]
           ) -> dict[str, np.ndarray]:
    """Per placed neuron layer (not those the host reads out), its units' starts."""
    shapes = graph.shapes()
    out = {}
    for name in graph.schedule():
        if isinstance(graph[name], Neuron) and name not in host:
            fan = sum(float(fanin(graph[ln.proj] if ln.proj else None, shapes[ln.source],
                                  shapes[name]).mean())
                      for ln in links(graph) if ln.target == name)
            out[name] = unit_starts(shapes[name], neuron_bits(graph, chip, name, shapes), chip,
                                    cores, fan)
    return out


def _expand(starts: np.ndarray, n: int, values: np.ndarray) -> np.ndarray:
    """Per neuron, the value of its unit."""
    return np.repeat(values, np.diff(np.append(starts, n)))


def pairs_of(graph: Graph, units: dict[str, np.ndarray]) -> Pairs:
    """Each sparse link's distinct (source, target unit) pairs (`reach.sparse_pairs`)."""
    sizes = {k: math.prod(s) for k, s in graph.shapes().items()}
    out = {}
    for link in links(graph):
        if link.proj and isinstance(graph[link.proj], QSparse) and link.target in units:
            starts = units[link.target]
            unit_of = _expand(starts, sizes[link.target], np.arange(starts.size))
            out[link] = sparse_pairs(graph[link.proj], unit_of, starts)
    return out


def _fits(graph: Graph, chip: Chip, cores: dict[str, np.ndarray], n: int,
          pairs: Pairs | None = None) -> np.ndarray:
    """Per core, whether it keeps every limit."""
    loads = core_loads(graph, chip, cores, n, pairs)
    ok = np.ones(n, bool)
    for key in LIMITS:
        ok &= getattr(loads, key) <= loads.limit(chip, key)
    return ok


def _split_until_fit(graph: Graph, chip: Chip, units: dict[str, np.ndarray],
                     part: dict[str, np.ndarray], n: int, pairs: Pairs):
    """Cut over-full parts in two (their units in layer and index order) until all fit; a
    part of one unit too large (its fan-in lists past the input axons, say) cuts the unit
    itself, down to one neuron. Returns (units, part, n,
    pairs), the pairs of re-cut layers recomputed."""
    shapes = graph.shapes()
    sizes = {k: math.prod(s) for k, s in shapes.items()}
    for _ in range(256):
        cores = {k: _expand(units[k], sizes[k], part[k]) for k in units}
        ok = _fits(graph, chip, cores, n, pairs)
        if ok.all():
            return units, part, n, pairs
        recut = set()
        for bad in np.flatnonzero(~ok):
            members = [(k, i) for k in units for i in np.flatnonzero(part[k] == bad)]
            if len(members) >= 2:
                for k, i in members[len(members) // 2:]:
                    part[k][i] = n
                n += 1
                continue
            k, i = members[0]
            start = int(units[k][i])
            stop = int(units[k][i + 1]) if i + 1 < units[k].size else sizes[k]
            row = shapes[k][-1] if len(shapes[k]) == 3 and stop - start > shapes[k][-1] else 1
            mid = start + (stop - start) // (2 * row) * row  # whole rows while it has several
            if mid <= start:
                raise LimitError(f"neurons {start:,} to {stop - 1:,} of layer {k!r} do not fit "
                                 f"one core of chip {chip.name!r} even alone (see `nmcompile "
                                 f"map` for the core's limits); use a chip with larger cores")
            units[k] = np.insert(units[k], i + 1, mid)
            part[k] = np.insert(part[k], i + 1, n)
            n += 1
            recut.add(k)
        if recut:
            pairs = {**pairs, **pairs_of(graph, {k: units[k] for k in recut})}
    raise LimitError(f"the mapping onto chip {chip.name!r} did not converge")


def _unit_costs(graph: Graph, chip: Chip, units: dict[str, np.ndarray]):
    """Per layer, each unit's (neurons, synapse bits) as arrays."""
    shapes = graph.shapes()
    out = {}
    for name, starts in units.items():
        n = math.prod(shapes[name])
        bounds = np.append(starts, n)
        bits = np.add.reduceat(neuron_bits(graph, chip, name, shapes), starts) if n else []
        kernel = sum(kernel_bits(graph[ln.proj], chip) for ln in links(graph)
                     if ln.target == name and ln.proj and isinstance(graph[ln.proj], QConv2d)
                     and chip.conv_stored == "kernel")
        out[name] = (np.diff(bounds), np.asarray(bits, np.int64) + kernel)
    return out


def sequential(graph: Graph, chip: Chip, cores: int | None = None,
               host: frozenset[str] = frozenset()) -> dict[str, np.ndarray]:
    """Per layer, the part of each unit: consecutive pieces, each the largest run of units
    from where the last one ended that keeps the core's neurons, synaptic memory and input
    axons (counted exactly, source by source) within the chip's limits."""
    units = _units(graph, chip, cores, host)
    costs = _unit_costs(graph, chip, units)
    pairs = pairs_of(graph, units)
    shapes = graph.shapes()
    part, n = {}, 0
    for name, (neurons, bits) in costs.items():
        feeds = [_unit_sources(graph, ln, units[name], pairs.get(ln), shapes)
                 for ln in links(graph) if ln.target == name]
        seen = [np.zeros(size, bool) for _, size in feeds]
        labels = np.empty(neurons.size, np.int64)
        used_n = used_b = used_a = 0
        n_here = n
        for i, (a, b) in enumerate(zip(neurons.tolist(), bits.tolist(), strict=True)):
            fresh = [np.unique(ids[i]) for ids, _ in feeds]
            new = [v[~mask[v]] for v, mask in zip(fresh, seen, strict=True)]
            axons = sum(v.size for v in new)
            if used_n and (used_n + a > chip.neurons or used_b + b > chip.synapse_memory_bits
                           or used_a + axons > chip.input_axons):
                n_here += 1
                used_n = used_b = used_a = 0
                for mask in seen:
                    mask[:] = False
                new = fresh
                axons = sum(v.size for v in new)
            for v, mask in zip(new, seen, strict=True):
                mask[v] = True
            labels[i] = n_here
            used_n, used_b, used_a = used_n + a, used_b + b, used_a + axons
        part[name] = labels
        n = n_here + 1
    return {"units": units, "part": part, "n": n, "pairs": pairs}


def _unit_sources(graph: Graph, link, starts: np.ndarray, pairs, shapes):
    """(per unit, the source neurons feeding it; the number of source neurons): a dense
    projection's every source feeds every unit, a convolution's the windows of its
    target rows' columns."""
    proj = graph[link.proj] if link.proj else None
    n_src = math.prod(shapes[link.source])
    n_tgt = math.prod(shapes[link.target])
    bounds = np.append(starts, n_tgt)
    if proj is None:
        return [np.arange(a, b) for a, b in itertools.pairwise(bounds)], n_src
    if isinstance(proj, QDense):
        every = np.arange(n_src)
        return [every] * starts.size, n_src
    if isinstance(proj, QSparse):
        src, first = pairs
        order = np.argsort(first, kind="stable")
        cut = np.searchsorted(first[order], starts)
        return np.split(src[order], cut[1:]), n_src
    c, h, wd = shapes[link.source]
    co, ho, wo = shapes[link.target]
    kh, kw = proj.weight.shape[2:]
    (sy, sx), (py, px), (dy, dx) = proj.stride, proj.padding, proj.dilation
    pos_y, in_y = axis_reads(h, ho, kh, sy, py, dy)
    pos_x, in_x = axis_reads(wd, wo, kw, sx, px, dx)
    cin = c // proj.groups
    out = []
    for a, b in itertools.pairwise(bounds):
        ids = []
        for r in range(a // wo, (b - 1) // wo + 1):  # target rows (co * ho + oy) of the unit
            c0, c1 = max(a, r * wo) - r * wo, min(b, (r + 1) * wo) - r * wo  # its columns
            tco, toy = r // ho, r % ho
            ys = pos_y[toy][in_y[toy]]
            xs = np.unique(pos_x[c0:c1][in_x[c0:c1]])
            cis = (tco // (co // proj.groups)) * cin + np.arange(cin)
            ids.append(((cis[:, None, None] * h + ys[None, :, None]) * wd
                        + xs[None, None, :]).reshape(-1))
        out.append(np.concatenate(ids))
    return out, c * h * wd


def traffic(graph: Graph, chip: Chip, rates: dict[str, np.ndarray], objective: str,
            cores: int | None = None, host: frozenset[str] = frozenset()
            ) -> dict[str, np.ndarray]:
    """Per layer, the part of each unit: METIS over the unit graph (module docstring), into
    at least `cores` parts."""
    import pymetis

    units = _units(graph, chip, cores, host)
    costs = _unit_costs(graph, chip, units)
    shapes = graph.shapes()
    offset, ids, n_units = {}, {}, 0
    inputs = graph.inputs
    for name in [*inputs, *units]:
        n = math.prod(shapes[name])
        starts = units[name] if name in units else unit_starts(shapes[name], np.zeros(1),
                                                                  chip)  # inputs, as layers
        offset[name] = n_units
        ids[name] = _expand(starts, n, np.arange(starts.size)) + n_units
        n_units += starts.size
    edges = sp.csr_matrix((n_units, n_units))
    together = sp.csr_matrix((n_units, n_units))
    pairs = pairs_of(graph, units)
    for link in links(graph):
        if link.target not in units:  # read out by the host
            continue
        proj = graph[link.proj] if link.proj else None
        edges = edges + reach(proj, shapes[link.source], shapes[link.target], ids[link.source],
                              ids[link.target], rates[link.source], n_units, n_units,
                              pairs.get(link))
        together = together + _co_targets(proj, shapes[link.source], shapes[link.target],
                                          ids[link.target], rates[link.source], n_units,
                                          pairs.get(link))
    sym = (edges + edges.T + together).tocsr()
    sym.setdiag(0)
    sym.eliminate_zeros()
    top = sym.data.max(initial=0.0)
    sym.data = np.maximum(1, np.rint(sym.data * (1e6 / top if top else 1))).astype(np.int64)
    weight = np.zeros(n_units, np.float64)
    for name, (neurons, bits) in costs.items():
        fill = np.maximum(neurons / chip.neurons, bits / chip.synapse_memory_bits)
        if objective == "latency":  # balance synaptic events: rate-weighted fan-in
            events = _unit_events(graph, name, units[name], rates, shapes)
            fill = np.maximum(fill, events / max(events.sum(), 1e-12) * fill.sum())
        weight[offset[name]:offset[name] + neurons.size] = fill
    need = max(cores or 1, math.ceil(weight.sum() / 0.9))
    vweights = np.rint(weight * 1000).astype(np.int64)
    mapped = np.zeros(n_units, bool)
    size = np.zeros((n_units, 2))
    for name, (neurons, bits) in costs.items():
        at = slice(offset[name], offset[name] + neurons.size)
        mapped[at] = True
        size[at] = np.stack([neurons / chip.neurons, bits / chip.synapse_memory_bits], 1)
    sizes = {k: math.prod(shapes[k]) for k in units}
    for _ in range(8):  # more parts while the axons (which METIS does not weigh) overflow
        if need >= n_units:  # METIS cannot cut fewer vertices than parts: one unit each
            labels, need = np.arange(n_units), n_units
        elif need > 1:
            _, parts = pymetis.part_graph(need, pymetis.CSRAdjacency(sym.indptr, sym.indices),
                                          vweights=vweights, eweights=sym.data)
            labels = np.asarray(parts, np.int64)
            _rebalance(labels, mapped, size, sym, need)
        else:
            labels = np.zeros(n_units, np.int64)
        part = {k: labels[offset[k]:offset[k] + units[k].size].copy() for k in units}
        loads = core_loads(graph, chip, {k: _expand(units[k], sizes[k], part[k])
                                         for k in units}, need, pairs)
        fill = np.max([getattr(loads, key) / loads.limit(chip, key) for key in LIMITS], axis=0)
        # a few parts over a limit are cut in two afterwards; many mean too few parts
        if np.mean(fill > 1) <= 0.1 or need >= n_units:
            break
        need = max(need + 1, math.ceil(need * float(np.quantile(fill, 0.9))))
    used = np.unique(np.concatenate(list(part.values())))  # renumber: no empty part
    remap = np.full(need, -1, np.int64)
    remap[used] = np.arange(used.size)
    part = {k: remap[v] for k, v in part.items()}
    return {"units": units, "part": part, "n": int(used.size), "ids": ids, "edges": edges,
            "pairs": pairs}


def _rebalance(labels: np.ndarray, mapped: np.ndarray, size: np.ndarray, sym: sp.csr_matrix,
               parts: int) -> None:
    """Move units out of parts that METIS filled past a core (its balance is a tolerance,
    not a limit), each to the part with room it is most connected to, in place. `size`
    holds each unit's (neurons, synapse bits) as fractions of a core."""
    fill = np.zeros((parts, 2))
    np.add.at(fill, labels[mapped], size[mapped])
    for _ in range(int(mapped.sum())):
        over = np.flatnonzero((fill > 1).any(axis=1))
        if not over.size:
            return
        p = int(over[0])
        members = np.flatnonzero(mapped & (labels == p))
        best = None
        for u in members:  # the member with the strongest tie to a part that has room
            row = sym.getrow(u)
            ties = np.zeros(parts)
            np.add.at(ties, labels[row.indices], row.data)
            room = ((fill + size[u]) <= 1).all(axis=1)
            room[p] = False
            if room.any():
                q = int(np.argmax(np.where(room, ties + 1e-9, -np.inf)))
                if best is None or ties[q] > best[0]:
                    best = (ties[q], u, q)
        if best is None:
            return  # no part has room: the caller cuts this one in two
        _, u, q = best
        labels[u] = q
        fill[p] -= size[u]
        fill[q] += size[u]


def _co_targets(proj, in_shape, out_shape, tgt_units: np.ndarray, rate: np.ndarray,
                n_units: int, pairs=None) -> sp.csr_matrix:
    """Affinity between target units that share sources: a spike costs one message per
    core its targets occupy (a hyperedge over its target units), which a cut of
    source-target edges does not see. Each source (a neuron, or a row of a convolution's
    input: its neurons reach the same units) adds `rate / (k - 1)` between every pair of
    its k target units (the clique model of a hyperedge). A dense projection reaches every
    unit of its target layer whatever the partition: it adds nothing."""
    if isinstance(proj, QDense):
        return sp.csr_matrix((n_units, n_units))
    n_src = math.prod(in_shape)
    atoms = (np.arange(n_src) // in_shape[-1] if isinstance(proj, QConv2d)
             else np.arange(n_src))  # a convolution's source rows; else each neuron
    n_atoms = int(atoms[-1]) + 1 if n_src else 0
    r = reach(proj, in_shape, out_shape, atoms, tgt_units, rate, n_atoms, n_units,
              pairs).tocsr()
    r.eliminate_zeros()
    k = np.diff(r.indptr)
    weight = np.zeros(n_atoms)
    rows = np.repeat(np.arange(n_atoms), k)
    np.maximum.at(weight, rows, r.data)
    scale = np.where(k > 1, weight / np.maximum(k - 1, 1), 0.0)
    binary = sp.csr_matrix((np.ones(r.nnz), r.indices, r.indptr), shape=r.shape)
    co = (binary.T @ sp.diags(scale) @ binary).tocsr()
    co.setdiag(0)
    return co


def _unit_events(graph, name, starts, rates, shapes) -> np.ndarray:
    events = np.zeros(math.prod(shapes[name]))
    for link in links(graph):
        if link.target == name:
            proj = graph[link.proj] if link.proj else None
            events += fanin(proj, shapes[link.source], shapes[name]) * \
                float(np.mean(rates[link.source]))
    return np.add.reduceat(events, starts)


def at_least(graph, chip, units, part, n, cores: int, rates, shapes):
    """Cut the parts with the most synaptic events in two until there are `cores`."""
    while n < cores:
        events = np.zeros(n)
        for name, starts in units.items():
            np.add.at(events, part[name], _unit_events(graph, name, starts, rates, shapes))
        order = np.argsort(-events)
        for big in order:
            members = [(k, i) for k in units for i in np.flatnonzero(part[k] == big)]
            if len(members) >= 2:
                break
        else:
            break  # every part is one unit: no more cuts possible
        for k, i in members[len(members) // 2:]:
            part[k][i] = n
        n += 1
    return part, n


def place_in_order(n: int) -> np.ndarray:
    """Part k on global core k."""
    return np.arange(n, dtype=np.int64)


def place_by_traffic(chip: Chip, traffic_parts: np.ndarray, host: np.ndarray) -> np.ndarray:
    """Global core of each part: greedy, heaviest-communicating first, each on the free core
    with the fewest traffic-weighted hops to the parts placed so far and to the host."""
    n = traffic_parts.shape[0]
    candidates = np.arange(max(n, chip.cores * math.ceil(n / chip.cores)))
    cx, cy = mesh.tiles_of(chip, candidates)
    dist = np.abs(cx[:, None] - cx[None, :]) + np.abs(cy[:, None] - cy[None, :])
    ew, ns = mesh.hops(chip, np.full(candidates.size, mesh.HOST), candidates)
    from_host = ew + ns
    sym = traffic_parts + traffic_parts.T
    order = np.argsort(-(sym.sum(axis=1) + host))
    where = np.full(n, -1, np.int64)
    free = np.ones(candidates.size, bool)
    placed: list[int] = []
    for p in order:
        cost = host[p] * from_host.astype(np.float64)
        if placed:
            cost = cost + dist[:, where[placed]] @ sym[p, placed]
        cost[~free] = np.inf
        core = int(np.argmin(cost))
        where[p] = core
        free[core] = False
        placed.append(int(p))
    return _swaps(sym, host, where, dist, from_host)


def _swaps(sym: np.ndarray, host: np.ndarray, where: np.ndarray, dist: np.ndarray,
           from_host: np.ndarray, rounds: int = 500) -> np.ndarray:
    """Improve a placement by the best swap of two parts (or of a part and a free core) while
    one cuts the traffic-weighted hops. Free cores are parts with no traffic, so that a move
    is a swap too. With A[p, c] = the cost of part p on core c given everyone else, swapping
    p and q changes the cost by A[p, w_q] - A[p, w_p] + A[q, w_p] - A[q, w_q] + 2 T[p, q]
    d(w_p, w_q) (the pair's own term does not change)."""
    n, m = where.size, dist.shape[0]
    t = np.zeros((m, m))
    t[:n, :n] = sym
    h = np.zeros(m)
    h[:n] = host
    free = np.setdiff1d(np.arange(m), where)
    pos = np.concatenate([where, free]).astype(np.int64)  # slot of every part, dummies last
    for _ in range(rounds):
        a = t @ dist[pos, :] + h[:, None] * from_host[None, :]
        aw = a[:, pos]
        own = np.diag(aw)
        delta = aw - own[:, None] + aw.T - own[None, :] + 2 * t * dist[np.ix_(pos, pos)]
        p, q = np.unravel_index(int(np.argmin(delta)), delta.shape)
        if delta[p, q] >= -1e-9:
            break
        pos[p], pos[q] = pos[q], pos[p]
    return pos[:n]
