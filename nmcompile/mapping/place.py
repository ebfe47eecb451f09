"""Place parts on a chip's cores: in order (`sequential`), or to cut traffic-weighted hops.

`place_by_traffic` is greedy, heaviest-communicating part first, each on the free core with
the fewest traffic-weighted hops to its parts placed so far and to the host port (inputs in,
readouts on the host out); then swaps: each part in turn moves to, or swaps with the part
on, one of its `TRIES` most promising cores when that cuts the total; later sweeps visit
only the parts next to one that moved, until a sweep gains under 1 %.

A part looks only at the cores within `RADIUS` tile columns of its neighbours' weighted
median column (the best column of an L1 cost; the window widens until it holds a free core),
so that 26,000 parts on a row of 204 chips are placed in seconds; a mesh of up to
2 RADIUS + 1 tile columns (two chips of 8) is searched whole. The loops are numba kernels
over the traffic matrix's CSR arrays.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
from numba import njit

from . import mesh
from .chips import Chip

RADIUS = 8  # tile columns each side of a part's best column that it considers
TRIES = 16  # cores a part tries per sweep of the swaps: those that cut its own cost most
SWEEPS = 8


def place_in_order(n: int) -> np.ndarray:
    """Part k on global core k."""
    return np.arange(n, dtype=np.int64)


def place_by_traffic(chip: Chip, traffic_parts: sp.spmatrix, host: np.ndarray) -> np.ndarray:
    """Global core of each part (module docstring) given the traffic between parts (n x n,
    either direction) and between the host and each part."""
    n = traffic_parts.shape[0]
    cores = np.arange(max(n, chip.cores * math.ceil(n / chip.cores)))
    cx, cy = mesh.tiles_of(chip, cores)
    ew, ns = mesh.hops(chip, np.full(cores.size, mesh.HOST), cores)
    from_host = (ew + ns).astype(np.float64)
    arrays = _arrays(_symmetric(traffic_parts), host, cx, cy, from_host)
    return _swaps(*arrays, _greedy(*arrays), SWEEPS)


def swaps(sym: sp.csr_matrix, host: np.ndarray, where: np.ndarray, cx: np.ndarray,
          cy: np.ndarray, from_host: np.ndarray, sweeps: int = SWEEPS) -> np.ndarray:
    """`where` improved by swaps (module docstring), for traffic `sym` between parts (either
    direction). With a[c] the cost of part p on core c (everyone else fixed), swapping p (on
    core h) with q (on c) changes the total by a_p[c] - a_p[h] + a_q[h] - a_q[c] +
    2 T[p, q] d(h, c): each side's change counts their own pair's term as lost, and it does
    not change."""
    return _swaps(*_arrays(_symmetric(sym), host, cx, cy, from_host),
                  np.asarray(where, np.int64).copy(), sweeps)


def _symmetric(t: sp.spmatrix) -> sp.csr_matrix:
    sym = sp.csr_matrix(t + t.T, dtype=np.float64)
    sym.setdiag(0)
    sym.eliminate_zeros()
    sym.sort_indices()
    return sym


def _arrays(sym: sp.csr_matrix, host, cx, cy, from_host) -> tuple:
    """The kernels' arguments: CSR arrays, host traffic, tile coordinates, hops from the
    host, the cores of each tile column, the host's column, the visiting order."""
    host = np.asarray(host, np.float64)
    cx, cy = np.asarray(cx, np.int64), np.asarray(cy, np.int64)
    by_column = np.argsort(cx, kind="stable").reshape(int(cx.max()) + 1, -1)
    order = np.argsort(-(np.asarray(sym.sum(axis=1)).reshape(-1) + host), kind="stable")
    return (sym.indptr.astype(np.int64), sym.indices.astype(np.int64), sym.data, host, cx, cy,
            np.asarray(from_host, np.float64), by_column, int(cx[np.argmin(from_host)]),
            order.astype(np.int64))


