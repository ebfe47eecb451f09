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
convolution is computed row by row: source row (c, y) reaches target rows (c', y') through the
kernel, and a source neuron reaches those rows' groups when its column reaches some target
column (`ir.synapses.axis_reads`). That is exact when no group splits a target row, which the
mapper guarantees (its units are whole rows of a (C, H, W) layer), and otherwise counts each
split row's every group.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp

from ..ir.quantized import QConv2d, QDense, QSparse
from ..ir.synapses import axis_reads

BLOCK = 1 << 22  # sparse entries deduplicated at a time


def reach(proj, in_shape: tuple[int, ...], out_shape: tuple[int, ...], gs: np.ndarray,
          gt: np.ndarray, w: np.ndarray, n_gs: int, n_gt: int) -> sp.csr_matrix:
    """M (n_gs x n_gt) for projection `proj` (None: a direct link) as the module says."""
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
    # source rows (ci, y) -> target rows (co, oy), as flat row indices
    pos_y, in_y = axis_reads(h, ho, kh, sy, py, dy)
    oy, y = np.nonzero(in_y)[0], pos_y[in_y]                        # (target row, source row)
    pos_x, in_x = axis_reads(wd, wo, kw, sx, px, dx)
    reaches = np.zeros(wd, bool)
    reaches[pos_x[in_x]] = True                                      # columns that reach
    g = proj.groups
    cin_g, cout_g = c // g, co // g
    ci = np.arange(c)
    # every (source channel, target channel of its group) pair
    pair_ci = np.repeat(ci, cout_g)
    pair_co = (ci // cin_g)[:, None] * cout_g + np.arange(cout_g)[None, :]
    pair_co = pair_co.reshape(-1)
    src_row = (pair_ci[:, None] * h + y[None, :]).reshape(-1)
    tgt_row = (pair_co[:, None] * ho + oy[None, :]).reshape(-1)
    # each target row's groups; a row is one group when the mapper made the groups
    rows_t = gt.reshape(co * ho, wo)
    first = rows_t[:, 0]
    if np.all(rows_t == first[:, None]):
        row_pairs = np.unique(src_row * n_gt + first[tgt_row])
    else:
        per_row = [np.unique(r) for r in rows_t]
        row_pairs = np.unique(np.concatenate([src_row[k] * n_gt + per_row[t]
                                              for k, t in enumerate(tgt_row)]))
    s_row, b = row_pairs // n_gt, row_pairs % n_gt
    # each source row's weight (reaching columns only), by source group: one group per row
    # when the mapper made the groups (or the host); else each group's columns on their own
    w_rows = w.reshape(c * h, wd) * reaches[None, :]
    gs_rows = gs.reshape(c * h, wd)
    parts = [(gs_rows[:, 0], w_rows.sum(axis=1))]
    if not np.all(gs_rows == gs_rows[:, :1]):
        parts = [(np.full(c * h, k), (w_rows * (gs_rows == k)).sum(axis=1))
                 for k in np.unique(gs_rows)]
    return sum((_matrix(group[s_row], b, weight[s_row], n_gs, n_gt) for group, weight in parts),
               sp.csr_matrix((n_gs, n_gt))).tocsr()


def conv_fanin(proj: QConv2d, in_shape, out_shape) -> np.ndarray:
    """Synapses into each target neuron of a convolution (taps inside the input), flat."""
    c, h, wd = in_shape
    co, ho, wo = out_shape
    kh, kw = proj.weight.shape[2:]
    (sy, sx), (py, px), (dy, dx) = proj.stride, proj.padding, proj.dilation
    cy = axis_reads(h, ho, kh, sy, py, dy)[1].sum(axis=1)
    cx = axis_reads(wd, wo, kw, sx, px, dx)[1].sum(axis=1)
    per = (cy[:, None] * cx[None, :]) * (c // proj.groups)
    return np.broadcast_to(per, (co, ho, wo)).reshape(-1)


def fanin(proj, in_shape, out_shape) -> np.ndarray:
    """Stored synapses into each target neuron (flat), int64."""
    n_out = math.prod(out_shape)
    if proj is None:
        return np.ones(n_out, np.int64)
    if isinstance(proj, QDense):
        return np.full(n_out, proj.weight.shape[1], np.int64)
    if isinstance(proj, QSparse):
        return np.bincount(proj.rows, minlength=n_out).astype(np.int64)
    return conv_fanin(proj, in_shape, out_shape).astype(np.int64)


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

