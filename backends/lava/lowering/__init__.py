"""Lowering: a quantised graph -> a `Plan` of Lava processes (plain data, no Lava import).

Steps, one module each:
- `links`: read the graph as neuron layers joined by links (through one projection, or direct);
- `timing`: the depth of every layer in Lava steps, the extra delay of every link, and the
  refusal of cycles whose IR delay is shorter than their Lava hops;
- `layout`: the neuron order Lava uses for each layer ((X, Y, C) next to a convolution);
- `warmup`: what each layer does before its first IR step (plain LIF, LIFReset, or gated);
- `pieces`, `blocks`: a graph mapped onto cores (`graph.placement`) as one neuron process per
  layer and core, and one connection process per (source piece, target piece) pair;
- `neurons`, `projections`: one process spec per node, stock Lava where it is exact.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from nmcompile.errors import LimitError, UnsupportedError
from nmcompile.ir import Graph, Input, Output
from nmcompile.ir.names import UniqueNames
from nmcompile.ir.quantized import QLI, QDense

from ..plan import CountSpec, LayerSpec, OutputSpec, Plan, ProcSpec
from .blocks import Block, GroupBlocks, group_blocks
from .layout import layouts
from .links import NEURONS, PROJECTIONS, Link, collect_links
from .neurons import custom_reasons, neuron_params, neuron_spec
from .pieces import Piece, core_groups, make_pieces, route, stock_pieces
from .projections import conv_spec, delay_line, dense_spec, sparse_spec
from .timing import CycleTooShortError, depths, extra_delay
from .warmup import warmup_modes

__all__ = ["MAX_PROCESSES", "CycleTooShortError", "lower"]

SUPPORTED = (Input, Output, *PROJECTIONS, *NEURONS)
#: Lava processes one run may hold (each is an OS process with its shared-memory channels;
#: a long edge delay adds a delay line per 64 steps). `max_processes=` overrides it.
MAX_PROCESSES = 128


class _Names(UniqueNames):
    """Unique Lava process names: the IR node's name, then name#2, name#3, ..."""

    def __init__(self, taken: Iterable[str] = ()) -> None:
        super().__init__(taken, sep="#", first=2)


# LOWER
def lower(graph: Graph, graded_inputs: Iterable[str] = (), *,
          max_processes: int = MAX_PROCESSES) -> Plan:
    """Lower a quantised graph. `graded_inputs` names inputs that carry values other than 0/1
    (their projections then read graded messages). A graph mapped onto cores
    (`graph.placement`) becomes one neuron process per layer and core and one connection
    process per (source piece, target piece) pair (`pieces.py`, `blocks.py`). A graph that
    needs more than `max_processes` Lava processes is refused (`LimitError`) before any
    process spec is made."""
    for name, node in graph.nodes.items():
        if not isinstance(node, SUPPORTED):
            raise UnsupportedError(
                f"the Lava backend lowers quantised graphs only; node {name!r} is a "
                f"{type(node).__name__}. Quantise the graph first: nmcompile.quantize(graph)")
    shapes = graph.validate()
    graded = set(graded_inputs)
    order = graph.schedule()
    inputs = [n for n in order if isinstance(graph[n], Input)]
    neurons = [n for n in order if isinstance(graph[n], NEURONS)]
    if not neurons:
        raise UnsupportedError("the graph has no neuron layer; the Lava backend runs neuron "
                               "layers and records their outputs")
    links = collect_links(graph)
    groups = core_groups(graph, shapes, inputs + neurons)
    stock = stock_pieces(graph, links, groups, shapes)
    perms = layouts(graph, shapes, {n for s, _, t, _ in stock for n in (s, t)})
    names = _Names(neurons)
    pieces = make_pieces(groups, perms, names)
    links = route(graph, links, pieces)
    depth = depths(inputs + neurons, links)

    def spiking(name: str) -> bool:
        return name not in graded if name in inputs else not isinstance(graph[name], QLI)

    plan = Plan(
        inputs=[LayerSpec(n, shapes[n], perms[n], depth[n], spiking(n), True) for n in inputs],
        layers=[_layer_spec(n, shapes[n], pieces[n], depth[n], spiking(n)) for n in neurons],
        procs=[], outputs=[], counts=[])
    work = _link_groups(graph, shapes, groups, stock, pieces, links, depth, order)
    _check_processes(graph, work, plan, max_processes)
    wiring = _Wiring(plan, graph, shapes, names, {n: not spiking(n) for n in inputs + neurons})
    for group in work:
        wiring.group(group)
    custom = {n for n in neurons if custom_reasons(graph[n], neuron_params(
        graph[n], shapes[n], perms[n]))}
    modes = warmup_modes(graph, neurons, links, depth, custom)
    for n in neurons:
        for piece in pieces[n]:  # a custom or gated layer is so in every piece
            spec = neuron_spec(piece.name, graph[n], shapes[n], piece.perm,
                               wiring.feeds.get(piece.name, []), modes[n], depth[n], layer=n)
            spec.core = piece.core
            plan.procs.append(spec)
    for name in graph.outputs:
        plan.outputs.append(OutputSpec(name, [(s, d) for s, d in graph.predecessors(name)]))
    if graph.placement is not None:
        plan.notes.append(_placement_note(graph, plan, pieces, neurons))
    return plan