@njit(cache=True)
def _candidates(p, indptr, indices, data, host, cx, cy, from_host, by_column, host_column,
                where, free, use_free):
    """(cores, p's cost on each): the cores within RADIUS columns of p's best column (only
    free ones, widening until there is one, when `use_free`)."""
    lo, hi = indptr[p], indptr[p + 1]
    k = 0
    wx = np.empty(hi - lo + 1, np.int64)
    wy = np.empty(hi - lo + 1, np.int64)
    t = np.empty(hi - lo + 1, np.float64)
    for j in range(lo, hi):
        w = where[indices[j]]
        if w >= 0:
            wx[k], wy[k], t[k] = cx[w], cy[w], data[j]
            k += 1
    columns = np.append(wx[:k], host_column)
    weights = np.append(t[:k], host[p])
    total = weights.sum()
    if total > 0:
        order = np.argsort(columns, kind="mergesort")
        acc, centre = 0.0, columns[order[-1]]
        for i in order:
            acc += weights[i]
            if acc >= total / 2:
                centre = columns[i]
                break
    else:  # nothing to be near: the first free core's column
        centre = 0
        if use_free:
            for c in range(free.size):
                if free[c]:
                    centre = cx[c]
                    break
    n_columns = by_column.shape[0]
    radius = RADIUS
    while True:
        a, b = max(0, centre - radius), min(n_columns, centre + radius + 1)
        cand = np.sort(by_column[a:b].copy().reshape(-1))
        if use_free:
            cand = cand[free[cand]]
        if cand.size or (a == 0 and b == n_columns):
            break
        radius *= 2
    cost = host[p] * from_host[cand]
    for i in range(k):
        cost += t[i] * (np.abs(cx[cand] - wx[i]) + np.abs(cy[cand] - wy[i]))
    return cand, cost


@njit(cache=True)
def _greedy(indptr, indices, data, host, cx, cy, from_host, by_column, host_column, order):
    where = np.full(indptr.size - 1, -1, np.int64)
    free = np.ones(cx.size, np.bool_)
    for p in order:
        cand, cost = _candidates(p, indptr, indices, data, host, cx, cy, from_host, by_column,
                                 host_column, where, free, True)
        core = cand[np.argmin(cost)]
        where[p] = core
        free[core] = False
    return where


@njit(cache=True)
def _cost_at(q, core, indptr, indices, data, host, cx, cy, from_host, where):
    total = host[q] * from_host[core]
    for j in range(indptr[q], indptr[q + 1]):
        w = where[indices[j]]
        total += data[j] * (abs(cx[w] - cx[core]) + abs(cy[w] - cy[core]))
    return total


@njit(cache=True)
def _weight(p, q, indptr, indices, data):
    """T[p, q] from p's sorted row."""
    lo, hi = indptr[p], indptr[p + 1]
    k = lo + np.searchsorted(indices[lo:hi], q)
    return data[k] if k < hi and indices[k] == q else 0.0


@njit(cache=True)
def _swaps(indptr, indices, data, host, cx, cy, from_host, by_column, host_column, order,
           where, sweeps):
    occupant = np.full(cx.size, -1, np.int64)
    for p in range(where.size):
        occupant[where[p]] = p
    total = 0.0
    for p in range(where.size):
        total += _cost_at(p, where[p], indptr, indices, data, host, cx, cy, from_host,
                          where) / 2 + host[p] * from_host[where[p]] / 2
    active = np.ones(where.size, np.bool_)  # parts whose neighbourhood changed since their turn
    free = np.zeros(0, np.bool_)
    for _ in range(sweeps):
        moved, cut = 0, 0.0
        for p in order:
            if not active[p]:
                continue
            active[p] = False
            cand, a = _candidates(p, indptr, indices, data, host, cx, cy, from_host,
                                  by_column, host_column, where, free, False)
            h = where[p]
            gain = a - _cost_at(p, h, indptr, indices, data, host, cx, cy, from_host, where)
            tries = np.argsort(gain, kind="mergesort")[:TRIES]
            for k in tries:
                if gain[k] >= -1e-9:
                    break
                c = cand[k]
                q = occupant[c]
                delta = gain[k]
                if q >= 0:
                    d = abs(cx[h] - cx[c]) + abs(cy[h] - cy[c])
                    delta += (_cost_at(q, h, indptr, indices, data, host, cx, cy, from_host,
                                       where)
                              - _cost_at(q, c, indptr, indices, data, host, cx, cy, from_host,
                                         where)
                              + 2 * _weight(p, q, indptr, indices, data) * d)
                if delta < -1e-9:
                    where[p], occupant[c], occupant[h] = c, p, q
                    for j in range(indptr[p], indptr[p + 1]):
                        active[indices[j]] = True
                    if q >= 0:
                        where[q] = h
                        for j in range(indptr[q], indptr[q + 1]):
                            active[indices[j]] = True
                    moved += 1
                    cut -= delta
                    break
        total -= cut
        if moved == 0 or cut < 0.01 * total:  # a sweep that gains under 1 % ends them
            break
    return where
