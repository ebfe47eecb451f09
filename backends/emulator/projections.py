"""Integer projections over a block of rows (steps x batch), exact.

A matrix projection takes one of two exact routes, by the density of its input: sparse input
(spikes are usually sparse) is accumulated event by event, adding the weight row of each
non-zero input (`accumulate`, numba, parallel over rows); dense input goes through BLAS, which
sums integers exactly in float32 while every partial sum stays below 2^24 and in float64 below
2^53 (numpy's integer matmul uses no BLAS, hence is far slower). Both give the same integers;
tests/test_emulator_hand.py checks them against each other.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
from numba import njit, prange
from numpy.lib.stride_tricks import sliding_window_view

from nmcompile.errors import LimitError, NmcompileError
from nmcompile.ir.quantized import ACT_SHIFT, QConv2d, QDense, QSparse, blocks
from nmcompile.ir.synapses import conv_fanout, matrix_fanout, sparse_fanout

Op = Callable[[np.ndarray], np.ndarray]
Count = Callable[[np.ndarray], tuple[int, int, np.ndarray]]
CHUNK_BYTES = 256 << 20  # im2col working set per chunk
EVENT_DENSITY = 0.25  # below this fraction of non-zero inputs, accumulate event by event


def shift(a: np.ndarray, exp: int) -> np.ndarray:
    """`a << exp`, or an arithmetic (flooring) `a >> -exp` when exp < 0, as Lava does; in
    place (a is a fresh integer array)."""
    if exp > 0:
        a <<= exp
    elif exp < 0:
        a >>= -exp
    return a


def _accumulate(x, wt, out):  # pragma: no cover - compiled
    """out[m] = sum over non-zero x[m, j] of x[m, j] * wt[j]: event-driven x @ wt."""
    rows, n_in = x.shape
    n_out = wt.shape[1]
    for m in prange(rows):
        for k in range(n_out):
            out[m, k] = 0
        for j in range(n_in):
            v = x[m, j]
            if v == 1:  # a spike: add the weight row
                for k in range(n_out):
                    out[m, k] += wt[j, k]
            elif v != 0:  # a graded value
                for k in range(n_out):
                    out[m, k] += v * wt[j, k]


# Threads pay off on many rows only: a parallel loop waits for its slowest thread, and on a
# busy 2-core machine that can be a whole scheduler time slice.
accumulate = njit(cache=True)(_accumulate)
accumulate_parallel = njit(parallel=True, cache=True)(_accumulate)
PARALLEL_ROWS = 2048


_prepared: dict[tuple[int, str], tuple[weakref.ref, object]] = {}


def _prepare(w: np.ndarray, what: str, make: Callable[[], object]) -> object:
    """`make()`, computed once per weight array while it lives: quantised weights are
    read-only, so running the same graph again skips copies and reductions."""
    key = (id(w), what)
    entry = _prepared.get(key)
    if entry is not None and entry[0]() is w:
        return entry[1]
    value = make()
    if not w.flags.writeable:
        for k in [k for k, (ref, _) in _prepared.items() if ref() is None]:
            del _prepared[k]
        _prepared[key] = (weakref.ref(w), value)
    return value


def _abs_row_sum(w: np.ndarray) -> int:
    """Largest sum of |w| over all but the first axis (one output), as a Python int. In
    int64, block by block of rows: the IR stores weights narrow, and np.abs of an int8 -128
    is -128."""
    axes = tuple(range(1, w.ndim))
    return max((int(np.abs(w[rows].astype(np.int64)).sum(axis=axes).max(initial=0))
                for rows in blocks(w)), default=0)


def _matrix_row_sum(w: np.ndarray) -> int:
    """Largest sum of |w| along a row (one output), once per read-only matrix."""
    return _prepare(w, "row_sum", lambda: _abs_row_sum(w))


def _exact_matmul(w: np.ndarray, max_in: int, exp: int) -> Op:
    """x (M, in) int -> (x @ w.T) << exp (M, out), exactly, by the faster route for x. Sums
    accumulate in int32 when a bound on them (after the shift) fits, else in int64."""
    bound = _matrix_row_sum(w) * max(max_in, 1)
    acc = np.int32 if bound << max(exp, 0) < 2**31 else np.int64
    # the narrow weights widened to the sum's type: the kernels and BLAS never see int8
    wt_int = _prepare(w, f"wt_{np.dtype(acc).name}", lambda: np.ascontiguousarray(w.T, acc))
    dtype = np.float32 if bound < 2**24 else np.float64 if bound < 2**53 else None
    wt_float = []  # made on first use: sparse spikes never need it

    def matmul(x: np.ndarray) -> np.ndarray:
        if dtype is None or np.count_nonzero(x) < EVENT_DENSITY * x.size:
            out = np.empty((x.shape[0], wt_int.shape[1]), acc)
            kernel = accumulate_parallel if x.shape[0] >= PARALLEL_ROWS else accumulate
            kernel(np.ascontiguousarray(x), wt_int, out)
        else:
            if not wt_float:
                wt_float.append(wt_int.astype(dtype))
            out = (x.astype(dtype) @ wt_float[0]).astype(acc)
        return shift(out, exp)

    return matmul


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


#: Exactness bounds of the emulator's integer arithmetic: a projection's sum before its
#: shift must stay exact in float64 (the BLAS and convolution routes), a neuron's
#: `dec(u) + (a << 6) + bias` in int64. Beyond them results would wrap without a trace.
EXACT_SUM = 2**53
EXACT_STATE = 2**62


def _row_sum(node) -> int:
    """Largest sum of |weight mantissas| into one output, as a Python int (once per
    read-only weight array, like the emulator's other reductions)."""
    if isinstance(node, QDense):
        return _matrix_row_sum(node.weight)
    if isinstance(node, QSparse):
        def sparse() -> int:
            per_row = np.zeros(node.shape[0], np.int64)
            np.add.at(per_row, node.rows, np.abs(node.values.astype(np.int64)))
            return int(per_row.max(initial=0))

        return _prepare(node.values, "row_sum", sparse)
    if isinstance(node, QConv2d):
        w = node.weight
        return _prepare(w, "row_sum", lambda: _abs_row_sum(w))
    raise NmcompileError(f"the emulator has no projection {type(node).__name__}")


def projection_bound(name: str, node, max_in: int) -> int:
    """A bound on |output| of a projection whose inputs satisfy |x| <= max_in, in Python
    ints; a `LimitError` naming the projection when the emulator could not sum it exactly."""
    total = _row_sum(node) * max(int(max_in), 1)
    if total >= EXACT_SUM:
        raise LimitError(f"projection {name!r}: its sums can reach {total:,} (weights times "
                         f"inputs up to {max_in:,}), beyond the 2^53 the emulator computes "
                         f"exactly; use smaller weights or graded input values")
    return total << node.weight_exp if node.weight_exp > 0 else total


def check_neuron_input(name: str, bounds: list[int]) -> None:
    """Refuse a neuron layer whose summed input `a << 6` could leave int64: the wrap and
    clip the emulator counts as unsafe must be computed on exact values."""
    total = sum(bounds) << ACT_SHIFT
    if total >= EXACT_STATE:
        raise LimitError(f"neuron layer {name!r}: its synaptic input (<< 6) can reach "
                         f"{total:,}, beyond the 2^62 the emulator's 64-bit state arithmetic "
                         f"holds exactly; lower the weight exponents or the input values")


def projection(node, in_shape: tuple[int, ...], max_in: int) -> tuple[Op, Count]:
    """(apply, count): apply maps inputs (M, *in_shape) flattened to (M, in) onto int64
    outputs (M, out); count maps the same inputs to (events, nonzero_events, reached):

        events          = #{(m, i, j): x[m, i] != 0 and synapse i -> j is stored}
        nonzero_events  = #{(m, i, j): x[m, i] != 0 and w[j, i] != 0}
        reached[m, j]   = exists i: x[m, i] != 0 and synapse i -> j is stored

    A dense matrix stores its zeros, a sparse one only its listed entries, a convolution
    every kernel tap that lands inside the input (padding is not a synapse). `reached` is
    (M, out) bool, or (M, 1) where every output is reached alike (a dense matrix)."""
    if isinstance(node, QDense):
        w = node.weight
        mul = _exact_matmul(w, max_in, node.weight_exp)
        nz_col = _prepare(w, "nz_col", lambda: matrix_fanout(w, nonzero=True))
        n_out, full = w.shape[0], int(nz_col.sum()) == w.size

        def count_dense(x: np.ndarray) -> tuple[int, int, np.ndarray]:
            mask = x != 0
            events = int(np.count_nonzero(mask)) * n_out
            nonzero = events if full else int(mask.sum(axis=0, dtype=np.int64) @ nz_col)
            return events, nonzero, mask.any(axis=1)[:, None]

        return mul, count_dense
    if isinstance(node, QSparse):
        w = sp.csr_matrix((node.values, (node.rows, node.cols)), shape=node.shape,
                          dtype=np.int64)
        fanout = sparse_fanout(node.cols, node.values, node.shape[1])
        nz_fanout = sparse_fanout(node.cols, node.values, node.shape[1], nonzero=True)
        structure = sp.csr_matrix((np.ones(len(node.rows), np.int32), (node.rows, node.cols)),
                                  shape=node.shape)

        def count_sparse(x: np.ndarray) -> tuple[int, int, np.ndarray]:
            mask = x != 0
            per_col = mask.sum(axis=0, dtype=np.int64)
            reached = np.asarray((structure @ mask.T.astype(np.int32)).T) > 0
            return int(per_col @ fanout), int(per_col @ nz_fanout), reached

        return (lambda x: shift(np.asarray((w @ x.T).T), node.weight_exp)), count_sparse
    if isinstance(node, QConv2d):
        conv = _conv(node.weight, node, in_shape)
        ones = _conv(np.ones_like(node.weight), node, in_shape)
        nz_fanout = None if np.all(node.weight != 0) else conv_fanout(
            node.weight, in_shape, node.output_shape(in_shape, "conv"), node.stride,
            node.padding, node.dilation, node.groups, nonzero=True)

        def count_conv(x: np.ndarray) -> tuple[int, int, np.ndarray]:
            mask = x != 0
            per_out = ones(mask)  # events arriving at each output: a ones-kernel convolution
            events = int(per_out.sum())
            nonzero = events if nz_fanout is None else int(
                mask.sum(axis=0, dtype=np.int64) @ nz_fanout)
            return events, nonzero, per_out > 0

        return (lambda x: shift(conv(x), node.weight_exp)), count_conv
    raise NmcompileError(f"the emulator has no projection {type(node).__name__}")
