"""Which groups of target neurons each source neuron reaches, summed by groups of sources.

One question serves the partitioner, the limit check and the traffic count alike: given a
projection from a source layer to a target layer, a group per source neuron (a unit, a core,
or the host for an input), a group per target neuron and a weight per source neuron (a
firing rate, a spike count, or 1), what is

    M[a, b] = sum of w[i] over source neurons i in group a that reach group b,

where i reaches b when some synapse joins i to a target neuron of group b? With groups =
cores and w = spike counts, M counts messages as Loihi's axon routing sends them: one per
spike and destination core, however many synapses it meets there. With w = 1, M's column sums
are a core's input axons and its row sums a core's output axons.

Per projection kind: a dense matrix stores every entry, so each source reaches every group
of the target layer; a sparse one reaches the groups of its listed entries (deduplicated a
block of entries at a time, then once more); a direct link reaches the same neuron; a
convolution's every source neuron walks its kernel taps (a numba kernel: one pass over the
synapses, none of them listed), exact for any grouping.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
from numba import njit

from ..ir.quantized import QConv2d, QDense, QSparse
from ..ir.synapses import axis_reads, conv_fanin

BLOCK = 1 << 22  # sparse entries deduplicated at a time


def sparse_pairs(proj: QSparse, unit_of: np.ndarray, starts: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The distinct (source neuron, target unit) pairs of a sparse projection, as (source,
    first neuron of the unit): computed once, they stand for its synapses whenever the
    groups are unions of units (every core assignment the mapper tries), at a fraction of
    the synapses' count."""
    n_units = starts.size
    keys = np.unique(np.concatenate([
        np.unique(proj.cols[k:k + BLOCK].astype(np.int64) * n_units
                  + unit_of[proj.rows[k:k + BLOCK]])
        for k in range(0, proj.cols.size, BLOCK)] or [np.zeros(0, np.int64)]))
    return keys // n_units, starts[keys % n_units]


def reach(proj, in_shape: tuple[int, ...], out_shape: tuple[int, ...], gs: np.ndarray,
          gt: np.ndarray, w: np.ndarray, n_gs: int, n_gt: int,
          pairs: tuple[np.ndarray, np.ndarray] | None = None) -> sp.csr_matrix:
    """M (n_gs x n_gt) for projection `proj` (None: a direct link) as the module says;
    `pairs` (from `sparse_pairs`) replace a sparse projection's synapses when every unit
    lies in one target group."""
    gs, gt = np.asarray(gs, np.int64), np.asarray(gt, np.int64)
    w = np.asarray(w, np.float64)
    if proj is None:
        return _matrix(gs, gt, w, n_gs, n_gt)
    if isinstance(proj, QDense):
        per_group = np.bincount(gs, w, n_gs)
        present = np.unique(gt)
        a = np.repeat(np.arange(n_gs), present.size)
        b = np.tile(present, n_gs)
        return _matrix(a, b, np.repeat(per_group, present.size), n_gs, n_gt)
    if isinstance(proj, QSparse) and pairs is not None:
        src, first = pairs
        keys = np.unique(src * n_gt + gt[first])
        src, b = keys // n_gt, keys % n_gt
        return _matrix(gs[src], b, w[src], n_gs, n_gt)
    if isinstance(proj, QSparse):
        keys = np.unique(np.concatenate([
            np.unique(proj.cols[k:k + BLOCK].astype(np.int64) * n_gt
                      + gt[proj.rows[k:k + BLOCK]])
            for k in range(0, proj.cols.size, BLOCK)] or [np.zeros(0, np.int64)]))
        src, b = keys // n_gt, keys % n_gt
        return _matrix(gs[src], b, w[src], n_gs, n_gt)
    if isinstance(proj, QConv2d):
        return _conv(proj, in_shape, out_shape, gs, gt, w, n_gs, n_gt)
    raise TypeError(f"not a quantised projection: {type(proj).__name__}")


def _matrix(a: np.ndarray, b: np.ndarray, w: np.ndarray, n_a: int, n_b: int) -> sp.csr_matrix:
    return sp.coo_matrix((w, (a, b)), shape=(n_a, n_b)).tocsr()  # duplicates summed


def _conv(proj: QConv2d, in_shape, out_shape, gs, gt, w, n_gs, n_gt) -> sp.csr_matrix:
    c, h, wd = in_shape
    co, ho, wo = out_shape
    kh, kw = proj.weight.shape[2:]
    (sy, sx), (py, px), (dy, dx) = proj.stride, proj.padding, proj.dilation
    order = np.argsort(gs, kind="stable")  # runs of one source group, for the kernel
    a, b, v = _conv_pairs(order, gs, gt, w, c, h, wd, co, ho, wo, kh, kw, sy, sx, py, px,
                          dy, dx, proj.groups, n_gt)
    return _matrix(a, b, v, n_gs, n_gt)


