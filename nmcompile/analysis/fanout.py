"""Synapses per input element of a projection: its fan-out, the number of synaptic events one
non-zero input delivers. Shared by the emulator's counters and the analysis.

A convolution's fan-out is not its kernel size: near a border, or between strided outputs,
fewer (output, tap) pairs land on an input position, and padding holds no synapse. Per axis,
`taps[k, h]` = 1 when some output position o in [0, out) has `o * stride - pad + k * dil == h`;
then

    fanout[c, h, w] = sum_{k, l} A[c, k, l] * taps_y[k, h] * taps_x[l, w]

with A[c, k, l] the number of output channels (of c's group) whose kernel stores tap (k, l)
for input channel c: C_out / groups for every tap, or the count of non-zero weights.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _reads(size: int, out: int, kernel: int, stride: int, pad: int, dilation: int
           ) -> tuple[np.ndarray, np.ndarray]:
    """(out, kernel): the input position tap k of output o reads along one axis, and whether
    it lies inside the input (padding holds no synapse)."""
    pos = np.arange(out)[:, None] * stride - pad + np.arange(kernel)[None, :] * dilation
    return pos, (pos >= 0) & (pos < size)


def axis_taps(size: int, out: int, kernel: int, stride: int, pad: int, dilation: int
              ) -> np.ndarray:
    """(kernel, size) int64: 1 where kernel tap k of some output position reads input h."""
    pos, inside = _reads(size, out, kernel, stride, pad, dilation)
    taps = np.zeros((kernel, size), np.int64)
    taps[np.nonzero(inside)[1], pos[inside]] = 1
    return taps


def conv_fanout(weight: np.ndarray, in_shape: Sequence[int], out_shape: Sequence[int],
                stride: Sequence[int], padding: Sequence[int], dilation: Sequence[int],
                groups: int, *, nonzero: bool = False) -> np.ndarray:
    """Fan-out (C_in * H * W,) of each input position of a convolution with kernel `weight`
    (C_out, C_in / groups, kH, kW): every stored tap, or only non-zero ones (`nonzero`)."""
    c_out, cg, kh, kw = weight.shape
    per_group = c_out // groups
    stored = (weight != 0) if nonzero else np.ones(weight.shape, bool)
    # A[c, k, l]: output channels of c's group storing tap (k, l) from input channel c
    a = stored.reshape(groups, per_group, cg, kh, kw).sum(axis=1).reshape(groups * cg, kh, kw)
    ty = axis_taps(in_shape[1], out_shape[1], kh, stride[0], padding[0], dilation[0])
    tx = axis_taps(in_shape[2], out_shape[2], kw, stride[1], padding[1], dilation[1])
    return np.einsum("ckl,kh,lw->chw", a.astype(np.int64), ty, tx).reshape(-1)


def matrix_fanout(weight: np.ndarray, *, nonzero: bool = False) -> np.ndarray:
    """Fan-out (in,) of a dense matrix (out, in): it stores every entry, zeros included."""
    if nonzero:
        return np.count_nonzero(weight, axis=0).astype(np.int64)
    return np.full(weight.shape[1], weight.shape[0], np.int64)


def sparse_fanout(cols: np.ndarray, values: np.ndarray, n_in: int, *, nonzero: bool = False
                  ) -> np.ndarray:
    """Fan-out (in,) of a sparse matrix: its listed entries per column."""
    keep = cols[values != 0] if nonzero else cols
    return np.bincount(keep, minlength=n_in).astype(np.int64)


def conv_fanin(weight: np.ndarray, in_shape: Sequence[int], out_shape: Sequence[int],
               stride: Sequence[int], padding: Sequence[int], dilation: Sequence[int],
               groups: int) -> np.ndarray:
    """Stored synapses into each output (C_out * H_out * W_out,) of a convolution: the
    (input channel, tap) pairs of its group that land inside the input."""
    c_out, cg, kh, kw = weight.shape
    fy = _reads(in_shape[1], out_shape[1], kh, stride[0], padding[0], dilation[0])[1].sum(1)
    fx = _reads(in_shape[2], out_shape[2], kw, stride[1], padding[1], dilation[1])[1].sum(1)
    return np.tile(cg * np.outer(fy, fx).astype(np.int64).reshape(-1), c_out)