def _layer_spec(name: str, shape: tuple[int, ...], pieces: list[Piece], depth: int,
                spiking: bool) -> LayerSpec:
    """A neuron layer: its Lava order is its pieces' orders one after the other."""
    perm = pieces[0].perm if len(pieces) == 1 else np.concatenate([p.perm for p in pieces])
    split = [(p.name, p.n) for p in pieces] if len(pieces) > 1 else []
    return LayerSpec(name, shape, perm, depth, spiking, pieces=split)


def _link_groups(graph: Graph, shapes, groups, stock, pieces: dict[str, list[Piece]],
                 links: list[Link], depth: dict[str, int], order: list[str]
                 ) -> list[GroupBlocks]:
    """The links grouped as their processes are shared: one group per (source, projection,
    extra delay, route, target pieces), fanning out to every target layer of the group, in
    the order the processes are made (by first target, source, projection)."""
    keyed: dict[tuple, list[Link]] = {}
    for link in links:
        split = tuple(p.perm.tobytes() for p in pieces[link.target])
        key = (link.source, link.proj, extra_delay(link, depth), link.via, split)
        keyed.setdefault(key, []).append(link)
    position = {n: i for i, n in enumerate(order)}
    out = []
    for (_, _, extra, _, _), members in sorted(
            keyed.items(), key=lambda kv: (position[kv[1][0].target], kv[0][0], str(kv[0][1]))):
        targets = sorted({link.target for link in members}, key=position.__getitem__)
        out.append(group_blocks(graph, shapes, groups, stock, pieces, members, targets, extra))
    return out


def _check_processes(graph: Graph, work: list[GroupBlocks], plan: Plan,
                     max_processes: int) -> None:
    """Count what the run would start (neuron and connection processes, delay lines, one
    source per input and one recorder per neuron process, as `api.run_many` counts them) and
    refuse more than `max_processes`, naming what takes them: the pieces of a mapping, or
    the longest delay."""
    if isinstance(max_processes, bool) or not isinstance(max_processes, int) \
            or max_processes < 1:
        raise LimitError(f"max_processes must be a positive integer, got {max_processes!r}")
    n_pieces = sum(len(layer.procs) for layer in plan.layers)
    total = sum(g.processes() for g in work) + len(plan.inputs) + 2 * n_pieces
    if total <= max_processes:
        return
    if graph.placement is not None and n_pieces > len(plan.layers):
        raise _placed_limit(graph, work, plan, total, max_processes)
    group = max(work, key=lambda g: g.extra)
    via = f" through {group.proj!r}" if group.proj else ""
    raise LimitError(f"the Lava lowering needs {total:,} Lava processes, more than "
                     f"max_processes={max_processes}; the longest delay, {group.extra:,} "
                     f"extra steps from {group.source!r}{via}, alone takes "
                     f"{group.processes()} (a delay line per 64 steps): shorten the edge "
                     f"delays, or pass max_processes={total} to run it anyway")


def _placed_limit(graph: Graph, work: list[GroupBlocks], plan: Plan, total: int,
                  max_processes: int) -> LimitError:
    n_pieces = sum(len(layer.procs) for layer in plan.layers)
    split = sum(len(layer.procs) > 1 for layer in plan.layers)
    links = sum(b.kind != "direct" for g in work for b in g.blocks)
    return LimitError(
        f"the Lava lowering needs {total:,} Lava processes, more than "
        f"max_processes={max_processes}: the mapping onto {graph.placement.n_cores} cores "
        f"splits {split} of its {len(plan.layers)} neuron layers, {n_pieces} pieces in all "
        f"(a neuron process and a recorder each), joined by {links:,} connection processes "
        f"(one per pair of pieces with synapses); map the graph onto fewer, larger cores (a "
        f"chip with more neurons per core, or strategy='sequential', which keeps each "
        f"layer's neurons together), or pass max_processes={total} (the Lava backend's "
        f"option) to run it anyway")


