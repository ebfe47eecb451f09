"""Lowering: a quantised graph -> a `Plan` of Lava processes (plain data, no Lava import).

Steps, one module each:
- `links`: read the graph as neuron layers joined by links (through one projection, or direct);
- `timing`: the depth of every layer in Lava steps, the extra delay of every link, and the
  refusal of cycles whose IR delay is shorter than their Lava hops;
- `layout`: the neuron order Lava uses for each layer ((X, Y, C) next to a convolution);
- `warmup`: what each layer does before its first IR step (plain LIF, LIFReset, or gated);
- `neurons`, `projections`: one process spec per node, stock Lava where it is exact.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from nmcompile.errors import LimitError, UnsupportedError
from nmcompile.ir import Graph, Input, Output
from nmcompile.ir.names import UniqueNames
from nmcompile.ir.quantized import QLI, QConv2d, QDense, QSparse

from ..plan import CountSpec, LayerSpec, OutputSpec, Plan, ProcSpec
from .layout import layouts
from .links import NEURONS, PROJECTIONS, Link, collect_links
from .neurons import custom_reasons, neuron_params, neuron_spec
from .projections import (
    conv_matrix,
    conv_spec,
    conv_stock,
    delay_line,
    dense_spec,
    line_delays,
    qsparse_spec,
    sparse_spec,
    split_delay,
)
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


def lower(graph: Graph, graded_inputs: Iterable[str] = (), *,
          max_processes: int = MAX_PROCESSES) -> Plan:
    """Lower a quantised graph. `graded_inputs` names inputs that carry values other than 0/1
    (their projections then read graded messages). A graph that needs more than
    `max_processes` Lava processes is refused (`LimitError`) before any process spec is made."""
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
    depth = depths(inputs + neurons, links)
    perms = layouts(graph, shapes)

    def spiking(name: str) -> bool:
        return name not in graded if name in inputs else not isinstance(graph[name], QLI)

    plan = Plan(
        inputs=[LayerSpec(n, shapes[n], perms[n], depth[n], spiking(n), True) for n in inputs],
        layers=[LayerSpec(n, shapes[n], perms[n], depth[n], spiking(n)) for n in neurons],
        procs=[], outputs=[], counts=[])
    names = _Names(neurons)
    feeds: dict[str, list[str]] = {n: [] for n in neurons}  # neuron -> processes into a_in
    counted: set[tuple[str, str]] = set()

    # One process chain per (source, projection, extra delay); it fans out to every target.
    # Targets in another neuron order (next to a convolution) need their own rows.
    groups: dict[tuple[str, str | None, int, bytes], list[Link]] = {}
    for link in links:
        key = (link.source, link.proj, extra_delay(link, depth), perms[link.target].tobytes())
        groups.setdefault(key, []).append(link)
    _check_processes(graph, groups, len(inputs), len(neurons), max_processes)
    position = {n: i for i, n in enumerate(order)}
    for (source, proj, extra, _), members in sorted(
            groups.items(), key=lambda kv: (position[kv[1][0].target], kv[0][0], str(kv[0][1]))):
        targets = sorted({link.target for link in members}, key=position.__getitem__)
        last = _chain(plan, graph, shapes, perms, names, source, proj, extra, targets[0],
                      not spiking(source))
        for target in targets:
            feeds[target].append(last)
        if proj is not None and (proj, source) not in counted:
            counted.add((proj, source))
            plan.counts.append(CountSpec(proj, last, source, members[0].src_delay))

    custom = {n for n in neurons if custom_reasons(graph[n], neuron_params(
        graph[n], shapes[n], perms[n]))}
    modes = warmup_modes(graph, neurons, links, depth, custom)
    for n in neurons:
        plan.procs.append(neuron_spec(n, graph[n], shapes[n], perms[n], feeds[n], modes[n],
                                      depth[n]))
    for name in graph.outputs:
        plan.outputs.append(OutputSpec(name, [(s, d) for s, d in graph.predecessors(name)]))
    return plan


def _chain_length(graph: Graph, proj: str | None, extra: int) -> int:
    """Processes `_chain` appends for one link group: its delay lines and its projection."""
    if proj is None:
        return len(line_delays(extra)) if extra else 0
    node = graph[proj]
    if isinstance(node, QConv2d) and conv_stock(node):
        return (len(line_delays(extra)) if extra else 0) + 1
    return len(split_delay(extra)[0]) + 1


def _check_processes(graph: Graph, groups: dict, n_inputs: int, n_neurons: int,
                     max_processes: int) -> None:
    """Count what the run would start (neuron and projection processes, delay lines, one
    source per input and one recorder per layer, as `api.run_many` counts them) and refuse
    more than `max_processes`, naming the longest delay."""
    if isinstance(max_processes, bool) or not isinstance(max_processes, int) \
            or max_processes < 1:
        raise LimitError(f"max_processes must be a positive integer, got {max_processes!r}")
    chains = {key: _chain_length(graph, key[1], key[2]) for key in groups}
    total = sum(chains.values()) + n_inputs + 2 * n_neurons
    if total <= max_processes:
        return
    (source, proj, extra, _), _n = max(chains.items(), key=lambda kv: kv[0][2])
    via = f" through {proj!r}" if proj else ""
    raise LimitError(f"the Lava lowering needs {total:,} Lava processes, more than "
                     f"max_processes={max_processes}; the longest delay, {extra:,} extra "
                     f"steps from {source!r}{via}, alone takes {_n} (a delay line per 64 "
                     f"steps): shorten the edge delays, or pass max_processes={total} to "
                     f"run it anyway")


def _chain(plan: Plan, graph: Graph, shapes, perms, names: _Names, source: str,
           proj: str | None, extra: int, target: str, graded: bool) -> str:
    """Append the processes realising one link group; return the name of the last one (or the
    source itself for a direct link without extra delay)."""
    upstream = source
    n_src = int(np.prod(shapes[source]))

    def lines(total: int, base: str) -> None:
        nonlocal upstream
        for d in line_delays(total) if total else []:
            name = names(f"{base}.delay")
            plan.procs.append(delay_line(name, n_src, d, graded, [upstream]))
            upstream = name

    if proj is None:
        lines(extra, f"{source}->{target}")
        return upstream
    node = graph[proj]
    perm_in, perm_out = perms[source], perms[target]
    if isinstance(node, QConv2d) and conv_stock(node):
        lines(extra, proj)
        name = names(proj)
        plan.procs.append(conv_spec(name, proj, node, shapes[source], shapes[proj], graded,
                                    [upstream]))
        return name
    before, rest = split_delay(extra)
    for d in before:
        name = names(f"{proj}.delay")
        plan.procs.append(delay_line(name, n_src, d, graded, [upstream]))
        upstream = name
    name = names(proj)
    if isinstance(node, QDense):
        spec: ProcSpec = dense_spec(name, proj, node, perm_in, perm_out, rest, graded,
                                    [upstream])
    elif isinstance(node, QSparse):
        spec = qsparse_spec(name, proj, node, perm_in, perm_out, rest, graded, [upstream])
    else:  # a convolution Lava's Conv cannot compute exactly: its unrolled matrix
        rows, cols, values = conv_matrix(node, shapes[source], shapes[proj])
        n_out, n_in = int(np.prod(shapes[proj])), n_src
        spec = sparse_spec(name, proj, rows, cols, values, (n_out, n_in), node.weight_exp,
                           perm_in, perm_out, rest, graded, [upstream],
                           note=f"convolution unrolled to Sparse: Lava's Conv ignores "
                                f"weight_exp ({node.weight_exp} < 0)")
    plan.procs.append(spec)
    return name
