"""Partition every neuron layer into core-sized pieces (placing them is `place.py`).

- `sequential` (the baseline, what Lava's own compiler does): layers in schedule order, each
  cut into consecutive pieces, the longest that fit a core (bisection on exact counts,
  `sources.run_sources`), pieces on global cores 0, 1, 2, ... (tiles row-major, a tile's
  cores in turn).
- `traffic` works on *units*: consecutive runs of a layer's flat neurons, whole rows of a
  (C, H, W) layer where a row fits or blocks of at most `UNIT` neurons, never larger than a
  core holds. A graph over the units (and the input units, which stay at the host), edge
  weights the spikes per step one unit sends the other (firing rates times reach), is cut by
  METIS (`pymetis`: multilevel k-way partitioning, the standard tool and what SNEAP builds
  on) into as many parts as the capacity needs. `nmcompile.map` keeps these parts only
  when they take no more cores than `sequential`'s pieces (METIS does not weigh axons).

Either way a part that breaks a limit (the unit sums are exact for neurons and synapses, not
for axons) is cut in two, in unit order, until every core fits; `cores=N` cuts the parts with
the most synaptic events until there are at least N.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Callable, Iterator

import numpy as np
import scipy.sparse as sp

from ..errors import LimitError
from ..ir import Graph
from ..ir.neurons import Neuron
from ..ir.quantized import QConv2d, QDense, QSparse
from .chips import Chip
from .loads import LIMITS, Pairs, core_loads, kernel_bits, links, neuron_bits
from .reach import destinations, fanin, reach, sparse_pairs
from .sources import run_sources

UNIT = 64  # neurons per unit of a flat layer, at most an eighth of a core


def unit_starts(shape: tuple[int, ...], bits: np.ndarray, chip: Chip, cores: int | None = None,
                sources: Callable[[int, int], int] | None = None) -> np.ndarray:
    """Start indices of a layer's units (whole rows of a (C, H, W) layer where a row fits):
    one unit for a layer that fits a core, unless at least `cores` cores are asked for
    (then units small enough to give each of them several). A unit is never wider than one
    core's input axons take (`sources(a, b)`: the distinct source neurons of neurons a..b-1,
    tried mid-layer), so that the units of a convolution's output channels that read the
    same window can share one core."""
    n = math.prod(shape)
    if not cores and n <= chip.neurons and int(bits.sum()) <= chip.synapse_memory_bits:
        return np.zeros(1, np.int64)  # a layer that fits one core stays whole: its targets
        # share their sources, which a graph cut cannot see (one message per core, not unit)
    unit = max(1, min(UNIT, chip.neurons // 8,  # a core holds several: room to choose
                      math.ceil(n / (4 * cores)) if cores else UNIT))
    per = max(1, int(bits.max(initial=0)))
    step = max(1, min(unit, chip.neurons, chip.synapse_memory_bits // per, n))
    if sources is not None:
        mid = (shape[1] // 2) * shape[2] if len(shape) == 3 else n // 2
        mid = min(mid, n - step)
        while step > 1 and sources(mid, mid + step) > chip.input_axons:
            step = max(1, step * 3 // 4)
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
            counts = [run_sources(graph, ln, shapes) for ln in links(graph) if ln.target == name]
            out[name] = unit_starts(shapes[name], neuron_bits(graph, chip, name, shapes), chip,
                                    cores, lambda a, b, c=counts: sum(f(a, b) for f in c))
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
            _cut_unit(units, part, k, i, n, shapes, chip)
            n += 1
            recut.add(k)
        if recut:
            pairs = {**pairs, **pairs_of(graph, {k: units[k] for k in recut})}
    raise LimitError(f"the mapping onto chip {chip.name!r} did not converge")


def _cut_unit(units: dict[str, np.ndarray], part: dict[str, np.ndarray], k: str, i: int,
              label: int, shapes, chip: Chip) -> None:
    """Cut unit `i` of layer `k` in two (whole rows while it has several), its second half
    in part `label`, in place."""
    size = math.prod(shapes[k])
    start = int(units[k][i])
    stop = int(units[k][i + 1]) if i + 1 < units[k].size else size
    row = shapes[k][-1] if len(shapes[k]) == 3 and stop - start >= 2 * shapes[k][-1] else 1
    mid = start + (stop - start) // (2 * row) * row  # whole rows while it has two or more
    if mid <= start:
        raise LimitError(f"neurons {start:,} to {stop - 1:,} of layer {k!r} do not fit one "
                         f"core of chip {chip.name!r} even alone (see `nmcompile map` for the "
                         f"core's limits); use a chip with larger cores")
    units[k] = np.insert(units[k], i + 1, mid)
    part[k] = np.insert(part[k], i + 1, label)


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
    """Per layer, its pieces (as units, one part each): from where the last piece ended,
    the longest run of neurons that keeps the core's neurons, synaptic memory and input
    axons (`sources.run_sources`, exact) within the chip's limits, found by bisection.
    `cores` is met afterwards (`at_least`)."""
    shapes = graph.shapes()
    layers = [n for n in graph.schedule() if isinstance(graph[n], Neuron) and n not in host]
    units, piece_of = {}, {}
    for name in reversed(layers):  # a piece's output axons depend on its targets' pieces
        units[name] = _pieces(graph, chip, name, shapes, piece_of)
        piece_of[name] = _expand(units[name], math.prod(shapes[name]),
                                 np.arange(units[name].size))
    part, n = {}, 0
    for name in layers:  # numbered in schedule order
        units[name] = units.pop(name)
        part[name] = np.arange(n, n + units[name].size)
        n += units[name].size
    return {"units": units, "part": part, "n": n, "pairs": pairs_of(graph, units)}


def _pieces(graph: Graph, chip: Chip, name: str, shapes,
            piece_of: dict[str, np.ndarray]) -> np.ndarray:
    """Starts of `sequential`'s pieces of layer `name`, given the pieces of the layers it
    feeds that are cut already (`piece_of`: per neuron, its piece)."""
    size = math.prod(shapes[name])
    into = [ln for ln in links(graph) if ln.target == name]
    counts = [run_sources(graph, ln, shapes) for ln in into]
    cum = np.concatenate([[0], np.cumsum(neuron_bits(graph, chip, name, shapes))])
    out_axons = np.zeros(size, np.int64)
    for ln in links(graph):
        if ln.source == name and ln.target in piece_of:
            tgt = piece_of[ln.target]
            proj = graph[ln.proj] if ln.proj else None
            pairs = None
            if isinstance(proj, QSparse):
                pairs = sparse_pairs(proj, tgt, np.flatnonzero(np.r_[True, np.diff(tgt) != 0]))
            out_axons += destinations(proj, shapes[name], shapes[ln.target], tgt,
                                      int(tgt.max(initial=-1)) + 1, pairs)
    out_cum = np.concatenate([[0], np.cumsum(out_axons)])
    kernel = sum(kernel_bits(graph[ln.proj], chip) for ln in into
                 if ln.proj and isinstance(graph[ln.proj], QConv2d)
                 and chip.conv_stored == "kernel")
    channel = math.prod(shapes[name][1:]) if len(shapes[name]) == 3 else size

    def fits(a: int, b: int) -> bool:
        bits = int(cum[b] - cum[a]) + kernel * ((b - 1) // channel - a // channel + 1)
        return bits <= chip.synapse_memory_bits and \
            int(out_cum[b] - out_cum[a]) <= chip.output_axons and \
            sum(count(a, b) for count in counts) <= chip.input_axons

    starts, a, guess = [], 0, chip.neurons
    while a < size:
        if not fits(a, a + 1):
            raise LimitError(f"neuron {a:,} of layer {name!r} does not fit one core of chip "
                             f"{chip.name!r} even alone (see `nmcompile map` for the core's "
                             f"limits); use a chip with larger cores")
        lo, hi = a + 1, min(size, a + chip.neurons)  # lo fits; the end lies in lo..hi
        probe = a + guess  # a layer's pieces tend to repeat their length: try it first
        if lo < probe < hi:
            if fits(a, probe):
                lo = probe
                if not fits(a, probe + 1):
                    hi = probe
            else:
                hi = probe - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if fits(a, mid):
                lo = mid
            else:
                hi = mid - 1
        starts.append(a)
        guess, a = lo - a, lo
    return np.asarray(starts, np.int64)


def traffic(graph: Graph, chip: Chip, rates: dict[str, np.ndarray], objective: str,
            cores: int | None = None, host: frozenset[str] = frozenset(),
            beat: int | None = None) -> dict[str, np.ndarray] | None:
    """Per layer, the part of each unit: METIS over the unit graph (module docstring), into
    at least `cores` parts; None as soon as the parts it needs exceed `beat` (the cores
    another partition takes), before METIS is run for them."""
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
        if beat is not None and 0.9 * need > beat:  # parts METIS fills, at least
            return None
        if need >= n_units or need > max(64, n_units // 2):  # under two units a part on
            labels, need = np.arange(n_units), n_units  # average: METIS has nothing to choose
        elif need > 1:
            # recursive bisection: k-way METIS into 10^4 parts takes 45 s on the DVS CNN's
            # 22,000 units, bisection 2.5 s, with the same result there and on the reservoir
            with _stdout_to_stderr():
                _, parts = pymetis.part_graph(need, pymetis.CSRAdjacency(sym.indptr,
                                                                         sym.indices),
                                              vweights=vweights, eweights=sym.data,
                                              recursive=True)
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
    return {"units": units, "part": part, "n": int(used.size), "pairs": pairs}


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """METIS's C code prints notes ("***Cannot bisect a graph with 0 vertices!") on the
    process's stdout, where they would corrupt a command's JSON output: send them to stderr
    (C's buffer flushed before fd 1 is given back)."""
    import ctypes

    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        ctypes.CDLL(None).fflush(None)
        os.dup2(saved, 1)
        os.close(saved)


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
    """Cut the part with the most synaptic events in two until there are `cores`: its units
    in halves, or its one unit itself. Returns (units, part, n)."""
    while n < cores:
        events = np.zeros(n)
        for name, starts in units.items():
            np.add.at(events, part[name], _unit_events(graph, name, starts, rates, shapes))
        for big in np.argsort(-events):
            members = [(k, i) for k in units for i in np.flatnonzero(part[k] == big)]
            if len(members) >= 2:
                for k, i in members[len(members) // 2:]:
                    part[k][i] = n
                break
            k, i = members[0]
            stop = units[k][i + 1] if i + 1 < units[k].size else math.prod(shapes[k])
            if stop - units[k][i] >= 2:
                _cut_unit(units, part, k, i, n, shapes, chip)
                break
        else:
            break  # every part is one neuron: no more cuts possible
        n += 1
    return units, part, n