@njit(cache=True)
def _conv_pairs(order, gs, gt, w, c, h, wd, co, ho, wo, kh, kw, sy, sx, py, px, dy, dx,
                groups, n_gt):
    """(source group, target group, summed weight) of a convolution, exactly: each source
    neuron's taps are walked (tap k of output o reads input o * s - p + k * d), its distinct
    target groups marked with a stamp, its weight added once per group; a run of sources of
    one group is emitted together."""
    cin, cout = c // groups, co // groups
    acc = np.zeros(n_gt)
    stamp = np.full(n_gt, -1, np.int64)   # the last source neuron that reached the group
    run_of = np.full(n_gt, -1, np.int64)  # the last run of sources that reached it
    touched = np.empty(n_gt, np.int64)
    out_a, out_b, out_w = [0], [0], [0.0]  # typed lists; the first entry is dropped
    n_touched = run = 0
    for k in range(order.size + 1):
        if k == order.size or (k > 0 and gs[order[k]] != gs[order[k - 1]]):
            for t in range(n_touched):
                g = touched[t]
                out_a.append(gs[order[k - 1]])
                out_b.append(g)
                out_w.append(acc[g])
                acc[g] = 0.0
            n_touched = 0
            run += 1
            if k == order.size:
                break
        i = order[k]
        if w[i] == 0:
            continue
        ci, rest = i // (h * wd), i % (h * wd)
        y, x = rest // wd, rest % wd
        first = (ci // cin) * cout
        for ky in range(kh):
            num = y + py - ky * dy
            if num < 0 or num % sy:
                continue
            oy = num // sy
            if oy >= ho:
                continue
            for kx in range(kw):
                numx = x + px - kx * dx
                if numx < 0 or numx % sx:
                    continue
                ox = numx // sx
                if ox >= wo:
                    continue
                for o in range(first, first + cout):
                    g = gt[(o * ho + oy) * wo + ox]
                    if stamp[g] != i:
                        stamp[g] = i
                        if run_of[g] != run:
                            run_of[g] = run
                            touched[n_touched] = g
                            n_touched += 1
                        acc[g] += w[i]
    return (np.array(out_a[1:], np.int64), np.array(out_b[1:], np.int64),
            np.array(out_w[1:], np.float64))


def destinations(proj, in_shape: tuple[int, ...], out_shape: tuple[int, ...],
                 gt: np.ndarray, n_gt: int, pairs=None) -> np.ndarray:
    """Per source neuron, the distinct target groups it reaches (with groups = cores: its
    output axons), int64; `reach` a block of sources at a time, to bound the memory."""
    n_src = math.prod(in_shape)
    gt = np.asarray(gt, np.int64)
    if isinstance(proj, QDense):
        return np.full(n_src, np.unique(gt).size, np.int64)
    out = np.zeros(n_src, np.int64)
    step = 1 << 15
    for lo in range(0, n_src, step):
        hi = min(n_src, lo + step)
        w = np.zeros(n_src)
        w[lo:hi] = 1.0  # the others weigh nothing: no entry, or an explicit zero
        gs = np.clip(np.arange(n_src) - lo, 0, hi - lo - 1)
        m = reach(proj, in_shape, out_shape, gs, gt, w, hi - lo, n_gt, pairs)
        out[lo:hi] = np.asarray((m > 0).sum(axis=1)).reshape(-1)
    return out


def fanin(proj, in_shape, out_shape) -> np.ndarray:
    """Stored synapses into each target neuron (flat), int64."""
    n_out = math.prod(out_shape)
    if proj is None:
        return np.ones(n_out, np.int64)
    if isinstance(proj, QDense):
        return np.full(n_out, proj.weight.shape[1], np.int64)
    if isinstance(proj, QSparse):
        return np.bincount(proj.rows, minlength=n_out).astype(np.int64)
    return conv_fanin(proj.weight, in_shape, out_shape, proj.stride, proj.padding,
                      proj.dilation, proj.groups)


def events_into(proj, in_shape, out_shape, sent: np.ndarray) -> np.ndarray:
    """Synaptic events each target neuron receives (flat, float64): per source neuron, what
    it sent times its stored synapses onto that target."""
    sent = np.asarray(sent, np.float64)
    n_out = math.prod(out_shape)
    if proj is None:
        return sent.copy()
    if isinstance(proj, QDense):
        return np.full(n_out, sent.sum())
    if isinstance(proj, QSparse):
        return np.bincount(proj.rows, sent[proj.cols], minlength=n_out)
    c, h, wd = in_shape
    co, ho, wo = out_shape
    kh, kw = proj.weight.shape[2:]
    (sy, sx), (py, px), (dy, dx) = proj.stride, proj.padding, proj.dilation
    pos_y, in_y = axis_reads(h, ho, kh, sy, py, dy)
    pos_x, in_x = axis_reads(wd, wo, kw, sx, px, dx)
    g = proj.groups
    per_group = sent.reshape(g, c // g, h, wd).sum(axis=1)  # every tap of a group alike
    taps = per_group[:, np.clip(pos_y, 0, h - 1)][:, :, :, np.clip(pos_x, 0, wd - 1)]
    mask = in_y[:, :, None, None] & in_x[None, None, :, :]    # (ho, kh, wo, kw)
    per_position = (taps * mask).sum(axis=(2, 4))              # (g, ho, wo)
    return np.repeat(per_position, co // g, axis=0).reshape(-1)

