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

from nmcompile.ir import synapses


def matrix_fanout(weights: np.ndarray, batch: int) -> np.ndarray:
    """A dense matrix stores every entry: each input reaches every output of its block."""
    out, inp = weights.shape[0] // batch, weights.shape[1] // batch
    return synapses.matrix_fanout(weights[:out, :inp])


def sparse_fanout(weights: sp.spmatrix, batch: int) -> np.ndarray:
    """Stored entries per column of the first sample's block."""
    out, inp = weights.shape[0] // batch, weights.shape[1] // batch
    block = sp.csc_matrix(weights)[:out, :inp].tocoo()
    return synapses.sparse_fanout(block.col, block.data, inp)


def conv_fanout(kernel_shape: Sequence[int], input_shape: Sequence[int],
                output_shape: Sequence[int], stride: Sequence[int], padding: Sequence[int],
                dilation: Sequence[int], groups: int) -> np.ndarray:
    """Taps per input neuron of a Lava `Conv` ((X, Y, C) order, kernel (C_out, X, Y, C_in/g)),
    zero weights included: every tap inside the input is a stored synapse. The IR's fan-out
    on (C, X, Y), moved to Lava's order."""
    c_out, kx, ky, cg = kernel_shape
    xi, yi, ci = input_shape
    xo, yo, _ = output_shape
    kernel = np.broadcast_to(np.ones((), bool), (c_out, cg, kx, ky))  # only its shape is read
    fan = synapses.conv_fanout(kernel, (ci, xi, yi), (c_out, xo, yo), stride, padding,
                               dilation, groups)
    return fan.reshape(ci, xi, yi).transpose(1, 2, 0).ravel()
