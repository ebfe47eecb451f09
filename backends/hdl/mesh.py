"""A placed graph (`nmcompile.map`) as the programs of nm_mesh's cores (docs/hdl.md, "The
mesh").

Every core runs the generic core's program format (`program.py`) for the pieces placed on it:

- a *local layer* per (neuron layer, core): the layer's neurons on that core, in their order;
- a *receiving layer* per (link, core) for the sources of that link that lie elsewhere (an
  input, or neurons on other cores) and reach a target here: an `Input` of the core's program
  whose events arrive as packets, numbered by the sources' order;
- per (link, target piece), a projection from the local source piece and one from the
  receiving layer (either may be missing). Both add into one accumulator, the first's (the
  other shares its words and slots): the layer sums the link's whole input before its shift,
  so a flooring shift (weight_exp < 0) rounds as the emulator's single projection does;
- a *send* op after each local layer update: for every spike and every link, one message per
  destination core holding a target of it, as `nmcompile.mapping.traffic` counts them (to its
  own core: counted, not sent, as the local projection reads the ring itself).

A step runs in waves: an op reading another core's spikes of the same step (event delay 0)
runs one wave after the wave that sends them; within a core, ops keep the graph's schedule
order. The host sends each input event to every core it reaches, as packets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from nmcompile.errors import GraphError, UnsupportedError
from nmcompile.ir import Graph
from nmcompile.mapping import loads
from nmcompile.mapping.chips import Chip, parse
from nmcompile.quantization.profiles import Profile

from . import program as pg
from .limits import CoreLimits
from .program import CHUNK, Layer, Program, Projection, Rows

#: A core's neuron parameter memories (program.py's p_*.hex).
PARAMS = ("du", "dv", "vth", "bias", "vstep", "da")
#: Mesh parameters of the build (besides every core's SIZE_PARAMS).
MESH_PARAMS = ("R", "C", "D_DEPTH", "DR_DEPTH", "DLENW", "WVW")


@dataclass
class Link:
    """`source` reaches neuron layer `target` through projection node `proj` (None: a direct
    edge) with event delay d0 and dendritic delay d1 (a `mapping.loads.Link` with delays)."""

    source: str
    proj: str | None
    target: str
    d0: int
    d1: int


@dataclass
class Mesh:
    """The programs of an R x C mesh: `programs[k]` is core k's (k = y * C + x), and
    `where[k][layer]` the (IR layer, its global neuron indices) of each of its layers (None for
    a receiving layer). `host[input]`: per input neuron, the packets (core, layer, neuron) it
    is sent as (CSR: `indptr`, then the three arrays)."""

    rows: int
    cols: int
    programs: list[Program]
    extra: list[dict[str, np.ndarray]]
    where: list[list[tuple[str | None, np.ndarray]]]
    host: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]
    waves: int
    params: dict[str, int]
    links: list[Link] = field(default_factory=list)

    @property
    def n_cores(self) -> int:
        return self.rows * self.cols


def mesh_chip(graph: Graph) -> Chip:
    """The chip a graph is placed on, checked to be a mesh the RTL builds: one core per tile,
    one chip."""
    if graph.placement is None:
        raise GraphError("a mesh build needs a placed graph: nmcompile.map(q, 'fpga-mesh', ...)")
    chip = parse(graph.placement.chip, "the placement's chip")
    if chip.cores_per_tile != 1 or chip.chips_per_board != 1:
        raise UnsupportedError(f"chip {chip.name!r} has {chip.cores_per_tile} cores per tile and "
                               f"{chip.chips_per_board} chips; nm_mesh has one core per router "
                               f"on one FPGA")
    if graph.placement.n_cores > chip.tiles[0] * chip.tiles[1]:
        raise GraphError(f"the placement uses {graph.placement.n_cores} cores; chip "
                         f"{chip.name!r} has {chip.tiles[0] * chip.tiles[1]}")
    return chip


def links_of(graph: Graph) -> list[Link]:
    """`nmcompile.mapping.loads.links` (every link into every neuron layer, in schedule
    order: the links whose messages the emulator counts) with their delays."""
    def delay(a: str, b: str) -> int:
        return dict(graph.predecessors(b))[a]

    return [Link(k.source, k.proj, k.target, delay(k.source, k.proj), delay(k.proj, k.target))
            if k.proj else Link(k.source, None, k.target, delay(k.source, k.target), 0)
            for k in loads.links(graph)]


def _synapses(graph: Graph, link: Link, shapes, sizes) -> tuple[np.ndarray, np.ndarray,
                                                                np.ndarray, Rows]:
    """All stored synapses of a link (source, target, stored weight), by source, and the
    link's scanned `Rows` (its common power of two, top and per-target reach)."""
    node = graph[link.proj] if link.proj else None
    n_s, n_t = sizes[link.source], sizes[link.target]
    rows = pg._rows(node, n_s, n_t, shapes[link.source])
    is_list = not isinstance(node, pg.QDense)
    pg._scan(rows, n_t, node is None or is_list)
    src = np.repeat(np.arange(n_s), rows.lengths)
    ts, ws = [], []
    for t, w in rows.blocks():
        if not is_list and node is not None:
            t = np.tile(np.arange(n_t), len(w) // max(1, n_t))
        ts.append(t)
        ws.append(w)
    tgt = np.concatenate(ts or [np.zeros(0, np.int64)]).astype(np.int64)
    w = np.concatenate(ws or [np.zeros(0, np.int64)]).astype(np.int64)
    return src, tgt, w, rows


def _piece_rows(n_src: int, src: np.ndarray, tgt: np.ndarray, w: np.ndarray, top: int,
                reach: np.ndarray) -> Rows:
    """Rows over a piece's synapses (sorted by source, weights already stored)."""
    lengths = np.bincount(src, minlength=n_src).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)])
    rows = Rows(lengths, max(1, CHUNK // max(1, int(lengths.max(initial=1)))),
                lambda a, b: (tgt[starts[a]:starts[b]], w[starts[a]:starts[b]]))
    rows.top, rows.reach = top, reach
    return rows


@dataclass
class _Core:
    """One core's program as it is built: its layers (with the IR layer and neurons each
    holds, None for a receiving layer), its projections (the ones that share another's
    accumulator after all the others), and its ops with their waves."""

    layers: list[Layer] = field(default_factory=list)
    where: list[tuple[str | None, np.ndarray]] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)  # IR layer -> its local layer
    projs: list[Projection] = field(default_factory=list)
    ops: list[tuple[str, int]] = field(default_factory=list)
    waves: list[int] = field(default_factory=list)

    def add_layer(self, layer: Layer, name: str | None, members: np.ndarray) -> int:
        self.layers.append(layer)
        self.where.append((name, members))
        if name is not None:
            self.index[name] = len(self.layers) - 1
        return len(self.layers) - 1


