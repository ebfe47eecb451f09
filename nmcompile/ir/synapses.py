"""Which synapses a projection stores, and how many each neuron sends or receives: the one
home of convolution geometry and fan-out, shared by the IR, the analysis and every backend.

A synapse is a stored (input element, output element) pair. A dense matrix stores every
entry, zeros included; a sparse one its listed entries; a convolution every kernel tap that
lands inside the input (padding holds no synapse), zero weights included. Geometry follows
`torch.nn.functional.conv2d` on (C, H, W) features: along one axis, tap k of output o reads
input position `o * stride - pad + k * dilation`.

A convolution's fan-out is not its kernel size: near a border, or between strided outputs,
fewer (output, tap) pairs land on an input position. Per axis, `taps[k, h]` = 1 when some
output position o has `o * stride - pad + k * dil == h` (at most one o does); then

    fanout[c, h, w] = sum_{k, l} A[c, k, l] * taps_y[k, h] * taps_x[l, w]

with A[c, k, l] the number of output channels (of c's group) whose kernel stores tap (k, l)
for input channel c: C_out / groups for every tap, or the count of non-zero weights.

Numpy only: no PyTorch, and nothing from the analysis or the backends.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Literal

import numpy as np

#: Axis orders `conv_synapses` can list its synapses in (outermost first): by kernel
#: (output channel, input channel of the group, tap y, tap x, output y, output x), or by
#: output (output channel, output y, output x, input channel, tap y, tap x).
SYNAPSE_ORDERS = {"kernel": ("co", "ci", "ky", "kx", "oy", "ox"),
                  "output": ("co", "oy", "ox", "ci", "ky", "kx")}


def conv_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """Output positions along one axis of a convolution (or pooling, dilation 1)."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def conv_output_hw(in_hw: Sequence[int], kernel: Sequence[int], stride: Sequence[int],
                   padding: Sequence[int], dilation: Sequence[int]) -> tuple[int, int]:
    """Output (height, width) of a convolution over an input of `in_hw` = (height, width)."""
    return (conv_output_size(in_hw[0], kernel[0], stride[0], padding[0], dilation[0]),
            conv_output_size(in_hw[1], kernel[1], stride[1], padding[1], dilation[1]))


