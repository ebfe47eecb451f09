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
from nmcompile.mapping.chips import Chip, parse
from nmcompile.quantization.profiles import Profile

from . import program as pg
from .limits import CoreLimits
from .program import CHUNK, Layer, Program, Projection, Rows

#: Mesh parameters of the build (besides every core's SIZE_PARAMS).
MESH_PARAMS = ("R", "C", "D_DEPTH", "DR_DEPTH", "DLENW", "WVW")


@dataclass
class Link:
    """`source` reaches neuron layer `target` through projection node `proj` (None: a direct
    edge) with event delay d0 and dendritic delay d1."""

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
    """Every link into every neuron layer, in schedule order (as `program._projection_specs`)."""
    out = []
    for name in graph.schedule():
        if graph[name].kind != "neuron":
            continue
        for src, d in graph.predecessors(name):
            if isinstance(graph[src], pg.PROJECTIONS):
                (source, d0), = graph.predecessors(src)
                out.append(Link(source, src, name, d0, d))
            else:
                out.append(Link(src, None, name, d, 0))
    return out


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


def build_mesh(graph: Graph, *, input_max: int = 1, lanes: int = 1,
               profile: Profile | None = None) -> Mesh:
    """Lower a placed quantised graph to one program per core of its chip's mesh (cores of
    `lanes` accumulate lanes)."""
    pg.check_structure(graph)
    chip = mesh_chip(graph)
    shapes = graph.validate()
    prof = profile or pg.graph_profile(graph)
    limits = CoreLimits.of(chip, prof)
    sizes = {k: math.prod(s) for k, s in shapes.items()}
    order = list(shapes)
    cols, rows_ = chip.tiles
    n = cols * rows_
    placed = graph.placement.cores
    neurons = [k for k in order if graph[k].kind == "neuron"]
    for k in neurons:
        if k not in placed:
            raise UnsupportedError(f"layer {k!r} is not placed (a host layer); nm_mesh runs "
                                   f"every neuron layer on a core")
    core_of = {k: np.asarray(placed[k], np.int64) for k in neurons}
    local = {}  # layer -> each neuron's index within its core's piece
    for k in neurons:
        idx = np.zeros(sizes[k], np.int64)
        for c in np.unique(core_of[k]):
            sel = np.flatnonzero(core_of[k] == c)
            idx[sel] = np.arange(sel.size)
        local[k] = idx
    links = links_of(graph)
    for link in links:
        limits.check_delay(link.proj or link.target, max(link.d0, link.d1))

    layers: list[list[Layer]] = [[] for _ in range(n)]
    where: list[list[tuple[str | None, np.ndarray]]] = [[] for _ in range(n)]
    lidx: list[dict[str, int]] = [{} for _ in range(n)]  # local layer number per IR layer
    for k in neurons:
        node = graph[k]
        kind = "alif" if isinstance(node, pg.QALIF) else "li" if isinstance(node, pg.QLI) \
            else "lif"
        for c in np.unique(core_of[k]).tolist():
            members = np.flatnonzero(core_of[k] == c)
            lidx[c][k] = len(layers[c])
            layers[c].append(Layer(k, kind, members.size,
                                   subtract=getattr(node, "reset", "zero") == "subtract"))
            where[c].append((k, members))

    # per link: receiving layers, projections per target piece, destinations per source
    projs: list[list[Projection]] = [[] for _ in range(n)]
    sharers: list[list[Projection]] = [[] for _ in range(n)]  # non-owners, placed last
    recv: dict[tuple[int, int], tuple[int, np.ndarray]] = {}  # (link, core) -> layer, compact
    dests: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]] = {}
    host: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]] = {}
    for li, link in enumerate(links):
        src, tgt, w, full = _synapses(graph, link, shapes, sizes)
        n_s = sizes[link.source]
        on_chip = link.source in core_of
        sc = core_of[link.source][src] if on_chip else np.full(src.size, -1)
        tc = core_of[link.target][tgt]
        # the (source, destination core) pairs: one message per spike each
        pair = np.unique(src * n + tc)
        ps, pc = pair // n, pair % n
        node = graph[link.proj] if link.proj else None
        is_list = node is None or not isinstance(node, pg.QDense)
        exp = (node.weight_exp + full.shift) if node is not None else 0
        for c in np.unique(tc).tolist():
            into = tc == c
            remote = into & (sc != c)
            here = into & (sc == c)
            members = np.flatnonzero(core_of[link.target] == c)
            reach = np.zeros(members.size, np.int64)
            mag = np.abs(w[into])
            np.add.at(reach, local[link.target][tgt[into]], mag)
            made = []
            if here.any():
                s_layer = lidx[c][link.source]
                made.append((s_layer, layers[c][s_layer].n, local[link.source][src[here]], here))
            if remote.any():
                senders = np.unique(src[remote])
                compact = np.full(n_s, -1, np.int64)
                compact[senders] = np.arange(senders.size)
                recv[(li, c)] = (len(layers[c]), senders)
                layers[c].append(Layer(f"{link.source}>{link.proj or link.target}", "input",
                                       senders.size))
                where[c].append((None, senders))
                made.append((recv[(li, c)][0], senders.size, compact[src[remote]], remote))
            dst = lidx[c][link.target]
            for m, (s_layer, s_n, s_idx, sel) in enumerate(made):
                order_ = np.argsort(s_idx, kind="stable")
                t_loc = local[link.target][tgt[sel]][order_]
                # a dense piece keeps its targets implied: every neuron of the piece, in order
                rows = _piece_rows(s_n, s_idx[order_], t_loc if is_list else np.zeros(0, np.int64),
                                   w[sel][order_], full.top, reach if m == 0 else reach * 0)
                p = Projection(link.proj if node is not None else None, s_layer, dst, link.d0,
                               link.d1, exp, is_list, n_dst=members.size,
                               count=node is not None, rows=rows)
                (projs if m == 0 else sharers)[c].append(p)
                if m:
                    p.owner = projs[c][-1]  # type: ignore[attr-defined]
        own = pc == (core_of[link.source][ps] if on_chip else -2)
        lay = np.zeros(ps.size, np.int64)
        idx = np.zeros(ps.size, np.int64)
        for c in np.unique(pc[~own]).tolist():
            sel = (pc == c) & ~own
            r_layer, senders = recv[(li, c)]
            lay[sel] = r_layer
            idx[sel] = np.searchsorted(senders, ps[sel])
        entries = (ps, pc, lay, idx)
        (dests if on_chip else host).setdefault(link.source, []).append(entries)

    # per core: tables, the ops and their waves, the send lists
    wave_of: dict[tuple[str, int], int] = {}
    cur = [0] * n
    ops: list[list[tuple[str, int]]] = [[] for _ in range(n)]
    op_wave: list[list[int]] = [[] for _ in range(n)]
    for c in range(n):
        # owners grouped by target layer (the core walks pfirst .. pfirst + nproj - 1), the
        # sharers after them all
        grouped: list[Projection] = []
        for i, layer in enumerate(layers[c]):
            mine = [p for p in projs[c] if p.dst == i]
            layer.pfirst = len(grouped) if mine else 0
            grouped += mine
            layer.nproj = len(mine)
        projs[c] = grouped + sharers[c]
    sends = {(k, c) for k in dests for c in np.unique(core_of[k]).tolist()}
    for name in order:
        node = graph[name]
        if isinstance(node, pg.PROJECTIONS) or node.kind == "neuron":
            for c in range(n):
                if name not in lidx[c] and not any(p.name == name for p in projs[c]):
                    continue
                if node.kind == "neuron":
                    pieces = [q for q, p in enumerate(projs[c]) if p.name is None
                              and projs[c][q].dst == lidx[c][name]]
                    _add_ops(ops[c], op_wave[c], cur, c, pieces, projs[c], layers[c], links,
                             recv, wave_of, core_of)
                    ops[c].append(("layer", lidx[c][name]))
                    op_wave[c].append(cur[c])
                    wave_of[(name, c)] = cur[c]
                    if (name, c) in sends:
                        ops[c].append(("send", lidx[c][name]))
                        op_wave[c].append(cur[c])
                else:
                    pieces = [q for q, p in enumerate(projs[c]) if p.name == name]
                    _add_ops(ops[c], op_wave[c], cur, c, pieces, projs[c], layers[c], links,
                             recv, wave_of, core_of)
    waves = max(cur) + 1

    programs, extra = [], []
    for c in range(n):
        prog, ext = _core_program(graph, c, layers[c], projs[c], ops[c], op_wave[c], where[c],
                                  dests, core_of, local, cols, shapes, input_max, limits, waves)
        programs.append(pg.apply_lanes(prog, lanes))
        extra.append(ext)
    hosted = {}
    for k, parts in host.items():
        ps, pc, lay, idx = (np.concatenate([p[j] for p in parts]) for j in range(4))
        o = np.argsort(ps, kind="stable")
        indptr = np.concatenate([[0], np.cumsum(np.bincount(ps, minlength=sizes[k]))])
        hosted[k] = (indptr, pc[o], lay[o], idx[o])
    params = _mesh_params(programs, extra, rows_, cols, waves)
    return Mesh(rows_, cols, programs, extra, where, hosted, waves, params, links)