#: Per message of a link: (source neuron, destination core, its layer there, its neuron).
Messages = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def build_mesh(graph: Graph, *, input_max: int = 1, lanes: int = 1,
               profile: Profile | None = None) -> Mesh:
    """Lower a placed quantised graph to one program per core of its chip's mesh (cores of
    `lanes` accumulate lanes)."""
    pg.check_structure(graph)
    chip = mesh_chip(graph)
    shapes = graph.validate()
    limits = CoreLimits.of(chip, profile or pg.graph_profile(graph))
    sizes = {k: math.prod(s) for k, s in shapes.items()}
    cols, rows = chip.tiles
    neurons = [k for k in shapes if graph[k].kind == "neuron"]
    for k in neurons:
        if k not in graph.placement.cores:
            raise UnsupportedError(f"layer {k!r} is not placed (a host layer); nm_mesh runs "
                                   f"every neuron layer on a core")
    core_of = {k: np.asarray(graph.placement.cores[k], np.int64) for k in neurons}
    local = {k: _local_index(c) for k, c in core_of.items()}
    cores = [_Core() for _ in range(cols * rows)]
    for k in neurons:
        node = graph[k]
        kind = "alif" if isinstance(node, pg.QALIF) else "li" if isinstance(node, pg.QLI) \
            else "lif"
        for c in np.unique(core_of[k]).tolist():
            members = np.flatnonzero(core_of[k] == c)
            cores[c].add_layer(Layer(k, kind, members.size, subtract=getattr(
                node, "reset", "zero") == "subtract"), k, members)
    links = links_of(graph)
    recv: dict[tuple[int, int], tuple[int, np.ndarray]] = {}  # (link, core) -> layer, sources
    sent: dict[str, list[Messages]] = {}  # per source layer (an input: the host's packets)
    for li, link in enumerate(links):
        limits.check_delay(link.proj or link.target, max(link.d0, link.d1))
        sent.setdefault(link.source, []).append(
            _lower_link(graph, li, link, cores, core_of, local, recv, shapes, sizes))
    for core in cores:
        _group(core)
    sends = {(k, c) for k in sent if k in core_of for c in np.unique(core_of[k]).tolist()}
    waves = _schedule(graph, cores, links, recv, core_of, sends)
    programs, extra = [], []
    for c, core in enumerate(cores):
        prog, ext = _core_program(graph, c, core, sent, local, cols, shapes, input_max, limits,
                                  waves)
        programs.append(pg.apply_lanes(prog, lanes))
        extra.append(ext)
    host = {}
    for k in graph.inputs:
        if k in sent:
            ps, pc, lay, idx = (np.concatenate([p[j] for p in sent[k]]) for j in range(4))
            o = np.argsort(ps, kind="stable")
            indptr = np.concatenate([[0], np.cumsum(np.bincount(ps, minlength=sizes[k]))])
            host[k] = (indptr, pc[o], lay[o], idx[o])
    params = _mesh_params(programs, extra, rows, cols, waves)
    return Mesh(rows, cols, programs, extra, [core.where for core in cores], host, waves,
                params, links)


