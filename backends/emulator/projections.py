"""Integer projections over a block of rows (steps x batch), exact.

A matrix projection takes one of two exact routes, by the density of its input: sparse input
(spikes are usually sparse) is accumulated event by event, adding the weight row of each
non-zero input (`accumulate`, numba, parallel over rows); dense input goes through BLAS, which
sums integers exactly in float32 while every partial sum stays below 2^24 and in float64 below
2^53 (numpy's integer matmul uses no BLAS, hence is far slower). Both give the same integers;
tests/test_emulator_hand.py checks them against each other. A convolution takes the same two
routes: sparse input event by event (`conv_accumulate`), dense input by im2col through BLAS.
"""

from __future__ import annotations

import types
import weakref
from collections.abc import Callable

import numba
import numpy as np
import scipy.sparse as sp
from numba import njit, prange
from numpy.lib.stride_tricks import sliding_window_view

from nmcompile.errors import LimitError, NmcompileError
from nmcompile.ir.quantized import ACT_SHIFT, QConv2d, QDense, QSparse, blocks
from nmcompile.ir.synapses import conv_fanout, matrix_fanout, nondecreasing, sparse_fanout

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


def _twin(f: Callable, suffix: str) -> Callable:
    """A copy of f under another name: numba's cache keys a function by name and line, not by
    its compile options, so a serial and a parallel build of one function would share (and
    load) one cached build."""
    twin = types.FunctionType(f.__code__, f.__globals__, f.__name__ + suffix)
    twin.__qualname__ = f.__qualname__ + suffix
    twin.__doc__ = f.__doc__
    return twin


# Threads pay off on many rows only: a parallel loop waits for its slowest thread, and on a
# busy 2-core machine that can be a whole scheduler time slice.
accumulate = njit(cache=True)(_accumulate)
accumulate_parallel = njit(parallel=True, cache=True)(_twin(_accumulate, "_parallel"))
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