def axis_reads(size: int, out: int, kernel: int, stride: int, pad: int, dilation: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """(out, kernel) int64 and bool: the input position tap k of output o reads along one
    axis, and whether it lies inside the input (padding holds no synapse)."""
    pos = np.arange(out)[:, None] * stride - pad + np.arange(kernel)[None, :] * dilation
    return pos, (pos >= 0) & (pos < size)


def axis_taps(size: int, out: int, kernel: int, stride: int, pad: int, dilation: int
              ) -> np.ndarray:
    """(kernel, size) int64: 1 where kernel tap k of some output position reads input h."""
    pos, inside = axis_reads(size, out, kernel, stride, pad, dilation)
    taps = np.zeros((kernel, size), np.int64)
    taps[np.nonzero(inside)[1], pos[inside]] = 1
    return taps


def window_pairs(in_hw: Sequence[int], out_hw: Sequence[int], kernel: Sequence[int],
                 stride: Sequence[int], padding: Sequence[int], dilation: Sequence[int]) -> int:
    """(output position, kernel tap) pairs of a 2-D window that land inside the input: the
    synapses per (output channel, input channel) pair of a convolution or pooling."""
    count = 1
    for axis in range(2):
        inside = axis_reads(in_hw[axis], out_hw[axis], kernel[axis], stride[axis],
                            padding[axis], dilation[axis])[1]
        count *= int(inside.sum())
    return count


def conv_synapses(weight: np.ndarray, in_shape: Sequence[int], out_shape: Sequence[int],
                  stride: Sequence[int], padding: Sequence[int], dilation: Sequence[int],
                  groups: int, *, order: Literal["kernel", "output"] = "kernel"
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The convolution with kernel `weight` (C_out, C_in / groups, kH, kW) unrolled: (src,
    dst, weight) of every kernel tap that lands inside the input, zero weights included, as
    flat C-order indices into the input (C, H, W) and output (C_out, H_out, W_out), listed
    in `order` (see `SYNAPSE_ORDERS`)."""
    _, h, w = in_shape
    _, ho, wo = out_shape
    c_out, cg, kh, kw = weight.shape
    (s0, s1), (p0, p1), (d0, d1) = stride, padding, dilation
    sizes = {"co": c_out, "ci": cg, "ky": kh, "kx": kw, "oy": ho, "ox": wo}
    names = SYNAPSE_ORDERS[order]
    g = dict(zip(names, np.meshgrid(*(np.arange(sizes[n]) for n in names), indexing="ij"),
                 strict=True))
    g["iy"], g["ix"] = g["oy"] * s0 - p0 + g["ky"] * d0, g["ox"] * s1 - p1 + g["kx"] * d1
    inside = (g["iy"] >= 0) & (g["iy"] < h) & (g["ix"] >= 0) & (g["ix"] < w)
    co, ci, ky, kx, oy, ox, iy, ix = (g[n][inside]
                                      for n in ("co", "ci", "ky", "kx", "oy", "ox", "iy", "ix"))
    channel = (co // (c_out // groups)) * cg + ci
    src = (channel * h + iy) * w + ix
    dst = (co * ho + oy) * wo + ox
    return src, dst, weight[co, ci, ky, kx]


def conv_source_synapses(weight: np.ndarray, in_shape: Sequence[int], out_shape: Sequence[int],
                         stride: Sequence[int], padding: Sequence[int],
                         dilation: Sequence[int], groups: int, first: int, stop: int
                         ) -> tuple[np.ndarray, np.ndarray]:
    """(dst, weight) of the synapses leaving input positions first .. stop - 1 (flat C-order),
    source by source, each source's in (output channel, tap y, tap x) order: what
    `source_lists` makes of `conv_synapses`, for a range of sources only, so that a caller
    can unroll a large convolution a block of inputs at a time."""
    c_out, cg, kh, kw = weight.shape
    _, h, w = in_shape
    _, ho, wo = out_shape
    (s0, s1), (p0, p1), (d0, d1) = stride, padding, dilation
    per_group = c_out // groups
    src = np.arange(first, stop)
    c, iy, ix = src // (h * w), src // w % h, src % w
    # Tap k of output o reads o * stride - pad + k * dil: the output a tap of this input
    # reaches, if any (at most one per axis).
    oy, ry = np.divmod(iy[:, None] + p0 - np.arange(kh) * d0, s0)
    ox, rx = np.divmod(ix[:, None] + p1 - np.arange(kw) * d1, s1)
    ok_y, ok_x = (ry == 0) & (oy >= 0) & (oy < ho), (rx == 0) & (ox >= 0) & (ox < wo)
    # (source, output channel, tap y, tap x), C order: source by source, then kernel order
    co = ((c // cg)[:, None] * per_group + np.arange(per_group))[:, :, None, None]
    dst = (co * ho + oy[:, None, :, None]) * wo + ox[:, None, None, :]
    wts = weight[co, (c % cg)[:, None, None, None], np.arange(kh)[:, None], np.arange(kw)]
    inside = np.broadcast_to(ok_y[:, None, :, None] & ok_x[:, None, None, :], dst.shape)
    return dst[inside], wts[inside]


def source_lists(n_src: int, src: np.ndarray, dst: np.ndarray, weight: np.ndarray
                 ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Synapse lists grouped by source: for each of the `n_src` sources, the (dst, weight) of
    its synapses, in their order in the given lists."""
    order = np.argsort(src, kind="stable")
    src, dst, weight = src[order], dst[order], weight[order]
    cuts = np.searchsorted(src, np.arange(n_src + 1))
    return [(dst[a:b], weight[a:b]) for a, b in itertools.pairwise(cuts)]


def nondecreasing(rows: np.ndarray, block: int = 1 << 20) -> bool:
    """Whether a sparse matrix's row indices never decrease (checked block by block, no
    full-size temporary): then its entries are grouped by row as CSR lays them out."""
    return all(not (np.diff(rows[k:k + block + 1]) < 0).any() for k in range(0, rows.size, block))


def matrix_fanout(weight: np.ndarray, *, nonzero: bool = False) -> np.ndarray:
    """Fan-out (in,) int64 of a dense matrix (out, in): it stores every entry, zeros included
    (`nonzero`: count only the non-zero weights)."""
    if nonzero:
        return np.count_nonzero(weight, axis=0).astype(np.int64)
    return np.full(weight.shape[1], weight.shape[0], np.int64)


def sparse_fanout(cols: np.ndarray, values: np.ndarray, n_in: int, *, nonzero: bool = False
                  ) -> np.ndarray:
    """Fan-out (n_in,) int64 of a sparse matrix given as its entries' columns and values: its
    listed entries per column (`nonzero`: only those with a non-zero value)."""
    keep = cols[values != 0] if nonzero else cols
    return np.bincount(keep, minlength=n_in).astype(np.int64)


def conv_fanout(weight: np.ndarray, in_shape: Sequence[int], out_shape: Sequence[int],
                stride: Sequence[int], padding: Sequence[int], dilation: Sequence[int],
                groups: int, *, nonzero: bool = False) -> np.ndarray:
    """Fan-out (C_in * H * W,) int64 of each input position of a convolution with kernel
    `weight` (C_out, C_in / groups, kH, kW): every stored tap, or only non-zero ones
    (`nonzero`; without it only the kernel's shape is read)."""
    c_out, cg, kh, kw = weight.shape
    per_group = c_out // groups
    stored = (weight != 0) if nonzero else np.ones(weight.shape, bool)
    # A[c, k, l]: output channels of c's group storing tap (k, l) from input channel c
    a = stored.reshape(groups, per_group, cg, kh, kw).sum(axis=1).reshape(groups * cg, kh, kw)
    ty = axis_taps(in_shape[1], out_shape[1], kh, stride[0], padding[0], dilation[0])
    tx = axis_taps(in_shape[2], out_shape[2], kw, stride[1], padding[1], dilation[1])
    return np.einsum("ckl,kh,lw->chw", a.astype(np.int64), ty, tx).reshape(-1)


def conv_fanin(weight: np.ndarray, in_shape: Sequence[int], out_shape: Sequence[int],
               stride: Sequence[int], padding: Sequence[int], dilation: Sequence[int],
               groups: int) -> np.ndarray:
    """Stored synapses into each output (C_out * H_out * W_out,) int64 of a convolution: the
    (input channel, tap) pairs of its group that land inside the input."""
    c_out, cg, kh, kw = weight.shape
    fy = axis_reads(in_shape[1], out_shape[1], kh, stride[0], padding[0], dilation[0])[1].sum(1)
    fx = axis_reads(in_shape[2], out_shape[2], kw, stride[1], padding[1], dilation[1])[1].sum(1)
    return np.tile(cg * np.outer(fy, fx).astype(np.int64).reshape(-1), c_out)