def _local_index(core_of: np.ndarray) -> np.ndarray:
    """Each neuron's index within its core's piece of the layer."""
    idx = np.zeros(core_of.size, np.int64)
    for c in np.unique(core_of):
        sel = np.flatnonzero(core_of == c)
        idx[sel] = np.arange(sel.size)
    return idx


def _lower_link(graph: Graph, li: int, link: Link, cores: list[_Core], core_of, local, recv,
                shapes, sizes) -> Messages:
    """A link's projections on every core holding targets of it (from the local source
    piece, and from a receiving layer for the sources elsewhere, sharing one accumulator),
    and its messages: one per (source neuron, destination core holding a target of it)."""
    n = len(cores)
    src, tgt, w, full = _synapses(graph, link, shapes, sizes)
    on_chip = link.source in core_of
    sc = core_of[link.source][src] if on_chip else np.full(src.size, -1)
    tc = core_of[link.target][tgt]
    node = graph[link.proj] if link.proj else None
    is_list = node is None or not isinstance(node, pg.QDense)
    exp = (node.weight_exp + full.shift) if node is not None else 0
    for c in np.unique(tc).tolist():
        core = cores[c]
        into = tc == c
        members = np.flatnonzero(core_of[link.target] == c)
        reach = np.zeros(members.size, np.int64)  # the shared accumulator's worst case
        np.add.at(reach, local[link.target][tgt[into]], np.abs(w[into]))
        made = []
        if (here := into & (sc == c)).any():
            s_layer = core.index[link.source]
            made.append((s_layer, core.layers[s_layer].n, local[link.source][src[here]], here))
        if (remote := into & (sc != c)).any():
            senders = np.unique(src[remote])
            r_layer = core.add_layer(Layer(f"{link.source}>{link.proj or link.target}",
                                           "input", senders.size), None, senders)
            recv[(li, c)] = (r_layer, senders)
            made.append((r_layer, senders.size, np.searchsorted(senders, src[remote]), remote))
        owner = None
        for s_layer, s_n, s_idx, sel in made:
            order = np.argsort(s_idx, kind="stable")
            # a dense piece keeps its targets implied: every neuron of the piece, in order
            t_loc = local[link.target][tgt[sel]][order] if is_list else np.zeros(0, np.int64)
            rows = _piece_rows(s_n, s_idx[order], t_loc, w[sel][order], full.top,
                               reach if owner is None else reach * 0)
            p = Projection(link.proj if node is not None else None, s_layer,
                           core.index[link.target], link.d0, link.d1, exp, is_list,
                           n_dst=members.size, count=node is not None, rows=rows, shares=owner)
            core.projs.append(p)
            owner = owner or p
    pair = np.unique(src * n + tc)
    ps, pc = pair // n, pair % n
    own = pc == (core_of[link.source][ps] if on_chip else -1)  # counted, not sent
    lay, idx = np.zeros(ps.size, np.int64), np.zeros(ps.size, np.int64)
    for c in np.unique(pc[~own]).tolist():
        sel = (pc == c) & ~own
        lay[sel], senders = recv[(li, c)]
        idx[sel] = np.searchsorted(senders, ps[sel])
    return ps, pc, lay, idx