def _conv_accumulate(x, wt, cg, s0, s1, p0, p1, d0, d1, buf, out):  # pragma: no cover - compiled
    """Event-driven cross-correlation: for each non-zero x[m, c, h, w], add its weight taps
    wt[c, ky, kx, :] (the output channels of c's group) to the outputs they land on, in a
    channel-last buffer buf[r] (Ho, Wo, C_out), then out[m] (C_out, Ho, Wo) = buf[r] transposed.
    Worker r (one per thread, a single parallel region: each region waits for its slowest
    thread) takes rows r, r + len(buf), ... in its own buffer, which stays in cache (a fresh
    buffer per row would cost its page faults)."""
    rows, c_in, h_in, w_in = x.shape
    _, kh, kw, per_group = wt.shape
    n_buf, ho, wo, c_out = buf.shape
    for r in prange(n_buf):
        b = buf[r]
        for m in range(r, rows, n_buf):
            b[:] = 0
            for c in range(c_in):
                g0 = (c // cg) * per_group
                for h in range(h_in):
                    for w in range(w_in):
                        v = x[m, c, h, w]
                        if v == 0:
                            continue
                        for ky in range(kh):
                            ny = h + p0 - ky * d0
                            if ny < 0:
                                break
                            oy = ny // s0
                            if oy * s0 != ny or oy >= ho:
                                continue
                            for kx in range(kw):
                                nx = w + p1 - kx * d1
                                if nx < 0:
                                    break
                                ox = nx // s1
                                if ox * s1 != nx or ox >= wo:
                                    continue
                                dst, tap = b[oy, ox, g0:g0 + per_group], wt[c, ky, kx]
                                if v == 1:  # a spike: add the taps (1-D views: vectorised)
                                    for j in range(per_group):
                                        dst[j] += tap[j]
                                else:  # a graded value
                                    for j in range(per_group):
                                        dst[j] += v * tap[j]
            o = out[m]
            for y in range(ho):  # a row of b stays in cache while o's rows are written
                by = b[y]
                for k in range(c_out):
                    oky = o[k, y]
                    for z in range(wo):
                        oky[z] = by[z, k]


def _conv_count(x, fanout, nz_fanout, cg, kh, kw, s0, s1, p0, p1, d0, d1, reached,
                counts):  # pragma: no cover - compiled
    """counts[m] = (events, non-zero events) of row m: the fan-outs of its non-zero inputs;
    reached[m, g, oy, ox]: some non-zero input of group g has a tap landing there."""
    rows, c_in, h_in, w_in = x.shape
    ho, wo = reached.shape[2:]
    for m in prange(rows):
        r = reached[m]
        r[:] = False
        events = 0
        nonzero = 0
        for c in range(c_in):
            g = c // cg
            for h in range(h_in):
                for w in range(w_in):
                    if x[m, c, h, w] == 0:
                        continue
                    events += fanout[c, h, w]
                    nonzero += nz_fanout[c, h, w]
                    for ky in range(kh):
                        ny = h + p0 - ky * d0
                        if ny < 0:
                            break
                        oy = ny // s0
                        if oy * s0 != ny or oy >= ho:
                            continue
                        for kx in range(kw):
                            nx = w + p1 - kx * d1
                            if nx < 0:
                                break
                            ox = nx // s1
                            if ox * s1 == nx and ox < wo:
                                r[g, oy, ox] = True
        counts[m, 0] = events
        counts[m, 1] = nonzero


# Event-driven convolution kernels, serial and parallel over rows like `accumulate`: a spike
# adds its taps to a channel-last buffer, whose innermost loop (the output channels of a group)
# is contiguous for both the weights and the sums.
conv_accumulate = njit(cache=True)(_conv_accumulate)
conv_accumulate_parallel = njit(parallel=True, cache=True)(
    _twin(_conv_accumulate, "_parallel"))
conv_count = njit(cache=True)(_conv_count)
conv_count_parallel = njit(parallel=True, cache=True)(_twin(_conv_count, "_parallel"))
PARALLEL_CONV = 1 << 16  # input elements over at least two rows: threads pay off


def _conv(node: QConv2d, in_shape: tuple[int, ...], max_in: int) -> tuple[Op, Count]:
    """(apply, count) of a convolution on inputs (M, C * H * W): apply gives the exact
    `conv(x) << weight_exp` (M, C_out * H_out * W_out), event by event for sparse input,
    else through BLAS by chunked im2col (float32 while a bound on the sums is below 2^24,
    else float64, exact below 2^53: `projection_bound` refuses more); count as `projection`
    says, by the kernels' fan-out over the non-zero inputs."""
    w = node.weight
    c_out, cg, kh, kw = w.shape
    (s0, s1), (p0, p1), (d0, d1), groups = node.stride, node.padding, node.dilation, node.groups
    per_group, exp = c_out // groups, node.weight_exp
    out_shape = node.output_shape(tuple(in_shape), "conv")
    ho, wo = out_shape[1:]
    n_out = c_out * ho * wo
    bound = _row_sum(node) * max(max_in, 1)
    acc = np.int32 if bound << max(exp, 0) < 2**31 else np.int64
    dtype = np.float32 if bound < 2**24 else np.float64
    # wt[c, ky, kx, j] = w[group(c) * per_group + j, c mod cg, ky, kx]: a tap's output channels
    taps = _prepare(w, f"conv_taps_{np.dtype(acc).name}", lambda: np.ascontiguousarray(
        w.reshape(groups, per_group, cg, kh, kw).transpose(0, 2, 3, 4, 1)
        .reshape(groups * cg, kh, kw, per_group), acc))
    geometry = (tuple(in_shape), node.stride, node.padding, node.dilation, groups)

    def fanouts() -> tuple[np.ndarray, np.ndarray]:
        args = (w, in_shape, out_shape, node.stride, node.padding, node.dilation, groups)
        every = conv_fanout(*args).reshape(in_shape)
        return every, every if np.all(w != 0) else conv_fanout(*args, nonzero=True).reshape(
            in_shape)

    fanout, nz_fanout = _prepare(w, f"conv_fanout_{geometry}", fanouts)

    def rows4(x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(x.reshape(x.shape[0], *in_shape))

    def parallel(x: np.ndarray) -> bool:
        return x.shape[0] >= 2 and x.size >= PARALLEL_CONV

    def blas(x: np.ndarray) -> np.ndarray:
        m = x.shape[0]
        wf = _prepare(w, f"conv_cols_{np.dtype(dtype).name}",
                      lambda: w.reshape(groups, per_group, cg * kh * kw).astype(dtype))
        xp = np.pad(x.reshape(m, *in_shape), ((0, 0), (0, 0), (p0, p0), (p1, p1)))
        win = sliding_window_view(xp, (d0 * (kh - 1) + 1, d1 * (kw - 1) + 1), axis=(2, 3))
        win = win[:, :, ::s0, ::s1, ::d0, ::d1]  # (M, C, Ho, Wo, kh, kw)
        out = np.empty((m, groups, per_group, ho * wo), acc)
        step = max(1, CHUNK_BYTES // max(1, win[0].size * np.dtype(dtype).itemsize))
        for a in range(0, m, step):
            for g in range(groups):
                cols = win[a:a + step, g * cg:(g + 1) * cg].transpose(0, 2, 3, 1, 4, 5)
                cols = cols.astype(dtype, order="C").reshape(-1, ho * wo, cg * kh * kw)
                out[a:a + step, g] = (cols @ wf[g].T).transpose(0, 2, 1)  # exact integers
        return out.reshape(m, n_out)

    def apply(x: np.ndarray) -> np.ndarray:
        if x.size and np.count_nonzero(x) >= EVENT_DENSITY * x.size:
            return shift(blas(x), exp)
        m = x.shape[0]
        out = np.empty((m, c_out, ho, wo), acc)
        kernel, n_buf = ((conv_accumulate_parallel, numba.get_num_threads()) if parallel(x)
                         else (conv_accumulate, 1))
        buf = np.empty((max(1, min(m, n_buf)), ho, wo, c_out), acc)
        kernel(rows4(x), taps, cg, s0, s1, p0, p1, d0, d1, buf, out)
        return shift(out.reshape(m, n_out), exp)

    def count(x: np.ndarray) -> tuple[int, int, np.ndarray]:
        m = x.shape[0]
        reached = np.empty((m, groups, ho, wo), bool)
        counts = np.empty((m, 2), np.int64)
        kernel = conv_count_parallel if parallel(x) else conv_count
        kernel(rows4(x), fanout, nz_fanout, cg, kh, kw, s0, s1, p0, p1, d0, d1, reached, counts)
        # an output is reached alike for every channel of its group
        hit = np.broadcast_to(reached[:, :, None], (m, groups, per_group, ho, wo))
        return int(counts[:, 0].sum()), int(counts[:, 1].sum()), hit.reshape(m, n_out)

    return apply, count


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


def _csr(node: QSparse) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """The weights (int64) and the structure (ones) of a QSparse as CSR matrices, built from
    its rows directly: entries stay in their order and a repeated (row, col) stays two
    entries, which the integer products sum exactly as one of their sum would (scipy's own
    construction sorts and merges them, most of a 100M-synapse run's time)."""
    rows = node.rows
    order = None if nondecreasing(rows) else np.argsort(rows, kind="stable")
    cols = node.cols if order is None else node.cols[order]
    values = node.values if order is None else node.values[order]
    indptr = np.zeros(node.shape[0] + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=node.shape[0]), out=indptr[1:])
    indices = cols.astype(np.int32 if node.shape[1] < 2**31 else np.int64)
    w = sp.csr_matrix((values.astype(np.int64), indices, indptr), shape=node.shape)
    structure = sp.csr_matrix((np.ones(len(indices), np.int32), indices, indptr),
                              shape=node.shape)
    return w, structure


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
        w, structure = _prepare(node.values, "csr", lambda: _csr(node))
        fanout = sparse_fanout(node.cols, node.values, node.shape[1])
        nz_fanout = sparse_fanout(node.cols, node.values, node.shape[1], nonzero=True)

        def count_sparse(x: np.ndarray) -> tuple[int, int, np.ndarray]:
            mask = x != 0
            per_col = mask.sum(axis=0, dtype=np.int64)
            reached = np.asarray((structure @ mask.T.astype(np.int32)).T) > 0
            return int(per_col @ fanout), int(per_col @ nz_fanout), reached

        return (lambda x: shift(np.asarray((w @ x.T).T), node.weight_exp)), count_sparse
    if isinstance(node, QConv2d):
        return _conv(node, in_shape, max_in)
    raise NmcompileError(f"the emulator has no projection {type(node).__name__}")
