"""Fold every chain of linear nodes between two neuron layers into one projection.

After this pass a graph is Input/neuron -> projection -> neuron/Output, with one projection
per (source, target, path delay): a `Conv2d` where the chain is one convolution or pooling
(pooling becomes a depthwise convolution, average pooling's 1/k^2 in its weights), with
flattening and scalar scales absorbed; otherwise a `Dense` holding the chain's matrix, found by
pushing the identity through it (parallel paths with equal delay summed). Biases met on the
way become the target neuron's bias, which is exact when the neuron has no synaptic current
(alpha = 0): a bias in the current would be filtered by it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import LimitError, UnsupportedError
from ..ir import Conv2d, Dense, Graph, Input, Output, Scale
from ..ir.interpret import DTYPE, _projection
from ..ir.neurons import Neuron
from ..ir.projections import AvgPool2d, _Pool2d

MAX_DENSE = 64 << 20  # entries of a folded matrix before the pass refuses


@dataclass
class _Path:
    source: str
    delay: int
    chain: list[str]  # projection nodes, source side first


def _paths(graph: Graph, target: str) -> list[_Path]:
    """Every path of projections from a neuron or input into `target`."""
    found: list[_Path] = []

    def walk(node: str, chain: list[str], delay: int) -> None:
        for src, d in graph.predecessors(node):
            if isinstance(graph[src], (Input, Neuron)):
                found.append(_Path(src, delay + d, chain[::-1]))
            else:
                if src in chain:
                    raise UnsupportedError(f"cycle through projections only at {src!r}; a "
                                           f"cycle must pass through a neuron layer")
                walk(src, [*chain, src], delay + d)

    walk(target, [], 0)
    return found


def _as_conv(graph: Graph, chain: list[str], in_shape: tuple[int, ...]) -> Conv2d | None:
    """The chain as one convolution, if it is one: a Conv2d or a pooling, and scalar scales."""
    convs = [graph[n] for n in chain if not isinstance(graph[n], Scale)]
    scales = [graph[n].scale for n in chain if isinstance(graph[n], Scale)]
    if len(convs) != 1 or not all(isinstance(v, float) for v in scales):
        return None
    node, scale = convs[0], float(np.prod(scales))
    if isinstance(node, Conv2d):
        return Conv2d(node.weight * scale, None, node.stride, node.padding, node.dilation,
                      node.groups)
    if isinstance(node, _Pool2d):
        c, (kh, kw) = in_shape[0], node.kernel_size
        value = scale / (kh * kw) if isinstance(node, AvgPool2d) else scale
        return Conv2d(np.full((c, 1, kh, kw), value), None, node.stride, node.padding, 1, c)
    return None


def _matrix(graph: Graph, chain: list[str], n_in: int, in_shape: tuple[int, ...],
            n_out: int) -> np.ndarray:
    """The chain's linear part as a matrix (n_out, n_in): the identity pushed through it."""
    if n_in * n_out > MAX_DENSE:
        raise LimitError(f"folding {' -> '.join(chain)} would build a {n_out} x {n_in} matrix; "
                         f"more than {MAX_DENSE} entries")
    x = torch.eye(n_in, dtype=DTYPE).reshape(n_in, *in_shape)
    with torch.no_grad():
        for name in chain:
            node = graph[name]
            if getattr(node, "bias", None) is not None and not isinstance(node, Neuron):
                node = type(node)(**{**node.params(), "bias": None})
            x = _projection(node)(x)
    return x.reshape(n_in, n_out).T.numpy().copy()


def _constant(graph: Graph, target: str, shapes: dict) -> np.ndarray | None:
    """What the projections feeding `target` add when every source is silent: their biases,
    carried through the rest of the chain. None when that is zero."""
    memo: dict[str, torch.Tensor | None] = {}

    def value(name: str) -> torch.Tensor | None:
        if name not in memo:
            parts = []
            for src, d in graph.predecessors(name):
                if isinstance(graph[src], (Input, Neuron)) or (v := value(src)) is None:
                    continue
                if d > 0:
                    raise UnsupportedError(f"a bias reaches {name!r} through a delayed edge "
                                           f"from {src!r}; it cannot be folded exactly")
                parts.append(v)
            node = graph[name]
            if parts or getattr(node, "bias", None) is not None:
                x = sum(parts) if parts else torch.zeros(
                    (1, *shapes[graph.predecessors(name)[0][0]]), dtype=DTYPE)
                memo[name] = _projection(node)(x)
            else:
                memo[name] = None
        return memo[name]

    parts = [v for src, _ in graph.predecessors(target)
             if not isinstance(graph[src], (Input, Neuron)) and (v := value(src)) is not None]
    return sum(parts)[0].numpy() if parts else None


def _with_bias(node: Neuron, extra: np.ndarray, name: str) -> Neuron:
    if np.any(np.asarray(getattr(node, "alpha", 0.0)) != 0):
        raise UnsupportedError(
            f"a projection bias feeds {name!r}, whose synaptic current (alpha > 0) would "
            f"filter it; no exact neuron bias exists. Give that layer's input projection "
            f"bias=False")
    return type(node)(**{**node.params(), "bias": node.bias + extra})


def fold_linear(graph: Graph) -> Graph:
    """Return an equivalent graph in which neurons are joined by single projections."""
    shapes = graph.validate()
    out = Graph(dt=graph.dt, metadata=graph.metadata)
    keep = [n for n in graph.schedule() if isinstance(graph[n], (Input, Neuron, Output))]
    for name in keep:
        out.add_node(name, graph[name])
    for target in keep:
        if isinstance(graph[target], Input):
            continue
        groups: dict[tuple[str, int], list[_Path]] = {}
        for path in _paths(graph, target):
            groups.setdefault((path.source, path.delay), []).append(path)
        for (source, delay), paths in sorted(groups.items()):
            if isinstance(graph[target], Output) and all(not p.chain for p in paths):
                out.add_edge(source, target, delay)  # outputs record a layer directly
                continue
            proj = None
            if len(paths) == 1 and paths[0].chain:
                proj = _as_conv(graph, paths[0].chain, shapes[source])
            if proj is None:
                n_in = int(np.prod(shapes[source]))
                n_out = int(np.prod(shapes[target]))
                weight = sum(_matrix(graph, p.chain, n_in, shapes[source], n_out)
                             if p.chain else np.eye(n_in) for p in paths)
                proj = Dense(weight, out_shape=shapes[target] if len(shapes[target]) > 1
                              else None)
            pname = f"{target}.from_{source}" + (f".d{delay}" if delay else "")
            out.add_node(pname, proj)
            out.add_edge(source, pname, delay)
            out.add_edge(pname, target, 0)
        constant = _constant(graph, target, shapes)
        if constant is not None and np.any(constant != 0):
            node = graph[target]
            if isinstance(node, Output):
                raise UnsupportedError(f"output {target!r} is fed by a projection with a bias; "
                                       f"add a neuron layer (an LI readout) before it")
            out.nx.nodes[target]["node"] = _with_bias(node, constant.reshape(shapes[target]),
                                                      target)
    out.validate()
    return out

