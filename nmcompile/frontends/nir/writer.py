"""`to_nir`: a float IR graph -> a NIR graph (and a `.nir` file).

Every node maps onto one NIR node (neurons: `neurons.py`, forward Euler at the graph's dt);
an edge with delay d becomes a NIR `Delay` of d * dt seconds between its two nodes, named
`delay:SRC:DST`; a `Dense` that reads an image flattened gets a NIR `Flatten` ahead of it
(`flatten:NAME`, marked as implicit), since NIR's Affine takes a vector. Names with a ':' cannot
be IR names, so they never collide. dt, the reset mode and each node's exact parameters go into
the metadata (`meta.py`), so `from_nir` rebuilds an equal graph. What NIR 1.0 cannot say
(ALIF, an IF with a bias, a Dense with `out_shape`, quantised nodes) raises an error naming
the node.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ...errors import GraphError, UnsupportedError
from ...ir import (
    AvgPool2d,
    Conv2d,
    Dense,
    Flatten,
    Graph,
    Input,
    Neuron,
    Node,
    Output,
    Scale,
    SumPool2d,
)
from . import neurons
from .meta import KEY, graph_meta, node_meta


def _node(node: Node, name: str, in_shape: tuple[int, ...] | None, shape: tuple[int, ...],
          dt: float) -> Any:
    import nir

    if isinstance(node, Input):
        return nir.Input(input_type=np.array(node.shape))
    if isinstance(node, Output):
        return nir.Output(output_type=np.array(shape))
    if isinstance(node, Dense):
        if node.out_shape is not None:
            raise UnsupportedError(f"node {name!r} (Dense) reshapes its output to "
                                   f"{node.out_shape}; NIR has no reshape. Export the graph "
                                   f"before folding (nmcompile.quantize folds)")
        if node.bias is None:
            return nir.Linear(weight=node.weight.copy())
        return nir.Affine(weight=node.weight.copy(), bias=node.bias.copy())
    if isinstance(node, Conv2d):
        bias = np.zeros(node.weight.shape[0]) if node.bias is None else node.bias.copy()
        return nir.Conv2d(input_shape=tuple(in_shape[1:]), weight=node.weight.copy(),
                          stride=node.stride, padding=node.padding, dilation=node.dilation,
                          groups=node.groups, bias=bias)
    if isinstance(node, (SumPool2d, AvgPool2d)):
        cls = nir.SumPool2d if isinstance(node, SumPool2d) else nir.AvgPool2d
        return cls(kernel_size=np.array(node.kernel_size), stride=np.array(node.stride),
                   padding=np.array(node.padding))
    if isinstance(node, Flatten):
        return nir.Flatten(input_type={"input": np.array(in_shape)}, start_dim=node.start_dim,
                           end_dim=node.end_dim)
    if isinstance(node, Scale):
        return nir.Scale(scale=np.array(np.broadcast_to(np.asarray(node.scale, np.float64),
                                                        shape)))
    if isinstance(node, Neuron):
        return neurons.to_nir(node, dt, shape, name)
    raise UnsupportedError(f"node {name!r} ({type(node).__name__}) has no NIR equivalent; "
                           f"NIR takes float graphs: export before quantising")


def _reset_mode(graph: Graph) -> str:
    modes = {node.reset for node in graph.nodes.values() if hasattr(node, "reset")}
    return modes.pop() if len(modes) == 1 else ("mixed" if modes else "none")


def to_nir(graph: Graph, path: str | Path | None = None, *, dt: float | None = None,
           force: bool = False) -> Any:
    """The NIR graph of a float IR graph; written to `path` (a `.nir` HDF5 file, atomically)
    when given. `dt` defaults to the graph's own; one of them must be set."""
    import nir

    dt = graph.dt if dt is None else float(dt)
    if dt is None or not np.isfinite(dt) or dt <= 0:
        raise GraphError("the graph has no dt (seconds per step); NIR's time constants need "
                         "one: pass to_nir(graph, path, dt=...)")
    if any(node.quantized for node in graph.nodes.values()):
        raise UnsupportedError("NIR holds float networks: export the float graph, not the "
                               "quantised one")
    from ...passes import bias

    if sources := bias.recorded(graph.metadata):
        # NIR holds a projection's bias as such: write it there (the reader redoes the source)
        graph = bias.restore_biases(graph, sources)
    shapes = graph.validate()
    nodes: dict[str, Any] = {}
    entry: dict[str, str] = {}
    for name in graph.schedule():
        node = graph[name]
        preds = graph.predecessors(name)
        in_shape = shapes[preds[0][0]] if preds else None
        nir_node = _node(node, name, in_shape, shapes[name], dt)
        nir_node.metadata = node_meta(node)
        nodes[name] = nir_node
        entry[name] = name
        if isinstance(node, Dense) and len(in_shape) > 1:
            flat = f"flatten:{name}"
            nodes[flat] = nir.Flatten(input_type={"input": np.array(in_shape)}, start_dim=0,
                                      end_dim=-1,
                                      metadata={KEY: {"type": "", "params": '{"implicit": true}'}})
            entry[name] = flat
    edges = [(flat, name) for name, flat in entry.items() if flat != name]
    for src, dst, delay in graph.edges():
        if delay == 0:
            edges.append((src, entry[dst]))
            continue
        hop = f"delay:{src}:{dst}"
        nodes[hop] = nir.Delay(delay=np.full(shapes[src], delay * dt))
        edges += [(src, hop), (hop, entry[dst])]
    out = nir.NIRGraph(nodes=nodes, edges=edges,
                       metadata=graph_meta(dt, _reset_mode(graph), graph.metadata),
                       type_check=False)
    if path is not None:
        _write(out, Path(path), force)
    return out


def _write(nir_graph: Any, path: Path, force: bool = False) -> None:
    """Write atomically (a temporary file beside `path`, renamed into place), replacing only
    a NIR file that nmcompile wrote unless `force` (`nmcompile.outputs`)."""
    import nir

    from ...outputs import is_nir, replace_path

    replace_path(path, lambda tmp: nir.write(tmp, nir_graph), is_nir, force=force)
