"""A projection bias that reaches a synaptic current, as a constant spiking source.

A constant added to a current-based neuron's input is filtered by its current, so no neuron
bias equals it and the fixed-point targets cannot hold it. `bias_sources` rewrites it exactly:
one neuron spikes on every step and a `Dense` of the bias values carries that spike where the
projection's output went. The NIR reader and `from_torch` both apply it.
"""

from __future__ import annotations

import numpy as np

from ..errors import GraphError
from ..ir import LIF, Conv2d, Dense, Graph, Output
from ..ir.names import unique_name
from ..ir.neurons import Neuron


def bias_sources(g: Graph) -> list[str]:
    """Rewrite each projection bias that reaches a synaptic current (alpha > 0) as a source.

    A constant added to a current is filtered by it, so no neuron bias equals it and the
    fixed-point targets cannot hold it. Instead one neuron `bias_source`, driven by its own
    bias of 1.0 above a threshold of 0.5 and reset to zero, spikes on every step from step 0;
    a `Dense` holding the bias values carries its spike to wherever the projection's output
    went, with the same delays. The network computes the same values (up to the order of one
    float addition).
    """
    shapes = g.validate()
    rewritten, source = [], None
    for name in list(g.schedule()):
        node = g[name]
        if not isinstance(node, (Dense, Conv2d)) or node.bias is None or not np.any(node.bias):
            continue
        if not any(np.any(np.asarray(getattr(g[n], "alpha", 0.0)) != 0)
                   for n in _downstream_neurons(g, name)):
            continue
        if source is None:
            if not g.inputs:
                raise GraphError("a bias source needs an Input node to hang from")
            first = g.inputs[0]
            n_in = int(np.prod(shapes[first]))
            feed = unique_name("bias_source.in", g, sep="_", first=1)
            g.add_node(feed, Dense(np.zeros((1, n_in))))
            source = unique_name("bias_source", g, sep="_", first=1)
            g.add_node(source, LIF(beta=0.5, threshold=0.5, bias=1.0, reset="zero"))
            g.add_edge(first, feed, 0)
            g.add_edge(feed, source, 0)
        shape = shapes[name]
        if isinstance(node, Conv2d):  # one bias per channel, over the whole image
            const = np.broadcast_to(node.bias[:, None, None], shape)
        else:
            const = node.bias.reshape(shape)
        carrier = unique_name(f"{name}.bias", g, sep="_", first=1)
        g.add_node(carrier, Dense(np.array(const).reshape(-1, 1),
                                  out_shape=shape if len(shape) > 1 else None))
        g.add_edge(source, carrier, 0)
        for dst, delay in g.successors(name):
            g.add_edge(carrier, dst, delay)
        g.nx.nodes[name]["node"] = type(node)(**{**node.params(), "bias": None})
        rewritten.append(name)
    return rewritten


def recorded(metadata: dict) -> list[str]:
    """The projections a graph's metadata says `bias_sources` rewrote (`from_torch` records
    them at the top, the NIR reader under "nir")."""
    nir = metadata.get("nir")
    return list(metadata.get("bias_sources") or
                (nir.get("bias_sources") if isinstance(nir, dict) else None) or [])


def restore_biases(g: Graph, projections: list[str]) -> Graph:
    """A copy of `g` with the rewrite of `bias_sources` undone for `projections` (the names it
    returned): each bias back on its projection, the carriers and the source removed. For
    formats that hold a projection bias as such (NIR); `bias_sources` redoes it exactly."""
    out = g.copy()
    shapes = out.validate()
    sources = set()
    for name in projections:
        outs = sorted(out.successors(name))
        # the carrier is named after its projection (`bias_sources`: "<name>.bias")
        carrier = next((c for c in out.nodes if c.startswith(f"{name}.bias")
                        and isinstance(out[c], Dense) and len(out.predecessors(c)) == 1
                        and out.predecessors(c)[0][0].startswith("bias_source")
                        and sorted(out.successors(c)) == outs), None)
        if carrier is None:
            raise GraphError(f"projection {name!r} is listed in metadata['bias_sources'] but "
                             f"no bias carrier feeds where it goes")
        sources.add(out.predecessors(carrier)[0][0])
        const = np.asarray(out[carrier].weight).reshape(shapes[name])
        node = out[name]
        bias = const[:, 0, 0] if isinstance(node, Conv2d) else const.reshape(-1)
        out.nx.nodes[name]["node"] = type(node)(**{**node.params(), "bias": bias.copy()})
        out.remove_node(carrier)
    for source in sources:
        if not out.successors(source):
            feeds = [f for f, _ in out.predecessors(source)]
            out.remove_node(source)
            for f in feeds:
                out.remove_node(f)
    return out


def _downstream_neurons(g: Graph, name: str) -> set[str]:
    found, stack, seen = set(), [name], {name}
    while stack:
        for dst, _ in g.successors(stack.pop()):
            if isinstance(g[dst], Neuron):
                found.add(dst)
            elif dst not in seen and not isinstance(g[dst], Output):
                seen.add(dst)
                stack.append(dst)
    return found
