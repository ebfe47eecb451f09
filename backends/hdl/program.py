"""A quantised graph as the core's program: layer and projection tables, fan-out synapse lists,
neuron parameters, and the sizes and widths the RTL is built with (docs/hdl.md).

The core (`rtl/nm_core.v`) knows neuron layers, inputs and projections only:

- a *layer* is an `Input` or a neuron node (`QLIF`, `QALIF`, `QLI`), in schedule order;
- a *projection* joins one source layer to one neuron layer: a `QDense`, `QSparse` or
  `QConv2d` node with its two edges, source -(d0)-> projection -(d1)-> layer, or a direct
  edge source -(d0)-> neuron (an identity, d1 = 0, not counted). The event delay d0 is kept
  in the source's event ring, the dendritic delay d1 in the projection's ring of d1 + 1
  accumulator slots (as Loihi does), so the projection computes, and counts its events, at
  the step the emulator's projection node does;
- an `Output` is the host's business: the sum of its sources' outputs, shifted by its edges'
  delays, read from the per-layer events the core emits.

A projection's synapses are stored as fan-out lists per source neuron: dense ones as a row
of weights whose targets are implied (0..n-1), sparse and convolution ones as (target,
weight) pairs (a convolution is unrolled into its synapses: simple hardware, paid in memory).
Weights that share a power of two are stored divided by it and the projection's exponent
raised to match (exact: the shift applies to the sum).

The lists are never built whole: each projection's `Rows` makes them a block of sources at a
time (at most about `CHUNK` synapses), and the builder's sums and the `.hex` writer read them
block by block, so a convolution of millions of synapses costs a few blocks of memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nmcompile.errors import UnsupportedError
from nmcompile.ir import Graph, Input, Output
from nmcompile.ir.quantized import QALIF, QLI, QLIF, STATE_BITS, QConv2d, QDense, QSparse
from nmcompile.ir.synapses import conv_fanout, conv_output_hw, conv_source_synapses, sparse_fanout
from nmcompile.mapping.chips import Chip
from nmcompile.quantization.profiles import Profile, get_profile

from .limits import DEFAULT_CHIP, CoreLimits, synapse_count

PROJECTIONS = (QDense, QSparse, QConv2d)
NEURONS = (QLIF, QALIF, QLI)
KIND = {"input": 0, "lif": 1, "alif": 2, "li": 3}
#: Synapses (for a convolution: candidate kernel taps) made per block of a projection's lists.
CHUNK = 1 << 16

#: Parameters that are sizes: a program runs on any build whose sizes are at least its own.
SIZE_PARAMS = ("NL", "NP", "NO", "IW", "VALW", "GRADED", "WW", "EXPW", "LENW", "DLW", "W_DEPTH",
               "T_DEPTH", "ROW_DEPTH", "E_DEPTH", "A_DEPTH", "S_DEPTH", "P_DEPTH", "ACCW", "AW",
               "UW", "HAS_TH", "CNTW", "TW")


@dataclass
class Layer:
    """One row of the layer table."""

    name: str
    kind: str                 # input, lif, alif, li
    n: int
    subtract: bool = False
    sbase: int = 0            # first neuron's state address
    pbase: int = 0            # first parameter set
    per_neuron: bool = False  # one parameter set per neuron (else one for the layer)
    ring: bool = False        # its events are read by a projection
    rbase: int = 0            # ring: first word, words per step (n + 1: count, events), end
    rsize: int = 0
    rend: int = 0
    nproj: int = 0            # projections into it: pfirst .. pfirst + nproj - 1
    pfirst: int = 0


@dataclass
class Rows:
    """A projection's fan-out lists, made on demand: `lengths[i]` synapses leave source i, and
    `make(a, b)` gives the (targets, weights) of sources a .. b - 1, source by source (dense:
    no targets). `step` sources at a time hold at most about `CHUNK` synapses, so the full
    lists (for a convolution, millions of unrolled synapses) never exist at once. `shift`,
    `top` and `reach` are set by one pass (`_scan`): the weights' common power of two, the
    largest stored |weight|, and each target's sum of stored |weight|."""

    lengths: np.ndarray
    step: int
    make: Callable[[int, int], tuple[np.ndarray, np.ndarray]]
    shift: int = 0
    top: int = 0
    reach: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def count(self) -> int:
        return int(self.lengths.sum())

    def blocks(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(targets, stored weights) per block of `step` sources, in source order."""
        n = len(self.lengths)
        for a in range(0, n, self.step):
            t, w = self.make(a, min(a + self.step, n))
            yield t, w >> self.shift


@dataclass
class Projection:
    """One row of the projection table; `name` is the graph's projection node, or None for a
    direct edge (an identity, whose events the emulator does not count)."""

    name: str | None
    src: int                  # layer indices
    dst: int
    delay: int                # event delay d0 (source -> projection)
    dendritic: int            # dendritic delay d1 (projection -> layer)
    exp: int                  # weight_exp plus the stored weights' common power of two
    is_list: bool             # (target, weight) pairs; else dense rows with implied targets
    off: int = 0              # d0 * words per step of the source's ring
    rowbase: int = 0
    accbase: int = 0          # accumulator ring: d1 + 1 slots of n_dst words
    n_dst: int = 0
    count: bool = True
    rows: Rows = field(default=None, repr=False)  # type: ignore[assignment]
    #: A mesh piece of the same link into the same neurons: this one adds into its
    #: accumulator words (backends/hdl/mesh.py), so the layer shifts the link's whole sum.
    shares: Projection | None = field(default=None, repr=False)


@dataclass
class Program:
    """Everything the core needs for one graph; `memories` are unpadded integer images."""

    layers: list[Layer]
    projections: list[Projection]
    ops: list[tuple[str, int]]   # ("proj", p) or ("layer", l), in the graph's schedule order
    memories: dict[str, np.ndarray]
    params: dict[str, int]
    outputs: dict[str, list[tuple[str, int]]]
    shapes: dict[str, tuple[int, ...]]
    bounds: dict[str, int]

    def index(self, name: str) -> int:
        return next(i for i, layer in enumerate(self.layers) if layer.name == name)

    @property
    def inputs(self) -> list[Layer]:
        return [layer for layer in self.layers if layer.kind == "input"]

    @property
    def neuron_layers(self) -> list[Layer]:
        return [layer for layer in self.layers if layer.kind != "input"]


def signed_bits(bound: int) -> int:
    """Width of a two's-complement number holding every value in [-bound, bound]."""
    return max(2, int(bound).bit_length() + 1)


def addr_bits(depth: int) -> int:
    return max(1, (int(depth) - 1).bit_length())


def graph_profile(graph: Graph) -> Profile:
    """The profile the graph was quantised for: its weight width and delays bound the core."""
    return get_profile(graph.metadata.get("quantization", {}).get("profile", "loihi2"))


# --------------------------------------------------------------------------------------------
# structure: what the core can take
# --------------------------------------------------------------------------------------------


def check_structure(graph: Graph) -> None:
    """Refuse, naming the node, what the core cannot run (UnsupportedError)."""
    for name, node in graph.nodes.items():
        if not isinstance(node, (Input, Output, *PROJECTIONS, *NEURONS)):
            quantised = "" if node.quantized else " Quantise the graph first: nmcompile.quantize"
            raise UnsupportedError(f"the verilog backend runs quantised graphs only; node "
                                   f"{name!r} is a {type(node).__name__}.{quantised}")
    for name, node in graph.nodes.items():
        preds, succs = graph.predecessors(name), graph.successors(name)
        if isinstance(node, PROJECTIONS):
            if len(preds) != 1 or len(succs) != 1:
                raise UnsupportedError(
                    f"projection {name!r} has {len(preds)} inputs and {len(succs)} outputs; the "
                    f"verilog core takes one of each (give each source or target its own "
                    f"projection)")
            src, dst = preds[0][0], succs[0][0]
            if not _is_source(graph[src]):
                raise UnsupportedError(
                    f"projection {name!r} is fed by {src!r} ({type(graph[src]).__name__}); the "
                    f"verilog core feeds projections from inputs and spiking layers only "
                    f"(fold chained projections with nmcompile.quantize)")
            if not isinstance(graph[dst], NEURONS):
                raise UnsupportedError(
                    f"projection {name!r} feeds {dst!r} ({type(graph[dst]).__name__}); the "
                    f"verilog core delivers synaptic input to neuron layers only")
        elif isinstance(node, NEURONS):
            for src, _ in preds:
                if not (isinstance(graph[src], PROJECTIONS) or _is_source(graph[src])):
                    raise UnsupportedError(
                        f"neuron layer {name!r} is fed directly by {src!r} "
                        f"({type(graph[src]).__name__}); only inputs and spiking layers can "
                        f"feed a layer without a projection")
        elif isinstance(node, Output):
            for src, _ in preds:
                if not isinstance(graph[src], (Input, *NEURONS)):
                    raise UnsupportedError(
                        f"output {name!r} reads {src!r} ({type(graph[src]).__name__}); the "
                        f"verilog core emits the events of inputs and neuron layers only")


def _is_source(node) -> bool:
    return isinstance(node, (Input, QLIF, QALIF))


# --------------------------------------------------------------------------------------------
# fan-out lists
# --------------------------------------------------------------------------------------------


def _rows(node, n_src: int, n_dst: int, in_shape: tuple[int, ...]) -> Rows:
    """The fan-out lists of a projection node (None: a direct edge, an identity), made a
    block of sources at a time. Weights and targets become int64 per block, before any
    shift, sum or abs: the IR stores them narrow."""
    if node is None:
        return Rows(np.ones(n_src, np.int64), CHUNK,
                    lambda a, b: (np.arange(a, b), np.ones(b - a, np.int64)))
    if isinstance(node, QDense):
        w = node.weight
        return Rows(np.full(n_src, n_dst, np.int64), max(1, CHUNK // n_dst),
                    lambda a, b: (np.zeros(0, np.int64), w[:, a:b].T.ravel().astype(np.int64)))
    if isinstance(node, QSparse):
        # The entries grouped by source, each source's in their order in the node: one
        # index per entry, the size of the node's own arrays.
        order = np.argsort(node.cols, kind="stable")
        lengths = sparse_fanout(node.cols, node.values, n_src)
        starts = np.concatenate([[0], np.cumsum(lengths)])

        def sparse(a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
            take = order[starts[a]:starts[b]]
            return node.rows[take].astype(np.int64), node.values[take].astype(np.int64)

        return Rows(lengths, max(1, CHUNK // max(1, int(lengths.max(initial=0)))), sparse)
    c_out, _, kh, kw = node.weight.shape
    geometry = (node.stride, node.padding, node.dilation)
    out_shape = (c_out, *conv_output_hw(in_shape[1:], (kh, kw), *geometry))
    # A block is sized by the taps it tries (output channels of the group x kernel), not
    # by the synapses found: a strided kernel misses most of them.
    weight = node.weight.astype(np.int64)  # the program's words are int64, never narrow
    return Rows(conv_fanout(node.weight, in_shape, out_shape, *geometry, node.groups),
                max(1, CHUNK // (c_out // node.groups * kh * kw)),
                lambda a, b: conv_source_synapses(weight, in_shape, out_shape, *geometry,
                                                  node.groups, a, b))


def _scan(rows: Rows, n_dst: int, is_list: bool) -> None:
    """One pass over the lists: the largest power of two dividing every weight (0 when all
    are zero), at most 8, stored divided out in `rows.shift`; the largest stored |weight|
    and each target's sum of stored |weight| (exact: every weight is a multiple of 2^shift)."""
    low, top = 0, 0
    reach = np.zeros(n_dst, np.int64)
    for t, w in rows.blocks():
        mag = np.abs(w)
        nz = mag[mag != 0]
        if nz.size:
            block_low = int(np.bitwise_and(nz, -nz).min())  # lowest set bit of each
            low = min(low, block_low) if low else block_low
        top = max(top, int(mag.max(initial=0)))
        if is_list:
            np.add.at(reach, t, mag)
        else:  # dense rows: source by source, targets 0 .. n_dst - 1
            reach += mag.reshape(-1, n_dst).sum(axis=0)
    rows.shift = min(low.bit_length() - 1, 8) if low else 0
    rows.top, rows.reach = top >> rows.shift, reach >> rows.shift


def _projection(name: str | None, node, src: int, dst: int, delays: tuple[int, int],
                n_src: int, n_dst: int, in_shape: tuple[int, ...]) -> Projection:
    rows = _rows(node, n_src, n_dst, in_shape)
    if node is None:  # a direct edge: identity, not counted
        _scan(rows, n_dst, True)
        return Projection(None, src, dst, *delays, 0, True, count=False, n_dst=n_dst,
                          rows=rows)
    is_list = not isinstance(node, QDense)
    _scan(rows, n_dst, is_list)
    return Projection(name, src, dst, *delays, node.weight_exp + rows.shift, is_list,
                      n_dst=n_dst, rows=rows)


# --------------------------------------------------------------------------------------------
# the program
# --------------------------------------------------------------------------------------------


def _per_neuron(node, field_name: str, shape: tuple[int, ...], default: int = 0) -> np.ndarray:
    value = getattr(node, field_name, default)
    return np.broadcast_to(np.asarray(value, np.int64), shape).ravel()


def _neuron_params(node, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    bias = np.left_shift(_per_neuron(node, "bias_mant", shape),
                         _per_neuron(node, "bias_exp", shape))
    return {"du": _per_neuron(node, "du", shape), "dv": _per_neuron(node, "dv", shape),
            "vth": _per_neuron(node, "vth", shape), "bias": bias,
            "vstep": _per_neuron(node, "vth_step", shape), "da": _per_neuron(node, "da", shape)}


def build_program(graph: Graph, *, input_max: int = 1, chip: str | Path | Chip = DEFAULT_CHIP,
                  limits: CoreLimits | None = None) -> Program:
    """Lower a quantised graph to the core's tables and memory images.

    `input_max`: the largest |value| an `Input` delivers (1: spikes); it sizes the event
    values and the accumulators. `chip`: the chip whose core sizes this one (neurons,
    synapse words; `CoreLimits.of`), unless `limits` gives them. Limits are checked
    (LimitError naming the layer) before any memory image is allocated.
    """
    check_structure(graph)
    shapes = graph.validate()
    prof = graph_profile(graph)
    if prof.state_bits != STATE_BITS:
        raise UnsupportedError(f"profile {prof.name!r} has {prof.state_bits}-bit state; the "
                               f"verilog core implements the {STATE_BITS}-bit neuron")
    limits = limits or CoreLimits.of(chip, prof)
    order = list(shapes)
    sizes = {name: int(np.prod(shape)) for name, shape in shapes.items()}
    limits.check_layers(graph, order, sizes)

    layers = _layers(graph, order, sizes)
    index = {layer.name: i for i, layer in enumerate(layers)}
    specs = _projection_specs(graph, layers, limits)
    limits.check_synapses([(name or f"{src} -> {dst}",
                            synapse_count(node, shapes[src], sizes[src]))
                           for name, node, src, dst, _ in specs])
    limits.check_accumulators([(name or dst, sizes[dst] * (d[1] + 1))
                               for name, _, _, dst, d in specs])
    projections = []
    for name, node, src, dst, delays in specs:
        proj = _projection(name, node, index[src], index[dst], delays, sizes[src], sizes[dst],
                           shapes[src])
        if name is not None:
            limits.check_weights(name, np.array([proj.rows.top]))
        projections.append(proj)

    ops = _ops(order, layers, index, projections)
    ring_words = _place_rings(layers, projections, limits)
    s_words, params_rows = _place_state(graph, layers, shapes)
    memories, n_list = _synapse_memories(projections)
    acc_words = _place_accumulators(projections)
    for key in ("du", "dv", "vth", "bias", "vstep", "da"):
        memories[f"p_{key}"] = np.concatenate([row[key] for row in params_rows])

    bounds = _bounds(projections, layers, input_max, limits)
    params = _params(layers, projections, memories, bounds, input_max, n_list, acc_words,
                     s_words, ring_words, len(ops))
    outputs = {name: graph.predecessors(name) for name in graph.outputs}
    return Program(layers, projections, ops, memories, params, outputs,
                   {k: tuple(v) for k, v in shapes.items()}, bounds)


def _layers(graph: Graph, order: list[str], sizes: dict[str, int]) -> list[Layer]:
    """Every input and neuron node, in schedule order."""
    layers: list[Layer] = []
    for name in order:
        node = graph[name]
        if isinstance(node, Input):
            layers.append(Layer(name, "input", sizes[name]))
        elif isinstance(node, NEURONS):
            kind = "alif" if isinstance(node, QALIF) else "li" if isinstance(node, QLI) else "lif"
            layers.append(Layer(name, kind, sizes[name],
                                subtract=getattr(node, "reset", "zero") == "subtract"))
    return layers


def _projection_specs(graph: Graph, layers: list[Layer], limits: CoreLimits) -> list[tuple]:
    """(name, node, source, target, (d0, d1)) per projection, grouped by target layer (the
    core walks pfirst .. pfirst + nproj - 1); sets each layer's pfirst and nproj."""
    specs: list[tuple] = []
    for layer in layers:
        if layer.kind == "input":
            continue
        layer.pfirst = len(specs)
        for src, d1 in graph.predecessors(layer.name):
            if isinstance(graph[src], PROJECTIONS):
                (source, d0), = graph.predecessors(src)
                specs.append((src, graph[src], source, layer.name, (d0, d1)))
            else:
                specs.append((None, None, src, layer.name, (d1, 0)))
            limits.check_delay(specs[-1][0] or layer.name, max(specs[-1][4]))
        layer.nproj = len(specs) - layer.pfirst
    return specs


def _ops(order: list[str], layers: list[Layer], index: dict[str, int],
         projections: list[Projection]) -> list[tuple[str, int]]:
    """The op list: each projection at its node's place in the schedule (a direct edge just
    before its layer), each layer update at the layer's: the emulator's order."""
    by_name = {p.name: k for k, p in enumerate(projections) if p.name is not None}
    ops: list[tuple[str, int]] = []
    for name in order:
        if name in by_name:
            ops.append(("proj", by_name[name]))
        elif name in index and layers[index[name]].kind != "input":
            k = index[name]
            ops += [("proj", q) for q in range(layers[k].pfirst, layers[k].pfirst + layers[k].nproj)
                    if projections[q].name is None]
            ops.append(("layer", k))
    return ops


def _place_rings(layers: list[Layer], projections: list[Projection], limits: CoreLimits,
                 senders: frozenset[int] = frozenset()) -> int:
    """Event rings: D + 1 regions of n + 1 words (a count, then the events) per source layer
    read by a projection (D: its longest event delay), and one region per layer in `senders`
    (a mesh core's send op reads its spikes of the step); returns the words used."""
    word = 0
    for i, layer in enumerate(layers):
        delays = [p.delay for p in projections if p.src == i] + ([0] if i in senders else [])
        if not delays:
            continue
        layer.ring, layer.rbase, layer.rsize = True, word, layer.n + 1
        layer.rend = word + (max(delays) + 1) * layer.rsize
        word = layer.rend
        limits.check_ring(word, layer.name)
    for p in projections:
        p.off = p.delay * layers[p.src].rsize
    return word


def _place_state(graph: Graph, layers: list[Layer], shapes: dict[str, tuple[int, ...]],
                 members: list[np.ndarray | None] | None = None
                 ) -> tuple[int, list[dict[str, np.ndarray]]]:
    """Neuron state bases and parameter sets (one per layer unless its neurons differ);
    returns the state words and the parameter rows, in layer order. `members[i]`: the
    neurons of its graph layer that layer i holds (a mesh core's piece), None: all."""
    params_rows: list[dict[str, np.ndarray]] = []
    s_word = p_word = 0
    for i, layer in enumerate(layers):
        if layer.kind == "input":
            continue
        layer.sbase = s_word
        s_word += layer.n
        values = _neuron_params(graph[layer.name], shapes[layer.name])
        if members is not None and members[i] is not None:
            values = {k: v[members[i]] for k, v in values.items()}
        layer.per_neuron = any(np.unique(v).size > 1 for v in values.values())
        layer.pbase = p_word
        if not layer.per_neuron:
            values = {k: v[:1] for k, v in values.items()}
        params_rows.append(values)
        p_word += len(values["du"])
    return s_word, params_rows


def _synapse_memories(projections: list[Projection]) -> tuple[dict[str, np.ndarray], int]:
    """The (start, length) rows; returns them and the list synapses (the target words).

    Addresses go to list projections first, so that their targets fill the target memory
    from 0 (dense rows need none); rows are in projection order (`rowbase`). The weights and
    targets themselves are `synapse_words`, made while they are written."""
    base: dict[int, int] = {}
    address = 0
    for k in _layout(projections):
        base[k] = address
        address += projections[k].rows.count
    row_start, row_len = [], []
    for k, p in enumerate(projections):
        p.rowbase = sum(len(r) for r in row_len)
        row_len.append(p.rows.lengths)
        row_start.append(base[k] + np.cumsum(p.rows.lengths) - p.rows.lengths)
    memories = {
        "row_start": np.concatenate(row_start or [np.zeros(0, np.int64)]).astype(np.int64),
        "row_len": np.concatenate(row_len or [np.zeros(0, np.int64)]).astype(np.int64),
    }
    return memories, sum(p.rows.count for p in projections if p.is_list)


def _layout(projections: list[Projection]) -> list[int]:
    """Projection numbers in synapse-memory order: list projections first."""
    return ([k for k, p in enumerate(projections) if p.is_list]
            + [k for k, p in enumerate(projections) if not p.is_list])


def synapse_words(program: Program, memory: str) -> Iterator[np.ndarray]:
    """The words of the `weights` or `targets` memory, a block of synapses at a time, in
    `_synapse_memories`' layout (dense rows have no targets)."""
    for k in _layout(program.projections):
        p = program.projections[k]
        if memory == "weights" or p.is_list:
            for t, w in p.rows.blocks():
                yield w if memory == "weights" else t


def _place_accumulators(projections: list[Projection]) -> int:
    """Accumulator rings: d1 + 1 slots of n_dst words per projection (one that `shares`
    another's takes its words); returns the words."""
    acc_word = 0
    for p in projections:
        if p.shares is None:
            p.accbase = acc_word
            acc_word += p.n_dst * (p.dendritic + 1)
    for p in projections:
        if p.shares is not None:
            p.accbase = p.shares.accbase
    return acc_word


def u_bits(a: int) -> int:
    """Width of u: [-2^23, 2^23] while |a << 6| <= 2^24; beyond, u can drift (one wrap
    removes only 2^24) up to about 2^18 * |a|, which the emulator's int64 follows."""
    return 25 if a <= 2**18 else a.bit_length() + 20


def _bounds(projections: list[Projection], layers: list[Layer], input_max: int,
            limits: CoreLimits) -> dict[str, int]:
    """Worst-case magnitudes: per projection accumulator, per layer synaptic input a."""
    acc_max, a_max = 1, 1
    per_layer: dict[int, np.ndarray] = {}
    for p in projections:
        vmax = input_max if layers[p.src].kind == "input" else 1
        total = p.rows.reach * vmax
        acc_max = max(acc_max, int(total.max(initial=0)))
        shifted = total << p.exp if p.exp >= 0 else -((-total) >> -p.exp)
        per_layer[p.dst] = per_layer.get(p.dst, 0) + shifted
        limits.check_bounds(layers[p.dst].name, signed_bits(acc_max), 0)
    for k, v in per_layer.items():
        a_max = max(a_max, int(np.max(v, initial=0)))
        limits.check_bounds(layers[k].name, signed_bits(a_max), u_bits(a_max))
    return {"acc": acc_max, "a": a_max}


def _params(layers, projections, memories, bounds, input_max, n_list, acc_words, s_words,
            ring_words, n_ops) -> dict[str, int]:
    """The build's sizes and widths (the Verilog parameters of nm_params.vh)."""
    n_words = sum(p.rows.count for p in projections)
    exps = [abs(p.exp) for p in projections] or [0]
    a = bounds["a"]
    uw = u_bits(a)
    graded = int(input_max > 1)
    p = {
        "NL": len(layers), "NP": max(1, len(projections)), "NO": max(1, n_ops),
        "IW": max(1, (max(layer.n for layer in layers) - 1).bit_length()),
        "VALW": signed_bits(input_max) if graded else 1, "GRADED": graded,
        "WW": signed_bits(max([1, *(p.rows.top for p in projections)])),
        "EXPW": signed_bits(max(exps)),
        "LENW": max(1, int(memories["row_len"].max(initial=1)).bit_length()),
        "DLW": max(1, max((p.delay for p in projections), default=0).bit_length()),
        "W_DEPTH": max(1, n_words), "T_DEPTH": max(1, n_list),
        "ROW_DEPTH": max(1, len(memories["row_start"])), "E_DEPTH": max(1, ring_words),
        "A_DEPTH": max(1, acc_words), "S_DEPTH": max(1, s_words),
        "P_DEPTH": max(1, len(memories["p_du"])),
        "ACCW": signed_bits(bounds["acc"]), "AW": max(signed_bits(a), signed_bits(bounds["acc"])),
        "UW": uw, "HAS_TH": int(any(layer.kind == "alif" for layer in layers)),
        "CNTW": 32, "TW": 32, "LANES": 1,
    }
    return derive(p)


def derive(p: dict[str, int]) -> dict[str, int]:
    """Add the address and index widths that follow from the sizes."""
    p = dict(p)
    p["LW"] = max(1, (p["NL"] - 1).bit_length())
    p["PW"] = max(1, (p["NP"] - 1).bit_length())
    p["OW"] = max(1, (p["NO"] - 1).bit_length())
    for depth, width in (("W_DEPTH", "WAW"), ("T_DEPTH", "TAW"), ("ROW_DEPTH", "ROWAW"),
                         ("E_DEPTH", "EAW"), ("A_DEPTH", "AAW"), ("S_DEPTH", "SAW"),
                         ("P_DEPTH", "PAW")):
        p[width] = addr_bits(p[depth])
    p["CSW"] = max(1, (4 * p["NL"] + 2 * p["NP"] - 1).bit_length())
    return p


def merge_sizes(*param_sets: dict[str, int]) -> dict[str, int]:
    """The smallest sizes that hold every one of the given programs (one build for all)."""
    merged = {k: max(ps[k] for ps in param_sets) for k in SIZE_PARAMS}
    # lanes are the layout of the first program's synapses, not a size
    merged["LANES"] = param_sets[0].get("LANES", 1)
    return derive(merged)


def fit(params: dict[str, int], floor: dict[str, int] | None) -> dict[str, int]:
    """`params` raised to at least `floor`'s sizes."""
    if not floor:
        return params
    return merge_sizes(params, {k: floor.get(k, params[k]) for k in SIZE_PARAMS})


# --------------------------------------------------------------------------------------------
# parallel lanes
# --------------------------------------------------------------------------------------------


def apply_lanes(program: Program, lanes: int) -> Program:
    """Lay `program` out for a core of `lanes` accumulate lanes (rtl/nm_core.v, LANES).

    Accumulator slots are padded to a multiple of `lanes` words, so that target j always lies
    in bank j mod lanes. Synapses are stored in slots of `lanes` entries, entry l in lane l's
    bank: a dense row's synapse k in lane k mod lanes (its target is k), a list row's synapses
    grouped by their target's bank, each bank's in its order, a pad (valid flag clear) where
    a bank has fewer than the row's busiest (target -1 here; the hex file clears its valid
    flag, which sits above the build's index width). Sums are unchanged (integers add in any order)
    and no two lanes of a slot ever meet one bank. The memories are made whole here: lanes
    are for FPGA-sized programs."""
    if lanes == 1:
        return program
    if lanes not in (2, 4):
        raise UnsupportedError(f"lanes={lanes}: the core has 1, 2 or 4 accumulate lanes")
    projs = program.projections
    for p in projs:
        p.n_dst = -(-p.n_dst // lanes) * lanes
    acc = _place_accumulators(projs)
    top = max([1] + [x.n_dst for x in projs])
    iw = max(program.params["IW"], (top - 1).bit_length(), 2)  # p_an holds n_dst in IW + 1
    weights: list[list[np.ndarray]] = [[] for _ in range(lanes)]
    targets: list[list[np.ndarray]] = [[] for _ in range(lanes)]
    starts, lens = {}, {}
    slot = 0
    for k in _layout(projs):
        p = projs[k]
        n_src = len(p.rows.lengths)
        row_slots, row_len = np.zeros(n_src, np.int64), np.zeros(n_src, np.int64)
        src = 0
        for t, w in p.rows.blocks():
            counts = p.rows.lengths[src:src + _block_sources(p, src)]
            cuts = np.concatenate([[0], np.cumsum(counts)])
            for r in range(len(counts)):
                tw = w[cuts[r]:cuts[r + 1]]
                if p.is_list:
                    tt = t[cuts[r]:cuts[r + 1]]
                    bank = tt % lanes
                    per = np.bincount(bank, minlength=lanes)
                    n_slots = int(per.max(initial=0))
                    for lane in range(lanes):
                        sel = bank == lane
                        pad = n_slots - int(per[lane])
                        weights[lane].append(np.concatenate([tw[sel], np.zeros(pad, np.int64)]))
                        targets[lane].append(np.concatenate([tt[sel],  # -1: a pad
                                                             np.full(pad, -1, np.int64)]))
                    row_len[src + r] = n_slots * lanes
                else:
                    n_slots = -(-tw.size // lanes)
                    padded = np.concatenate([tw, np.zeros(n_slots * lanes - tw.size, np.int64)])
                    for lane in range(lanes):
                        weights[lane].append(padded[lane::lanes])
                    row_len[src + r] = tw.size
                row_slots[src + r] = n_slots
            src += len(counts)
        starts[k] = slot + np.cumsum(row_slots) - row_slots
        lens[k] = row_len
        slot += int(row_slots.sum())
    n_list = sum(len(a) for a in targets[0])  # list rows come first (`_layout`)
    program.memories["row_start"] = np.concatenate(
        [starts[k] for k in range(len(projs))] or [np.zeros(0, np.int64)]).astype(np.int64)
    program.memories["row_len"] = np.concatenate(
        [lens[k] for k in range(len(projs))] or [np.zeros(0, np.int64)]).astype(np.int64)
    none = [np.zeros(0, np.int64)]
    for lane in range(lanes):
        program.memories[f"weights{lane}"] = np.concatenate(weights[lane] or none)
        program.memories[f"targets{lane}"] = np.concatenate(targets[lane] or none)
    p = dict(program.params)
    p.update(LANES=lanes, W_DEPTH=max(1, slot), T_DEPTH=max(1, n_list), A_DEPTH=max(1, acc),
             LENW=max(1, int(program.memories["row_len"].max(initial=1)).bit_length()))
    p["IW"] = iw
    program.params = derive(p)
    return program


def _block_sources(p: Projection, start: int) -> int:
    """Sources in the block of `p.rows.blocks()` that begins at source `start`."""
    return min(p.rows.step, len(p.rows.lengths) - start)