def _group(core: _Core) -> None:
    """Projections into each layer numbered together (the core walks pfirst .. pfirst +
    nproj - 1 for the layer), those that share an accumulator after them all."""
    owners = [p for p in core.projs if p.shares is None]
    grouped: list[Projection] = []
    for i, layer in enumerate(core.layers):
        mine = [p for p in owners if p.dst == i]
        layer.pfirst, layer.nproj = (len(grouped) if mine else 0), len(mine)
        grouped += mine
    core.projs = grouped + [p for p in core.projs if p.shares is not None]


def _schedule(graph: Graph, cores: list[_Core], links: list[Link], recv, core_of,
              sends: set[tuple[str, int]]) -> int:
    """Every core's ops in the graph's schedule order (a direct edge just before its layer,
    a send op after the update of a layer whose spikes leave it) and their waves: an op that
    reads another core's spikes of the same step runs a wave after the one that sends them.
    Returns the number of waves."""
    wave_of: dict[tuple[str, int], int] = {}
    sources: dict[tuple[int, int], list[tuple[str, int]]] = {}  # (core, layer) -> senders
    for (li, c), (r_layer, senders) in recv.items():
        if links[li].source in core_of:
            sources[(c, r_layer)] = [(links[li].source, a) for a in
                                     np.unique(core_of[links[li].source][senders]).tolist()]
    cur = [0] * len(cores)
    for name in graph.schedule():
        is_layer = graph[name].kind == "neuron"
        if not is_layer and not isinstance(graph[name], pg.PROJECTIONS):
            continue
        for c, core in enumerate(cores):
            if is_layer and name not in core.index:
                continue
            if is_layer:  # its direct edges, then the update
                pieces = [q for q, p in enumerate(core.projs)
                          if p.name is None and p.dst == core.index[name]]
            else:
                pieces = [q for q, p in enumerate(core.projs) if p.name == name]
            for q in pieces:
                p = core.projs[q]
                if p.delay == 0:
                    for sender in sources.get((c, p.src), []):
                        cur[c] = max(cur[c], wave_of[sender] + 1)
                core.ops.append(("proj", q))
                core.waves.append(cur[c])
            if is_layer:
                wave_of[(name, c)] = cur[c]
                core.ops.append(("layer", core.index[name]))
                core.waves.append(cur[c])
                if (name, c) in sends:
                    core.ops.append(("send", core.index[name]))
                    core.waves.append(cur[c])
    return max(cur) + 1


