"""What each core holds under a placement, and the check that it fits the chip.

Per core: neurons; synaptic memory in bits (a dense or sparse synapse, or a convolution's
unrolled synapse, costs the chip's bits for its kind; a convolution stored as its kernel
costs its kernel slice once per output channel present on the core); input axons (distinct
(source neuron, projection) pairs reaching the core); output axons ((neuron, destination
core) pairs leaving it). Inputs enter from the host and occupy no core.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import LimitError
from ..ir import Graph, Input
from ..ir.neurons import Neuron
from ..ir.quantized import QConv2d, QDense
from .chips import Chip
from .reach import fanin, reach

LIMITS = ("neurons", "synapse_bits", "input_axons", "output_axons")


@dataclass(frozen=True)
class Link:
    """`source` (an input or neuron layer) reaches neuron layer `target` through `proj`
    (None: a direct link)."""

    source: str
    proj: str | None
    target: str


def links(graph: Graph) -> list[Link]:
    """Every link into every neuron layer, in schedule order of the targets."""
    out = []
    for name in graph.schedule():
        if not isinstance(graph[name], Neuron):
            continue
        for src, _ in graph.predecessors(name):
            if isinstance(graph[src], (Input, Neuron)):
                out.append(Link(src, None, name))
            else:
                out.extend(Link(s, src, name) for s, _ in graph.predecessors(src))
    return out


def kind(proj) -> str:
    """The chip's synapse kind for a projection (a direct link is a one-synapse sparse row)."""
    return "dense" if isinstance(proj, QDense) else "conv" if isinstance(proj, QConv2d) \
        else "sparse"


def neuron_bits(graph: Graph, chip: Chip, layer: str, shapes) -> np.ndarray:
    """Synaptic memory bits each neuron of `layer` needs for its own synapses (a kernel-stored
    convolution's kernel is counted per core, in `core_loads`)."""
    bits = np.zeros(math.prod(shapes[layer]), np.int64)
    for link in links(graph):
        if link.target != layer:
            continue
        proj = graph[link.proj] if link.proj else None
        if isinstance(proj, QConv2d) and chip.conv_stored == "kernel":
            continue
        bits += fanin(proj, shapes[link.source], shapes[layer]) * chip.synapse_bits[kind(proj)]
    return bits


def kernel_bits(proj: QConv2d, chip: Chip) -> int:
    """Bits of one output channel's kernel slice."""
    return math.prod(proj.weight.shape[1:]) * chip.synapse_bits["conv"]


@dataclass
class CoreLoads:
    """Arrays over global cores, one per limit in `LIMITS`."""

    neurons: np.ndarray
    synapse_bits: np.ndarray
    input_axons: np.ndarray
    output_axons: np.ndarray

    def limit(self, chip: Chip, key: str) -> int:
        return {"neurons": chip.neurons, "synapse_bits": chip.synapse_memory_bits,
                "input_axons": chip.input_axons, "output_axons": chip.output_axons}[key]


Pairs = dict[Link, tuple[np.ndarray, np.ndarray]]  # a sparse link's `reach.sparse_pairs`


def core_loads(graph: Graph, chip: Chip, cores: dict[str, np.ndarray], n_cores: int,
               pairs: Pairs | None = None) -> CoreLoads:
    shapes = graph.shapes()
    n = n_cores
    loads = CoreLoads(*(np.zeros(n, np.int64) for _ in LIMITS))
    for layer, where in cores.items():
        loads.neurons += np.bincount(where, minlength=n)
        loads.synapse_bits += np.bincount(where, neuron_bits(graph, chip, layer, shapes),
                                          minlength=n).astype(np.int64)
    for link in links(graph):
        if link.target not in cores:  # read out by the host
            continue
        proj = graph[link.proj] if link.proj else None
        tgt = cores[link.target]
        if isinstance(proj, QConv2d) and chip.conv_stored == "kernel":
            channels = tgt.reshape(shapes[link.target][0], -1)
            for co in range(channels.shape[0]):
                loads.synapse_bits[np.unique(channels[co])] += kernel_bits(proj, chip)
        src_placed = link.source in cores
        gs = cores[link.source] if src_placed else np.zeros(math.prod(shapes[link.source]),
                                                              np.int64)
        m = reach(proj, shapes[link.source], shapes[link.target], gs, tgt,
                  np.ones(gs.size), n if src_placed else 1, n, (pairs or {}).get(link))
        loads.input_axons += np.rint(np.asarray(m.sum(axis=0)).reshape(-1)).astype(np.int64)
        if src_placed:
            loads.output_axons += np.rint(np.asarray(m.sum(axis=1)).reshape(-1)).astype(np.int64)
    return loads


def check(graph: Graph, chip: Chip, cores: dict[str, np.ndarray], n_cores: int,
          pairs: Pairs | None = None) -> CoreLoads:
    """The loads, or a LimitError naming the first core over a limit and its layers."""
    loads = core_loads(graph, chip, cores, n_cores, pairs)
    for key in LIMITS:
        values = getattr(loads, key)
        over = np.flatnonzero(values > loads.limit(chip, key))
        if over.size:
            core = int(over[0])
            held = [layer for layer, where in cores.items() if (where == core).any()]
            raise LimitError(f"core {core} holds {int(values[core]):,} {key.replace('_', ' ')}"
                             f" (layers {', '.join(held)}), over chip {chip.name!r}'s "
                             f"{loads.limit(chip, key):,} per core")
    return loads


def refuse_unfit(graph: Graph, chip: Chip, host: frozenset[str] = frozenset()) -> None:
    """A LimitError naming the first layer one of whose neurons cannot fit any core."""
    shapes = graph.shapes()
    for name in graph.schedule():
        if not isinstance(graph[name], Neuron) or name in host:
            continue
        bits = neuron_bits(graph, chip, name, shapes)
        conv = sum(kernel_bits(graph[ln.proj], chip) for ln in links(graph)
                   if ln.target == name and isinstance(graph[ln.proj] if ln.proj else None,
                                                       QConv2d)
                   and chip.conv_stored == "kernel")
        worst = int(bits.max(initial=0)) + conv
        if worst > chip.synapse_memory_bits:
            raise LimitError(f"a neuron of layer {name!r} needs {worst:,} bits of synaptic "
                             f"memory (its fan-in), more than one core of chip {chip.name!r} "
                             f"holds ({chip.synapse_memory_bits:,}); use a chip with larger "
                             f"cores or a sparser layer")
        fan = sum(fanin(graph[ln.proj] if ln.proj else None, shapes[ln.source], shapes[name])
                  for ln in links(graph) if ln.target == name)
        if np.max(fan, initial=0) > chip.input_axons:
            raise LimitError(f"a neuron of layer {name!r} has a fan-in of "
                             f"{int(np.max(fan)):,} source neurons, more than one core of chip "
                             f"{chip.name!r} has input axons ({chip.input_axons:,}); read it "
                             f"out on the host (host_layers=[{name!r}], --host-layer {name}) "
                             f"or give it fewer inputs")
