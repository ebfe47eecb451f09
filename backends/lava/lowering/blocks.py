"""The connection processes of one link group: a block per (source piece, target piece) pair.

A block is the synapses one Lava connection process holds, from one source piece (or a split
source gathered whole, `Link.via == "gather"`) to one target piece, with the delay lines
before it and the delay it adds itself. `group_blocks` finds them for a group of links
(one source, one projection, one extra delay; `lower` groups them), before any process spec
is made, so that `lower` can count the processes first:

- `QDense`: every pair (a dense matrix stores every entry), the sub-matrix as a `Dense`;
- `QSparse`, and a convolution that is not a stock `Conv`: the (row, col, value) triples of
  each pair that holds some, as a `Sparse`;
- a stock convolution piece (whole output channels of a whole source): a `Conv` of its
  kernel slice;
- a direct link: the source piece itself (same split), or a selection `Sparse` per pair.

A pair without synapses gets no process, except in an unplaced graph (one piece per layer),
which keeps its one process per projection as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from nmcompile.ir import Graph
from nmcompile.ir.quantized import QConv2d, QDense, QSparse

from .links import Link
from .pieces import Groups, Piece, StockKey, conv_fallback, gathered
from .projections import conv_matrix, line_delays, split_delay

#: (rows, cols, values): synapses over the Lava positions of a target and a source piece.
Coo = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass(eq=False)
class Block:
    """One connection process (or, for kind "direct", none): `source` -> `target`.

    kind: "dense", "sparse", "conv" (stock `Conv`), "select" (a direct link between layers
    split differently), "gather" (a split source's piece into the whole vector), "direct"
    (the source piece feeds the target piece as it is). `feeds`: the target pieces that read
    it (pieces of several layers with the same neurons share it). `lines`: the delays of the
    identity lines before it (on the source piece, shared by the group's blocks from that
    piece); `rest`: the delay the process adds itself (`DelayDense`/`DelaySparse`).
    """

    kind: str
    source: Piece
    target: Piece
    feeds: list[Piece]
    coo: Coo | None = None
    note: str = ""
    lines: tuple[int, ...] = ()
    rest: int = 0
    counted: bool = False  # counts the projection's synaptic events (first target layer)


@dataclass(eq=False)
class GroupBlocks:
    """The blocks of one link group, gathers first."""

    source: str
    proj: str | None
    extra: int
    via: str
    targets: list[str]
    src_delay: int  # IR delay on source -> projection (for the event counters)
    blocks: list[Block] = field(default_factory=list)

    def processes(self) -> int:
        """Lava processes the group adds: its delay lines (shared per source piece) and its
        connection processes."""
        lines = {(b.source.name, b.lines) for b in self.blocks if b.lines}
        return sum(len(d) for _, d in lines) + sum(b.kind != "direct" for b in self.blocks)


def _locate(pieces: Sequence[Piece], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per IR neuron: the index of its piece (-1: none of these) and its Lava position there."""
    at = np.full(n, -1, np.int64)
    pos = np.zeros(n, np.int64)
    for k, piece in enumerate(pieces):
        at[piece.perm] = k
        pos[piece.perm] = np.arange(piece.n)
    return at, pos


def coo_blocks(kind: str, coo: Coo, sources: Sequence[Piece], targets: Sequence[Piece],
               n_src: int, n_dst: int, note: str = "") -> list[Block]:
    """The (row, col, value) triples of an IR matrix (rows: target, cols: source, IR flat
    indices) cut into one block per pair that holds some; triples into neurons of none of
    `targets` are left to others. One source and one target piece: one block, even empty."""
    rows, cols, values = (np.asarray(a) for a in coo)
    s_at, s_pos = _locate(sources, n_src)
    t_at, t_pos = _locate(targets, n_dst)
    keep = t_at[rows] >= 0
    if not keep.all():
        rows, cols, values = rows[keep], cols[keep], values[keep]
    key = s_at[cols] * len(targets) + t_at[rows]
    order = np.argsort(key, kind="stable")  # one pair keeps the node's own order
    key = key[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if key.size else np.zeros(0, int)
    ends = np.r_[starts[1:], key.size].astype(int)
    if not key.size and len(sources) == 1 and len(targets) == 1:
        empty = np.zeros(0, np.int64)
        return [Block(kind, sources[0], targets[0], [targets[0]], (empty, empty, values[:0]),
                      note)]
    out = []
    for lo, hi in zip(starts, ends, strict=True):
        sel = order[lo:hi]
        i, j = divmod(int(key[lo]), len(targets))
        out.append(Block(kind, sources[i], targets[j], [targets[j]],
                         (t_pos[rows[sel]], s_pos[cols[sel]], values[sel]), note))
    return out


def _conv_blocks(graph: Graph, shapes: dict[str, tuple[int, ...]], groups: Groups,
                 stock: set[StockKey], link: Link, sources: Sequence[Piece],
                 targets: Sequence[Piece]) -> list[Block]:
    node: QConv2d = graph[link.proj]
    out, unrolled = [], []
    for piece in targets:
        if (link.source, link.proj, link.target, piece.core) in stock:
            out.append(Block("conv", sources[0], piece, [piece]))
        else:
            unrolled.append(piece)
    if unrolled:  # the same reason holds for every piece but the stock ones
        note = conv_fallback(graph, groups, shapes, link, unrolled[0].core)
        coo = conv_matrix(node, shapes[link.source], shapes[link.proj])
        out += coo_blocks("sparse", coo, sources, unrolled, int(np.prod(shapes[link.source])),
                          int(np.prod(shapes[link.proj])), note)
    return out


def link_blocks(graph: Graph, shapes: dict[str, tuple[int, ...]], groups: Groups,
                stock: set[StockKey], pieces: dict[str, list[Piece]], link: Link
                ) -> list[Block]:
    """The blocks of one link, before delays are shared out."""
    sources = [gathered(pieces[link.source])] if link.via == "gather" else pieces[link.source]
    targets = pieces[link.target]
    n_src, n_dst = int(np.prod(shapes[link.source])), int(np.prod(shapes[link.target]))
    if link.proj is None:
        if link.via != "select":
            return [Block("direct", s, t, [t]) for s, t in zip(sources, targets, strict=True)]
        idx = np.arange(n_dst, dtype=np.int64)
        return coo_blocks("select", (idx, idx, np.ones(n_dst, np.int64)), sources, targets,
                          n_src, n_dst, f"selection: direct link {link.source!r} -> "
                          f"{link.target!r} between layers split over cores differently")
    node = graph[link.proj]
    if isinstance(node, QDense):
        return [Block("dense", s, t, [t]) for s in sources for t in targets]
    if isinstance(node, QSparse):
        return coo_blocks("sparse", (node.rows, node.cols, node.values), sources, targets,
                          n_src, n_dst)
    return _conv_blocks(graph, shapes, groups, stock, link, sources, targets)


def _delays(kind: str, extra: int, via: str) -> tuple[tuple[int, ...], int]:
    """(delays of the identity lines before a block, the delay its process adds). After a
    gather the lines are the gathers' (`_gathers`): the block adds the rest."""
    if not extra:
        return (), 0
    if kind in ("direct", "conv"):  # no delay of their own: lines only
        return tuple(line_delays(extra)), 0
    before, rest = split_delay(extra)
    return ((), rest) if via == "gather" else (tuple(before), rest)


def _gathers(source: str, pieces: Sequence[Piece], extra: int) -> list[Block]:
    """An identity embedding of each piece into the whole layer (its Lava order), carrying
    the lines of the group's extra delay; the projection processes after it add the rest."""
    whole = gathered(pieces)
    out, start = [], 0
    for piece in pieces:
        rows = np.arange(start, start + piece.n, dtype=np.int64)
        cols = np.arange(piece.n, dtype=np.int64)
        start += piece.n
        before, _ = split_delay(extra)
        out.append(Block("gather", piece, whole, [], (rows, cols, np.ones(piece.n, np.int64)),
                         f"gathers piece {piece.name!r} of {source!r} for a projection whose "
                         f"flooring shift must see the whole sum", tuple(before)))
    return out


def group_blocks(graph: Graph, shapes: dict[str, tuple[int, ...]], groups: Groups,
                 stock: set[StockKey], pieces: dict[str, list[Piece]], members: list[Link],
                 targets: list[str], extra: int) -> GroupBlocks:
    """The blocks of a link group (one source, projection and extra delay; `targets` in
    schedule order): blocks of several target layers with the same neurons are shared, and
    those made for the first target layer count the projection's events."""
    first = members[0]
    group = GroupBlocks(first.source, first.proj, extra, first.via, targets, first.src_delay)
    if first.via == "gather":
        group.blocks += _gathers(first.source, pieces[first.source], extra)
    by_target = {link.target: link for link in members}
    found: dict[tuple[str, str, bytes], Block] = {}
    for target in targets:
        for block in link_blocks(graph, shapes, groups, stock, pieces, by_target[target]):
            key = (block.kind, block.source.name, block.target.perm.tobytes())
            if key in found:
                found[key].feeds.append(block.target)
                continue
            found[key] = block
            block.counted = target == targets[0]
            block.lines, block.rest = _delays(block.kind, extra, first.via)
            group.blocks.append(block)
    return group