def _core_program(graph, c: int, core: _Core, sent: dict[str, list[Messages]], local, cols,
                  shapes, input_max: int, limits: CoreLimits, waves: int
                  ) -> tuple[Program, dict[str, np.ndarray]]:
    """Core c's Program (rings, state, synapse memories, bounds, sizes) and its mesh tables."""
    layers, projs = core.layers or [Layer("-", "input", 1)], core.projs
    limits.check_synapses([(p.name or layers[p.dst].name, p.rows.count) for p in projs])
    if sum(layer.n for layer in layers if layer.kind != "input") > limits.neurons:
        raise UnsupportedError(f"core {c} holds more than {limits.neurons:,} neurons")
    senders = frozenset(i for kind, i in core.ops if kind == "send")
    ring_words = pg._place_rings(layers, projs, limits, senders)
    members = [m if name is not None else None for name, m in core.where]
    s_words, params_rows = pg._place_state(graph, layers, shapes, members or None)
    memories, n_list = pg._synapse_memories(projs)
    acc_words = pg._place_accumulators(projs)
    if not params_rows:  # a core without neurons
        params_rows = [{k: np.zeros(1, np.int64) for k in PARAMS}]
    for key in PARAMS:
        memories[f"p_{key}"] = np.concatenate([row[key] for row in params_rows])
    bounds = pg._bounds(projs, layers, input_max, limits)
    params = pg._params(layers, projs, memories, bounds, input_max, n_list, acc_words, s_words,
                        ring_words, len(core.ops))
    prog = Program(layers, projs, core.ops, memories, params, {}, {}, bounds)

    # the send lists: per neuron of each sending layer, its messages (x, y, layer, index)
    starts, lens, ents, drow = [], [], [], np.zeros(len(layers), np.int64)
    base = row = 0
    for i in sorted(senders):
        name, members_i = core.where[i]
        ps, pc, lay, idx = (np.concatenate([m[j] for m in sent[name]]) for j in range(4))
        keep = np.isin(ps, members_i)
        ps, pc, lay, idx = ps[keep], pc[keep], lay[keep], idx[keep]
        o = np.argsort(local[name][ps], kind="stable")
        count = np.bincount(local[name][ps], minlength=members_i.size)
        drow[i] = row
        row += members_i.size
        lens.append(count)
        starts.append(base + np.cumsum(count) - count)
        base += int(count.sum())
        ents.append(np.stack([pc[o] % cols, pc[o] // cols, lay[o], idx[o]], axis=1))
    none = [np.zeros(0, np.int64)]
    extra = {
        "o_wave": np.asarray(core.waves, np.int64), "l_drow": drow,
        "m_waves": np.asarray([waves], np.int64),
        "d_start": np.concatenate(starts or none).astype(np.int64),
        "d_len": np.concatenate(lens or none).astype(np.int64),
        "d_ent": np.concatenate(ents or [np.zeros((0, 4), np.int64)]).astype(np.int64),
    }
    return prog, extra


def _mesh_params(programs: list[Program], extra, rows: int, cols: int, waves: int
                 ) -> dict[str, int]:
    p = pg.merge_sizes(*(prog.params for prog in programs))
    p |= {"R": rows, "C": cols,
          "D_DEPTH": max(1, max(len(e["d_ent"]) for e in extra)),
          "DR_DEPTH": max(1, max(len(e["d_len"]) for e in extra)),
          "DLENW": max(1, int(max(e["d_len"].max(initial=1) for e in extra)).bit_length()),
          "WVW": max(1, int(waves).bit_length())}
    return derive_mesh(p)


def derive_mesh(p: dict[str, int]) -> dict[str, int]:
    """The mesh build's derived widths (besides `program.derive`'s)."""
    p = pg.derive(p)
    p["XB"] = max(1, (p["C"] - 1).bit_length())
    p["YB"] = max(1, (p["R"] - 1).bit_length())
    p["DAW"] = pg.addr_bits(p["D_DEPTH"])
    p["DRAW"] = pg.addr_bits(p["DR_DEPTH"])
    p["CSW"] = max(1, (4 * p["NL"] + 2 * p["NP"] + 1).bit_length())
    p["CCW"] = max(1, (p["R"] * p["C"] - 1).bit_length())
    p["RCW"] = max(1, (5 * p["R"] * p["C"]).bit_length())
    return p


def merge_mesh(*param_sets: dict[str, int]) -> dict[str, int]:
    """The smallest mesh build holding every one of the given meshes (same R and C)."""
    merged = pg.merge_sizes(*param_sets)
    for k in MESH_PARAMS:
        merged[k] = max(ps[k] for ps in param_sets)
    return derive_mesh(merged)