def _placement_note(graph: Graph, plan: Plan, pieces: dict[str, list[Piece]],
                    neurons: list[str]) -> str:
    placement = graph.placement
    split = [f"{n} ({len(pieces[n])})" for n in neurons if len(pieces[n]) > 1]
    chip = placement.chip.get("name", "?")
    return (f"placed on {placement.n_cores} cores of chip {chip!r} ({placement.strategy} "
            f"strategy): a neuron process per layer and core, a connection process per pair "
            f"of pieces with synapses; layers split: {', '.join(split) or 'none'}")


class _Wiring:
    """Appends the processes of each link group to the plan; keeps what feeds each neuron
    process (`feeds`, by process name) and which processes count each projection."""

    def __init__(self, plan: Plan, graph: Graph, shapes: dict[str, tuple[int, ...]],
                 names: _Names, graded: dict[str, bool]) -> None:
        self.plan, self.graph, self.shapes, self.names = plan, graph, shapes, names
        self.graded = graded  # source -> sends values, not 0/1 spikes
        self.feeds: dict[str, list[str]] = {}
        self.counted: set[tuple[str, str]] = set()

    def group(self, group: GroupBlocks) -> None:
        lines: dict[tuple[str, tuple[int, ...]], str] = {}
        gathers: list[str] = []
        split = any(b.source.name != group.source for b in group.blocks)
        count = group.proj is not None and (group.proj, group.source) not in self.counted
        if count:
            self.counted.add((group.proj, group.source))
        for block in group.blocks:
            upstream = self._lines(group, block, lines, split)
            if block.kind == "direct":
                last = upstream
            else:
                gathered = group.via == "gather" and block.kind != "gather"
                last = self._connection(group, block, gathers if gathered else [upstream],
                                        split)
            if block.kind == "gather":
                gathers.append(last)
                continue
            for piece in block.feeds:
                self.feeds.setdefault(piece.name, []).append(last)
            if count and block.counted:
                piece = block.source.name if split and group.via != "gather" else None
                self.plan.counts.append(CountSpec(group.proj, last, group.source,
                                                  group.src_delay, piece))

    def _lines(self, group: GroupBlocks, block: Block,
               made: dict[tuple[str, tuple[int, ...]], str], split: bool) -> str:
        """The identity delay lines before a block, on its source piece (made once per piece
        and delays in a group); the process the block reads from."""
        source = block.source
        if not block.lines:
            return source.name
        key = (source.name, block.lines)
        if key not in made:
            base = f"{group.proj or f'{group.source}->{group.targets[0]}'}.delay"
            base += f"[{source.name}]" if split else ""
            upstream = source.name
            for d in block.lines:
                name = self.names(base)
                spec = delay_line(name, source.n, d, self.graded[group.source], [upstream])
                spec.core = source.core
                self.plan.procs.append(spec)
                upstream = name
            made[key] = upstream
        return made[key]

    def _connection(self, group: GroupBlocks, block: Block, inputs: list[str],
                    split: bool) -> str:
        if block.kind == "gather":
            name = self.names(f"{group.proj}.gather[{block.source.name}]")
        else:
            base = group.proj or f"{group.source}->{group.targets[0]}"
            whole = not split and block.target.name == block.target.layer
            name = self.names(base if whole else
                              f"{base}[{block.source.name}->{block.target.name}]")
        spec = self._spec(group, block, name, inputs)
        # a connection process holds its target's synapses; a gather routes its source's
        spec.core = block.source.core if block.kind == "gather" else block.target.core
        self.plan.procs.append(spec)
        return name

    def _spec(self, group: GroupBlocks, block: Block, name: str, inputs: list[str]
              ) -> ProcSpec:
        graded = self.graded[group.source]
        src, dst = block.source, block.target
        node = self.graph[group.proj] if group.proj else None
        if block.kind == "conv":
            shape = self.shapes[group.proj]
            whole = dst.n == int(np.prod(shape))
            channels = None if whole else np.unique(dst.perm // (shape[1] * shape[2]))
            return conv_spec(name, group.proj, node, self.shapes[group.source], shape, graded,
                             inputs, channels)
        if block.kind == "dense":
            assert isinstance(node, QDense)
            return dense_spec(name, group.proj, node, src.perm, dst.perm, block.rest, graded,
                              inputs)
        rows, cols, values = block.coo
        own = block.kind == "sparse"  # else identities: a selection or a gather
        exp = node.weight_exp if own else 0
        return sparse_spec(name, group.proj if own else None, rows, cols, values,
                           (dst.n, src.n), exp, np.arange(src.n), np.arange(dst.n),
                           block.rest, graded, inputs, note=block.note)
