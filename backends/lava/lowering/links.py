"""The quantised graph seen from Lava: neuron layers joined by links.

Lava has no process for a bare summation or a chain of projections, so the lowering reads the
graph as *links*: a source (an input or a neuron layer) reaching a neuron layer either through
one projection (one Lava hop) or directly (no hop), with the IR delay of the whole path.

A graph mapped onto cores (`graph.placement`) may need a hop more on some links (`Link.via`,
see `pieces.route`): a direct link between layers split differently goes through a selection
`Sparse`, and a projection whose source is split and whose flooring shift would not survive
the split gathers the source's pieces first.
"""

from __future__ import annotations

from dataclasses import dataclass

from nmcompile.errors import UnsupportedError
from nmcompile.ir import Graph, Input, Output
from nmcompile.ir.neurons import Neuron
from nmcompile.ir.quantized import QALIF, QLI, QLIF, QConv2d, QDense, QSparse

from .projections import lava_exp

NEURONS = (QLIF, QALIF, QLI)
PROJECTIONS = (QDense, QSparse, QConv2d)


@dataclass(frozen=True)
class Link:
    """`source` reaches neuron layer `target` through projection `proj` (None: directly).

    `delay` is the IR delay of the whole path; `src_delay` the part on source -> proj.
    `via`: "" (as the graph says), "select" (a direct link through a selection `Sparse`: one
    hop) or "gather" (the source's pieces gathered into one vector before the projection: one
    hop more).
    """

    source: str
    proj: str | None
    target: str
    delay: int
    src_delay: int
    via: str = ""

    @property
    def hops(self) -> int:
        if self.proj is None:
            return 1 if self.via == "select" else 0
        return 2 if self.via == "gather" else 1


def is_source(graph: Graph, name: str) -> bool:
    node = graph[name]
    return isinstance(node, (Input, Neuron))


def collect_links(graph: Graph) -> list[Link]:
    """Every link into every neuron layer, checking that Lava can express the wiring."""
    links: list[Link] = []
    for name, node in graph.nodes.items():
        if isinstance(node, Output):
            for src, _ in graph.predecessors(name):
                if not is_source(graph, src):
                    raise UnsupportedError(
                        f"output {name!r} is fed by projection {src!r}; the Lava backend "
                        f"records neuron layers, so put a neuron layer (an LI readout) "
                        f"before the output")
            continue
        if isinstance(node, PROJECTIONS):
            for dst, _ in graph.successors(name):
                if isinstance(graph[dst], PROJECTIONS):
                    raise UnsupportedError(
                        f"projection {name!r} feeds projection {dst!r}; Lava has no process "
                        f"for a chain of projections: fold them into one first "
                        f"(nmcompile.passes.fold)")
            sources = graph.predecessors(name)
            if len(sources) > 1 and (exp := lava_exp(name, node)) < 0:
                listing = ", ".join(s for s, _ in sources)
                raise UnsupportedError(
                    f"projection {name!r} sums {len(sources)} sources ({listing}) and has "
                    f"Lava weight_exp {exp} < 0; Lava gives each source its own "
                    f"process and a flooring shift of a sum is not the sum of the shifts. "
                    f"Give each source its own projection")
            continue
        if not isinstance(node, NEURONS):
            continue
        for src, d2 in graph.predecessors(name):
            if is_source(graph, src):
                links.append(Link(src, None, name, d2, 0))
                continue
            for s, d1 in graph.predecessors(src):
                links.append(Link(s, src, name, d1 + d2, d1))
    return links
