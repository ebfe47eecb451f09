"""Neuron order in Lava: the IR's flat order, or (X, Y, C) next to a convolution.

Lava's `Conv` reads and writes (X, Y, C) images; the IR stores (C, H, W). Every layer or input
that feeds or is fed by a stock `Conv` keeps its neurons in (H, W, C) order in Lava, and the
`Dense`/`Sparse` processes touching it have their rows or columns permuted to match.
"""

from __future__ import annotations

import numpy as np

from nmcompile.ir import Graph
from nmcompile.ir.quantized import QConv2d

from .projections import conv_stock


def hwc_perm(shape: tuple[int, ...]) -> np.ndarray:
    """perm[i] = IR flat (C, H, W) index of the i-th neuron in (H, W, C) order."""
    c, h, w = shape
    return np.arange(c * h * w, dtype=np.int64).reshape(c, h, w).transpose(1, 2, 0).ravel()


def image_nodes(graph: Graph) -> set[str]:
    """The sources and targets of every convolution Lava's `Conv` computes (unplaced graph)."""
    image: set[str] = set()
    for name, node in graph.nodes.items():
        if isinstance(node, QConv2d) and conv_stock(node):
            image.update(src for src, _ in graph.predecessors(name))
            image.update(dst for dst, _ in graph.successors(name))
    return image


def layouts(graph: Graph, shapes: dict[str, tuple[int, ...]],
            image: set[str] | None = None) -> dict[str, np.ndarray]:
    """Layer or input name -> perm (Lava index -> IR flat index), for every node. `image`:
    the nodes next to a stock `Conv` (default `image_nodes(graph)`; a placed graph names the
    ones its stock pieces touch)."""
    image = image_nodes(graph) if image is None else image
    out = {}
    for name, shape in shapes.items():
        n = int(np.prod(shape))
        out[name] = hwc_perm(shape) if name in image and len(shape) == 3 else \
            np.arange(n, dtype=np.int64)
    return out
