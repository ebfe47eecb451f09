"""Per-node facts for people: shapes, parameters, stored synapses (used by `nmcompile inspect`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .graph import Graph
from .node import Node, Shape
from .projections import Conv2d, Dense, Scale, Sparse, _Pool2d
from .quantized import QConv2d, QDense, QSparse
from .synapses import window_pairs


def synapses(node: Node, in_shape: Shape | None, out_shape: Shape) -> int:
    """Connections a projection makes (input element, output element), padding excluded."""
    if isinstance(node, (Dense, QDense)):
        return int(node.weight.size)
    if isinstance(node, (Sparse, QSparse)):
        return len(node.values)
    if isinstance(node, (Conv2d, QConv2d, _Pool2d)):
        if isinstance(node, (Conv2d, QConv2d)):
            kh, kw = node.weight.shape[2:]
            per_channel, dil = node.weight.shape[0] * node.weight.shape[1], node.dilation
        else:
            (kh, kw), per_channel, dil = node.kernel_size, in_shape[0], (1, 1)
        return per_channel * window_pairs(in_shape[1:], out_shape[1:], (kh, kw), node.stride,
                                          node.padding, dil)
    if isinstance(node, Scale):
        return int(np.prod(out_shape))
    return 0


def details(node: Node) -> str:
    """Scalar parameters as `key=value`; arrays other than weights as their shape."""
    parts = []
    for key, value in node.params().items():
        if key in ("weight", "shape") or value is None:
            continue
        if isinstance(value, np.ndarray):
            parts.append(f"{key}=[{'x'.join(map(str, value.shape))}]")
        elif isinstance(value, float):
            parts.append(f"{key}={value:.4g}")
        else:
            parts.append(f"{key}={value}")
    return " ".join(parts)


def summarize(graph: Graph) -> list[dict[str, Any]]:
    """One row per node, in schedule order."""
    shapes = graph.validate()
    rows = []
    for name in graph.schedule():
        node = graph[name]
        preds = graph.predecessors(name)
        in_shape = shapes[preds[0][0]] if preds else None
        rows.append({
            "name": name,
            "type": type(node).__name__,
            "shape": shapes[name],
            "inputs": [f"{src}" + (f" (delay {d})" if d else "") for src, d in preds],
            "params": node.num_params(),
            "synapses": synapses(node, in_shape, shapes[name]),
            "details": details(node),
        })
    return rows


