"""Input axons of a run of target neurons: how many distinct source neurons reach neurons
a..b-1 of a layer through one link, counted exactly and fast enough to bisect on.

`partition.sequential` cuts each layer into the longest consecutive pieces that fit a core;
the input axons are the limit that decides it for a convolution (a Loihi core has 4,096,
and a 3x3 window over 32 channels reads 288 sources per neuron). Counts, per link:

- direct link: the b - a neurons themselves;
- dense: every source neuron;
- sparse: the distinct columns of rows a..b-1 (synapses sorted by row once);
- convolution: per group of channels, the input channels times the source positions the
  run's output positions read. A run of output positions is at most a partial first row,
  whole rows and a partial last row; the window is separable, so each part reads a
  rectangle (rows reached) x (columns reached) and the count is the size of their union.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ..ir import Graph
from ..ir.quantized import QConv2d, QDense
from ..ir.synapses import axis_reads
from .loads import Link

Count = Callable[[int, int], int]


def run_sources(graph: Graph, link: Link, shapes: dict[str, tuple[int, ...]]) -> Count:
    """A function (a, b) -> the distinct source neurons of `link` reaching target neurons
    a..b-1 (a < b)."""
    proj = graph[link.proj] if link.proj else None
    n_src = math.prod(shapes[link.source])
    if proj is None:
        return lambda a, b: b - a
    if isinstance(proj, QDense):
        return lambda a, b: n_src
    if isinstance(proj, QConv2d):
        return _conv_sources(proj, shapes[link.source], shapes[link.target])
    order = np.argsort(proj.rows, kind="stable")
    cols = np.asarray(proj.cols)[order]
    ptr = np.searchsorted(np.asarray(proj.rows)[order],
                          np.arange(math.prod(shapes[link.target]) + 1))
    seen = np.zeros(n_src, bool)

    def sparse(a: int, b: int) -> int:
        hit = cols[ptr[a]:ptr[b]]
        seen[hit] = True
        count = int(np.count_nonzero(seen))
        seen[hit] = False
        return count
    return sparse


def _reads(size: int, out: int, kernel: int, stride: int, pad: int, dilation: int
           ) -> np.ndarray:
    """(out, size) bool: the input positions along one axis that output o reads."""
    pos, inside = axis_reads(size, out, kernel, stride, pad, dilation)
    reads = np.zeros((out, size), bool)
    reads[np.nonzero(inside)[0], pos[inside]] = True
    return reads


def _conv_sources(proj: QConv2d, in_shape: tuple[int, ...], out_shape: tuple[int, ...]
                  ) -> Count:
    c, h, w = in_shape
    co, ho, wo = out_shape
    kh, kw = proj.weight.shape[2:]
    (sy, sx), (py, px), (dy, dx) = proj.stride, proj.padding, proj.dilation
    ry = _reads(h, ho, kh, sy, py, dy)
    rx = _reads(w, wo, kw, sx, px, dx)
    all_x = rx.any(axis=0)
    hw, cin = ho * wo, c // proj.groups
    per_group = (co // proj.groups) * hw  # target neurons of one group of channels
    full = int(ry.any(axis=0).sum()) * int(all_x.sum())

    def rows(p0: int, p1: int, mask: np.ndarray) -> None:
        """Mark the source positions output positions p0..p1-1 (one channel) read."""
        r0, c0 = divmod(p0, wo)
        r1, c1 = divmod(p1, wo)
        if r0 == r1:
            mask |= np.outer(ry[r0], rx[c0:c1].any(axis=0))
            return
        mask |= np.outer(ry[r0], rx[c0:].any(axis=0))
        if r1 > r0 + 1:
            mask |= np.outer(ry[r0 + 1:r1].any(axis=0), all_x)
        if c1:
            mask |= np.outer(ry[r1], rx[:c1].any(axis=0))

    def conv(a: int, b: int) -> int:
        total = 0
        for g in range(a // per_group, (b - 1) // per_group + 1):
            lo = max(a, g * per_group) - g * per_group
            hi = min(b, (g + 1) * per_group) - g * per_group
            if hi - lo >= hw:  # every output position of the group
                total += cin * full
                continue
            mask = np.zeros((h, w), bool)
            p0, p1 = lo % hw, hi % hw or hw
            if p0 < p1:
                rows(p0, p1, mask)
            else:  # the run wraps into the next channel: two runs of positions
                rows(p0, hw, mask)
                rows(0, p1, mask)
            total += cin * int(np.count_nonzero(mask))
        return total
    return conv