def _add_ops(ops, op_wave, cur, c, pieces, projs, layers, links, recv, wave_of, core_of):
    """Append projection ops; one that reads another core's spikes of this step runs a wave
    after the last wave that sends them."""
    for q in pieces:
        p = projs[q]
        w = cur[c]
        if layers[p.src].kind == "input" and p.delay == 0:
            for (li, cc), (r_layer, senders) in recv.items():
                if cc != c or r_layer != p.src:
                    continue
                source = links[li].source
                if source in core_of:
                    for a in np.unique(core_of[source][senders]).tolist():
                        w = max(w, wave_of[(source, a)] + 1)
        cur[c] = w
        ops.append(("proj", q))
        op_wave.append(w)


def _core_program(graph, c, layers, projs, ops, op_wave, where, dests, core_of, local, cols,
                  shapes, input_max, limits, waves) -> tuple[Program, dict[str, np.ndarray]]:
    """Core c's Program (rings, state, synapse memories, bounds, sizes) and its mesh tables."""
    limits.check_synapses([(p.name or layers[p.dst].name, p.rows.count) for p in projs])
    if sum(layer.n for layer in layers if layer.kind != "input") > limits.neurons:
        raise UnsupportedError(f"core {c} holds more than {limits.neurons:,} neurons")
    # rings: D + 1 regions per layer read by a projection; a sending layer needs its own step
    word = 0
    senders = {i for kind, i in ops if kind == "send"}
    for i, layer in enumerate(layers):
        delays = [p.delay for p in projs if p.src == i] + ([0] if i in senders else [])
        if not delays:
            continue
        layer.ring, layer.rbase, layer.rsize = True, word, layer.n + 1
        layer.rend = word + (max(delays) + 1) * layer.rsize
        word = layer.rend
        limits.check_ring(word, layer.name)
    for p in projs:
        p.off = p.delay * layers[p.src].rsize
    # neuron state and parameters: the piece's slice of its layer's
    params_rows, s_word, p_word = [], 0, 0
    for layer, (name, members) in zip(layers, where, strict=True):
        if layer.kind == "input":
            continue
        layer.sbase = s_word
        s_word += layer.n
        values = {k: v[members] for k, v in pg._neuron_params(graph[name], shapes[name]).items()}
        layer.per_neuron = any(np.unique(v).size > 1 for v in values.values())
        layer.pbase = p_word
        if not layer.per_neuron:
            values = {k: v[:1] for k, v in values.items()}
        params_rows.append(values)
        p_word += len(values["du"])
    memories, n_list = pg._synapse_memories(projs)
    acc = 0
    for p in projs:  # owners get accumulator words; a sharer takes its owner's
        owner = getattr(p, "owner", None)
        if owner is None:
            p.accbase = acc
            acc += p.n_dst * (p.dendritic + 1)
    for p in projs:
        owner = getattr(p, "owner", None)
        if owner is not None:
            p.accbase = owner.accbase
    if not params_rows:
        params_rows = [{k: np.zeros(1, np.int64) for k in ("du", "dv", "vth", "bias", "vstep",
                                                           "da")}]
    for key in ("du", "dv", "vth", "bias", "vstep", "da"):
        memories[f"p_{key}"] = np.concatenate([row[key] for row in params_rows])
    if not layers:
        layers = [Layer("-", "input", 1)]
    bounds = pg._bounds(projs, layers, input_max, limits)
    params = pg._params(layers, projs, memories, bounds, input_max, n_list, acc, s_word, word,
                        len(ops))
    prog = Program(layers, projs, ops, memories, params, {}, {}, bounds)

    # the send lists: per neuron of each sending layer, its messages (x, y, layer, index)
    starts, lens, ents, drow = [], [], [], np.zeros(len(layers), np.int64)
    base = row = 0
    for i in sorted(senders):
        name, members = where[i]
        parts = dests[name]
        ps = np.concatenate([p[0] for p in parts])
        keep = np.isin(ps, members)
        ps = ps[keep]
        pc, lay, idx = (np.concatenate([p[j] for p in parts])[keep] for j in (1, 2, 3))
        o = np.argsort(local[name][ps], kind="stable")
        count = np.bincount(local[name][ps], minlength=members.size)
        drow[i] = row
        row += members.size
        lens.append(count)
        starts.append(base + np.cumsum(count) - count)
        base += int(count.sum())
        ents.append(np.stack([pc[o] % cols, pc[o] // cols, lay[o], idx[o]], axis=1))
    extra = {
        "o_wave": np.asarray(op_wave, np.int64), "l_drow": drow,
        "m_waves": np.asarray([waves], np.int64),
        "d_start": np.concatenate(starts or [np.zeros(0, np.int64)]).astype(np.int64),
        "d_len": np.concatenate(lens or [np.zeros(0, np.int64)]).astype(np.int64),
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
