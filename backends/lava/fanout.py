"""Synapses per input neuron of a connection process, from the weights Lava holds.

A synaptic event is one delivered non-zero input reaching one stored synapse (the emulator's
definition), so a projection's events on a step are the sum, over the inputs that are
non-zero, of their fan-out. The fan-outs are computed from the weights read back from the
Lava processes after the run (one sample's diagonal block of a batched network).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp


def matrix_fanout(weights: np.ndarray, batch: int) -> np.ndarray:
    """A dense matrix stores every entry: each input reaches every output of its block."""
    out, inp = weights.shape[0] // batch, weights.shape[1] // batch
    return np.full(inp, out, dtype=np.int64)


def sparse_fanout(weights: sp.spmatrix, batch: int) -> np.ndarray:
    """Stored entries per column of the first sample's block."""
    out, inp = weights.shape[0] // batch, weights.shape[1] // batch
    block = sp.csc_matrix(weights)[:out, :inp]
    return np.diff(block.indptr).astype(np.int64)


def _axis_fanout(size_in: int, size_out: int, k: int, stride: int, pad: int, dil: int
                 ) -> np.ndarray:
    """For each input coordinate, the (output, tap) pairs of one spatial axis reaching it."""
    x, i = np.meshgrid(np.arange(size_out), np.arange(k), indexing="ij")
    pos = (x * stride - pad + i * dil).ravel()
    pos = pos[(pos >= 0) & (pos < size_in)]
    return np.bincount(pos, minlength=size_in).astype(np.int64)


def conv_fanout(kernel_shape: Sequence[int], input_shape: Sequence[int],
                output_shape: Sequence[int], stride: Sequence[int], padding: Sequence[int],
                dilation: Sequence[int], groups: int) -> np.ndarray:
    """Taps per input neuron of a Lava `Conv` ((X, Y, C) order, kernel (C_out, X, Y, C_in/g)),
    zero weights included: every tap inside the input is a stored synapse."""
    c_out, kx, ky, _ = kernel_shape
    xi, yi, ci = input_shape
    xo, yo, _ = output_shape
    fx = _axis_fanout(xi, xo, kx, stride[0], padding[0], dilation[0])
    fy = _axis_fanout(yi, yo, ky, stride[1], padding[1], dilation[1])
    per_channel = c_out // groups
    return (fx[:, None, None] * fy[None, :, None] * np.full((1, 1, ci), per_channel)).ravel()
