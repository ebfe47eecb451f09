"""A placed graph's layers cut into pieces: the neurons of one layer on one core.

`nmcompile.map` gives every neuron of every neuron layer a global core (`graph.placement`, in
the layer's flat (C, H, W) order). The lowering runs each *piece* (one layer's neurons on one
core) as its own neuron process, and each projection as one connection process per (source
piece, target piece) pair that holds synapses; Lava sums what reaches a piece's input port.
Inputs stay whole: the host sends them. An unplaced graph is one piece per layer, named after
the layer, and lowers exactly as it did before placements existed.

A piece keeps its layer's depth, and its neurons keep the layer's Lava order (a piece of an
(X, Y, C) layer lists its own neurons in (X, Y, C) order), so results are reassembled by
laying the pieces' recordings side by side and applying the layer's permutation.

Two links need a hop more than the graph says (`route`, `Link.via`):
- a direct link (no projection) between layers split differently: a port cannot take part of
  another port, so a selection `Sparse` per (source piece, target piece) carries it;
- a projection with a negative exponent whose weights are not multiples of its shift, from a
  split source: Lava floors each process's shifted sum, and the floors of partial sums are not
  the floor of the sum, so the source's pieces are first gathered into one vector (an
  identity `Sparse` each, summed at the projection's input: they do not overlap).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from nmcompile.errors import GraphError
from nmcompile.ir import Graph
from nmcompile.ir.quantized import QConv2d, QDense, QSparse

from .links import Link
from .projections import conv_stock

#: Core groups of a layer: (core, IR flat indices of its neurons there, ascending).
Groups = dict[str, list[tuple[int | None, np.ndarray]]]
#: (source, convolution, target, target core) of a piece Lava's stock `Conv` computes.
StockKey = tuple[str, str, str, "int | None"]


@dataclass(frozen=True, eq=False)
class Piece:
    """`layer`'s neurons on `core`, run as the Lava process `name`: IR flat neuron `perm[i]`
    is its Lava neuron i. A whole layer (or an input) is one piece named after it."""

    layer: str
    name: str
    core: int | None
    perm: np.ndarray

    @property
    def n(self) -> int:
        return int(self.perm.size)


def core_groups(graph: Graph, shapes: dict[str, tuple[int, ...]], names: Sequence[str]
                ) -> Groups:
    """Each layer's neurons by core, cores ascending; one group (core None) for an input, a
    layer the placement does not name, or an unplaced graph."""
    placed = graph.placement.cores if graph.placement is not None else {}
    out: Groups = {}
    for name in names:
        n = int(np.prod(shapes[name]))
        cores = placed.get(name)
        if cores is None:
            out[name] = [(None, np.arange(n, dtype=np.int64))]
            continue
        if cores.size != n:
            raise GraphError(f"placement of layer {name!r} names {cores.size} cores for its "
                             f"{n} neurons; map the graph again (nmcompile.map)")
        out[name] = [(int(c), np.flatnonzero(cores == c)) for c in np.unique(cores)]
    return out


def whole_channels(cores: np.ndarray, shape: tuple[int, ...]) -> set[int]:
    """The cores whose neurons of a (C, H, W) layer are whole output channels."""
    per_channel = np.asarray(cores).reshape(shape[0], -1)
    uniform = (per_channel == per_channel[:, :1]).all(axis=1)
    split = {int(c) for c in np.unique(per_channel[~uniform])}
    return {int(c) for c in np.unique(per_channel[uniform, 0])} - split


def conv_fallback(graph: Graph, groups: Groups, shapes: dict[str, tuple[int, ...]],
                  link: Link, core: int | None) -> str:
    """Why the convolution piece (`link`, target core `core`) cannot be a stock `Conv` (empty:
    it can). A `Conv` reads a whole (X, Y, C) image and writes whole output channels; a slice
    of its kernel along the output channels is again a convolution unless groups mix them."""
    node = graph[link.proj]
    if not conv_stock(node):
        return (f"convolution unrolled to Sparse: Lava's Conv ignores weight_exp "
                f"({node.weight_exp} < 0)")
    if len(groups[link.source]) > 1:
        return (f"convolution piece unrolled to Sparse (exact): its source {link.source!r} "
                f"is split over {len(groups[link.source])} cores and a stock Conv reads one "
                f"whole image")
    if len(groups[link.target]) == 1:
        return ""
    if node.groups != 1:
        return (f"convolution piece unrolled to Sparse (exact): a slice of a grouped "
                f"convolution ({node.groups} groups) is not one Conv over the whole input")
    cores = graph.placement.cores[link.target]
    if core not in whole_channels(cores, shapes[link.target]):
        return ("convolution piece unrolled to Sparse (exact): the piece holds part of an "
                "output channel and a stock Conv writes whole channels")
    return ""


def stock_pieces(graph: Graph, links: Sequence[Link], groups: Groups,
                 shapes: dict[str, tuple[int, ...]]) -> set[StockKey]:
    """Every (source, convolution, target, target core) that becomes a stock `Conv`."""
    out: set[StockKey] = set()
    for link in links:
        if link.proj is None or not isinstance(graph[link.proj], QConv2d):
            continue
        for core, _ in groups[link.target]:
            if not conv_fallback(graph, groups, shapes, link, core):
                out.add((link.source, link.proj, link.target, core))
    return out


def make_pieces(groups: Groups, perms: dict[str, np.ndarray], names: Callable[[str], str]
                ) -> dict[str, list[Piece]]:
    """The pieces of every layer and input: each core group in the layer's Lava order. A
    split layer's pieces are named `layer@core`."""
    out: dict[str, list[Piece]] = {}
    for layer, parts in groups.items():
        perm = perms[layer]
        if len(parts) == 1:
            out[layer] = [Piece(layer, layer, parts[0][0], perm)]
            continue
        which = np.empty(perm.size, np.int64)
        for k, (_, idx) in enumerate(parts):
            which[idx] = k
        at = which[perm]  # the piece of each Lava position
        out[layer] = [Piece(layer, names(f"{layer}@{core}"), core, perm[at == k])
                      for k, (core, _) in enumerate(parts)]
    return out


def same_split(a: Sequence[Piece], b: Sequence[Piece]) -> bool:
    """Whether two layers are cut into the same pieces, neuron for neuron and in order."""
    if len(a) != len(b):
        return False
    return all(np.array_equal(x.perm, y.perm) for x, y in zip(a, b, strict=True))


def split_exact(node: QDense | QSparse | QConv2d) -> bool:
    """Whether the shifted partial sums of a split source add up to the shifted sum: always
    for `weight_exp >= 0`; for a flooring shift only when every weight is a multiple of it
    (then every partial sum is)."""
    if node.weight_exp >= 0:
        return True
    values = np.asarray(node.values if isinstance(node, QSparse) else node.weight, np.int64)
    return not (values % (1 << -node.weight_exp)).any()


def route(graph: Graph, links: Sequence[Link], pieces: dict[str, list[Piece]]) -> list[Link]:
    """The links with the hops the pieces need (`Link.via`; module docstring)."""
    out = []
    for link in links:
        via = ""
        if link.proj is None:
            via = "" if same_split(pieces[link.source], pieces[link.target]) else "select"
        elif len(pieces[link.source]) > 1 and not split_exact(graph[link.proj]):
            via = "gather"
        out.append(dataclasses.replace(link, via=via) if via else link)
    return out


def gathered(pieces: Sequence[Piece]) -> Piece:
    """A split layer seen whole: its pieces' neurons one after the other (its Lava order)."""
    first = pieces[0]
    return Piece(first.layer, first.layer, None, np.concatenate([p.perm for p in pieces]))
