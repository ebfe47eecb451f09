"""Integer projections over a block of rows (steps x batch), exact.

BLAS sums integers exactly in float32 while every partial sum stays below 2^24, and in
float64 below 2^53; each projection picks the narrowest exact type from a bound on its sums
(numpy's integer matmul uses no BLAS, hence is far slower).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
from numpy.lib.stride_tricks import sliding_window_view

from nmcompile.errors import NmcompileError
from nmcompile.ir.quantized import QConv2d, QDense, QSparse

Op = Callable[[np.ndarray], np.ndarray]
CHUNK_BYTES = 256 << 20  # im2col working set per chunk


def shift(a: np.ndarray, exp: int) -> np.ndarray:
    """`a << exp`, or an arithmetic (flooring) `a >> -exp` when exp < 0, as Lava does."""
    return np.left_shift(a, exp) if exp > 0 else np.right_shift(a, -exp)


def _exact_matmul(w: np.ndarray, max_in: int) -> Op:
    """x (M, in) int -> x @ w.T (M, out) int64, in the narrowest exact float type."""
    bound = int(np.abs(w).sum(axis=1).max(initial=0)) * max(max_in, 1)
    if bound < 2**24:
        wt = np.ascontiguousarray(w.T, dtype=np.float32)
        return lambda x: (x.astype(np.float32) @ wt).astype(np.int64)
    if bound < 2**53:
        wt = np.ascontiguousarray(w.T, dtype=np.float64)
        return lambda x: (x.astype(np.float64) @ wt).astype(np.int64)
    wt = np.ascontiguousarray(w.T)
    return lambda x: x @ wt


def _conv(weight: np.ndarray, node: QConv2d, in_shape: tuple[int, ...]) -> Op:
    """x (M, C, H, W) -> integer cross-correlation (M, C_out * H_out * W_out), chunked im2col."""
    c_out, cg, kh, kw = weight.shape
    (s0, s1), (p0, p1), (d0, d1), groups = node.stride, node.padding, node.dilation, node.groups
    wg = weight.reshape(groups, c_out // groups, cg * kh * kw).astype(np.float64)

    def apply(x: np.ndarray) -> np.ndarray:
        m = x.shape[0]
        x = x.reshape(m, *in_shape)
        xp = np.pad(x, ((0, 0), (0, 0), (p0, p0), (p1, p1))).astype(np.float64)
        win = sliding_window_view(xp, (d0 * (kh - 1) + 1, d1 * (kw - 1) + 1), axis=(2, 3))
        win = win[:, :, ::s0, ::s1, ::d0, ::d1]  # (M, C, Ho, Wo, kh, kw)
        ho, wo = win.shape[2:4]
        out = np.empty((m, groups, c_out // groups, ho * wo), np.int64)
        per_row = max(1, win[0].size * 8)
        step = max(1, CHUNK_BYTES // per_row)
        for a in range(0, m, step):
            for g in range(groups):
                cols = win[a:a + step, g * cg:(g + 1) * cg]  # (m', cg, Ho, Wo, kh, kw)
                cols = cols.transpose(0, 2, 3, 1, 4, 5).reshape(-1, ho * wo, cg * kh * kw)
                out[a:a + step, g] = np.rint(cols @ wg[g].T).transpose(0, 2, 1)
        return out.reshape(m, -1)

    return apply


def projection(node, in_shape: tuple[int, ...], max_in: int) -> tuple[Op, Op]:
    """(apply, events): apply maps inputs (M, *in_shape) flattened to (M, in) onto int64
    outputs (M, out); events counts delivered (non-zero input, stored synapse) pairs."""
    if isinstance(node, QDense):
        mul = _exact_matmul(node.weight, max_in)
        n_out = node.weight.shape[0]
        return (lambda x: shift(mul(x), node.weight_exp),
                lambda x: int(np.count_nonzero(x)) * n_out)
    if isinstance(node, QSparse):
        w = sp.csr_matrix((node.values, (node.rows, node.cols)), shape=node.shape,
                          dtype=np.int64)
        fanout = np.bincount(node.cols, minlength=node.shape[1]).astype(np.int64)
        return (lambda x: shift(np.asarray((w @ x.T).T), node.weight_exp),
                lambda x: int((x != 0).sum(axis=0) @ fanout))
    if isinstance(node, QConv2d):
        conv = _conv(node.weight, node, in_shape)
        ones = _conv(np.ones_like(node.weight), node, in_shape)
        return (lambda x: shift(conv(x), node.weight_exp),
                lambda x: int(ones((x != 0).astype(np.int64)).sum()))
    raise NmcompileError(f"the emulator has no projection {type(node).__name__}")
