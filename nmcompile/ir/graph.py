"""The graph: named nodes (dataclasses from `ports`, `projections`, `neurons`) joined by
edges that each carry an integer delay in steps.

Semantics (stated once; `docs/ir.md` has the long form):
- A node's input at step t is the sum of its incoming edges; an edge of delay d from node u
  delivers u's output of step t - d (zero before the first step). Delay 0 delivers within
  the step, as a PyTorch forward pass computes a feed-forward network.
- Every cycle must have total delay >= 1, so the delay-0 edges form a DAG and one step is
  computed by visiting nodes in `schedule()` order.
- Incoming edges are summed in the order of their source names, so the float sum is fixed
  whatever order the edges were added in.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Iterator
from typing import Any

import networkx as nx
import numpy as np

from ..errors import GraphError, LimitError, ShapeError
from .node import Node, Shape, values_equal
from .placement import Placement
from .ports import Input, Output

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,127}")  # used with fullmatch: no "a\n"
#: Longest edge delay the IR accepts, in steps; a target may allow less (a profile's
#: `max_delay`, the Lava backend's `max_processes`). Longer delays only serve to make a
#: backend build or allocate without bound.
MAX_DELAY = 1 << 16


def check_dt(dt: object) -> float | None:
    """`dt` in seconds per step: None, or a finite number > 0 (never a string or a bool)."""
    if dt is None:
        return None
    if isinstance(dt, (bool, np.bool_)) or not isinstance(dt, (int, float, np.integer,
                                                                np.floating)):
        raise GraphError(f"graph dt must be a number of seconds per step (or None), got "
                         f"{type(dt).__name__} {dt!r}")
    value = float(dt)
    if not (math.isfinite(value) and value > 0):
        raise GraphError(f"graph dt must be finite and > 0 seconds per step, got {value!r}")
    return value


def check_delay(src: str, dst: str, delay: object) -> int:
    """An edge delay as a Python int in [0, MAX_DELAY]."""
    if isinstance(delay, (bool, np.bool_)) or not isinstance(delay, (int, np.integer)) \
            or delay < 0:
        raise GraphError(f"edge {src!r} -> {dst!r}: delay must be an integer >= 0, "
                         f"got {delay!r}")
    if int(delay) > MAX_DELAY:
        raise LimitError(f"edge {src!r} -> {dst!r}: delay {int(delay):,} steps is more than "
                         f"the IR allows (MAX_DELAY = {MAX_DELAY:,} steps); shorten the delay")
    return int(delay)


class Graph:
    """A spiking network as a directed graph over `networkx.DiGraph`.

    `dt` (seconds per step) is kept for reference and for export; the dynamics use per-step
    decay factors. `metadata` is JSON-safe data: where the network came from, the data set
    and encoding it was trained on, so that tools can regenerate its test inputs.
    """

    def __init__(self, dt: float | None = None, metadata: dict[str, Any] | None = None) -> None:
        self.nx = nx.DiGraph()
        self.dt = check_dt(dt)
        self.metadata: dict[str, Any] = dict(metadata or {})
        #: where each neuron runs once `nmcompile.map` placed the graph on a chip's cores
        self.placement: Placement | None = None

    # -- building -----------------------------------------------------------------------
    def add_node(self, name: str, node: Node) -> str:
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise GraphError(f"invalid node name {name!r}: use letters, digits, '_', '.', '-', "
                             f"starting with a letter or '_' (at most 128 characters)")
        if name in self.nx:
            raise GraphError(f"node {name!r} already exists")
        if not isinstance(node, Node):
            raise GraphError(f"node {name!r}: {type(node).__name__} is not an IR node")
        self.nx.add_node(name, node=node)
        return name

    def add_edge(self, src: str, dst: str, delay: int = 0) -> None:
        for end in (src, dst):
            if end not in self.nx:
                raise GraphError(f"edge {src!r} -> {dst!r}: no node named {end!r}")
        if self.nx.has_edge(src, dst):
            raise GraphError(f"edge {src!r} -> {dst!r} already exists")
        self.nx.add_edge(src, dst, delay=check_delay(src, dst, delay))

    def remove_node(self, name: str) -> None:
        self.nx.remove_node(name)

    # -- reading ------------------------------------------------------------------------
    def __getitem__(self, name: str) -> Node:
        try:
            return self.nx.nodes[name]["node"]
        except KeyError:
            raise GraphError(f"no node named {name!r}") from None

    def __contains__(self, name: object) -> bool:
        return name in self.nx

    def __iter__(self) -> Iterator[str]:
        return iter(self.nx.nodes)

    def __len__(self) -> int:
        return self.nx.number_of_nodes()

    @property
    def nodes(self) -> dict[str, Node]:
        """Node name -> node, in insertion order."""
        return {name: data["node"] for name, data in self.nx.nodes(data=True)}

    def edges(self) -> list[tuple[str, str, int]]:
        """Every edge as (source, target, delay), in insertion order."""
        return [(u, v, d) for u, v, d in self.nx.edges(data="delay")]

    def predecessors(self, name: str) -> list[tuple[str, int]]:
        """(source, delay) of each incoming edge, in summation order (sorted by source)."""
        return sorted((u, d) for u, _, d in self.nx.in_edges(name, data="delay"))

    def successors(self, name: str) -> list[tuple[str, int]]:
        return sorted((v, d) for _, v, d in self.nx.out_edges(name, data="delay"))

    @property
    def inputs(self) -> list[str]:
        return sorted(n for n, node in self.nodes.items() if isinstance(node, Input))

    @property
    def outputs(self) -> list[str]:
        return sorted(n for n, node in self.nodes.items() if isinstance(node, Output))

    # -- checking -----------------------------------------------------------------------
    def schedule(self) -> list[str]:
        """The order in which one step visits the nodes: a topological order of the delay-0
        edges, ties broken by name, so it is the same for equal graphs."""
        instant = nx.DiGraph()
        instant.add_nodes_from(self.nx.nodes)
        instant.add_edges_from((u, v) for u, v, d in self.edges() if d == 0)
        try:
            return list(nx.lexicographical_topological_sort(instant))
        except nx.NetworkXUnfeasible:
            cycle = nx.find_cycle(instant)
            path = " -> ".join([u for u, _ in cycle] + [cycle[0][0]])
            raise GraphError(f"cycle with total delay 0: {path}; give one of its edges a delay "
                             f">= 1 (a recurrent connection reads the previous step)") from None

    def shapes(self) -> dict[str, Shape]:
        """Infer each node's output shape (features only), checking every node on the way."""
        order = self.schedule()
        shapes: dict[str, Shape] = {}
        pending = order
        while pending:  # a node fed through a delayed edge may come before its source
            waiting = []
            for name in pending:
                sources = [src for src, _ in self.predecessors(name)]
                known = [shapes[src] for src in sources if src in shapes]
                if sources and not known:
                    waiting.append(name)
                    continue
                shapes[name] = self[name].output_shape(known[0] if known else None, name)
            if len(waiting) == len(pending):
                raise ShapeError(f"cannot infer the shapes of {waiting}: they are fed only by "
                                 f"each other; connect them to an Input")
            pending = waiting
        for name in order:
            in_shapes = {src: shapes[src] for src, _ in self.predecessors(name)}
            if len(set(in_shapes.values())) > 1:
                listing = ", ".join(f"{s!r}: {shp}" for s, shp in in_shapes.items())
                raise ShapeError(f"node {name!r} sums inputs of different shapes ({listing}); "
                                 f"every incoming edge must carry the same shape")
        return {name: shapes[name] for name in order}

    def validate(self) -> dict[str, Shape]:
        """Check the whole graph; return the inferred shapes. Errors name the node at fault."""
        if not self.inputs:
            raise GraphError("the graph has no Input node")
        if not self.outputs:
            raise GraphError("the graph has no Output node")
        for name in self.inputs:
            if self.nx.in_degree(name):
                raise GraphError(f"input node {name!r} cannot have incoming edges")
        for name in self.outputs:
            if self.nx.out_degree(name):
                raise GraphError(f"output node {name!r} cannot have outgoing edges")
        check_dt(self.dt)  # both may have been set directly, not through the constructor
        for src, dst, delay in self.edges():
            check_delay(src, dst, delay)
        return self.shapes()

    # -- values -------------------------------------------------------------------------
    def copy(self) -> Graph:
        return copy.deepcopy(self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Graph):
            return NotImplemented
        if self.dt != other.dt or self.metadata != other.metadata \
                or self.placement != other.placement:
            return False
        if set(self.nx.nodes) != set(other.nx.nodes):
            return False
        if {(u, v): d for u, v, d in self.edges()} != {(u, v): d for u, v, d in other.edges()}:
            return False
        return all(self[n] == other[n] for n in self.nx.nodes)

    __hash__ = None

    def __repr__(self) -> str:
        return (f"Graph({len(self)} nodes, {self.nx.number_of_edges()} edges, dt={self.dt}, "
                f"inputs={self.inputs}, outputs={self.outputs})")


__all__ = ["Graph", "values_equal"]
