"""`run_mesh`: a placed graph through nm_mesh's testbench, back to the emulator's `RunResult`,
with the routers' measured traffic (`RunResult.traffic`, as the emulator counts it)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from functools import partial
from pathlib import Path

import numpy as np

from nmcompile.errors import LimitError, NmcompileError
from nmcompile.ir import Graph
from nmcompile.ir.inputs import check_activity, normalize_inputs
from nmcompile.procs import Reaper
from nmcompile.result import RunResult, assemble_outputs

from .hexfiles import hex_chunks, write_memories
from .mesh import Mesh, build_mesh, merge_mesh
from .runner import MIN_CYCLES_PER_S, HdlRun, _counter_bound, worst_cycles
from .simulate import built, simulate

PORTS = ((1, 0), (-1, 0), (0, -1), (0, 1))  # east, west, north, south: (dx, dy)


def mesh_field_widths(p: dict[str, int]) -> dict[str, tuple[int, int]]:
    """The mesh tables of every core (besides `hexfiles.field_widths`)."""
    return {"o_wave": (p["WVW"], p["NO"]), "l_drow": (p["DRAW"], p["NL"]),
            "m_waves": (p["WVW"] + 1, 1), "d_start": (p["DAW"], p["DR_DEPTH"]),
            "d_len": (p["DLENW"], p["DR_DEPTH"]),
            "d_ent": (p["XB"] + p["YB"] + p["LW"] + p["IW"], p["D_DEPTH"])}


def write_mesh_memories(mesh: Mesh, params: dict[str, int], mem_dir: Path) -> None:
    """mem/cNN/*.hex for every core NN of the mesh."""
    shift_y = params["LW"] + params["IW"]
    for k, (prog, extra) in enumerate(zip(mesh.programs, mesh.extra, strict=True)):
        folder = mem_dir / f"c{k:02d}"
        write_memories(prog, params, folder)
        e = extra["d_ent"]
        words = dict(extra)
        words["d_ent"] = ((e[:, 0] << (shift_y + params["YB"])) | (e[:, 1] << shift_y)
                          | (e[:, 2] << params["IW"]) | e[:, 3]) if len(e) else e[:, 0]
        for name, (width, depth) in mesh_field_widths(params).items():
            with (folder / f"{name}.hex").open("w") as f:
                f.writelines(hex_chunks(np.asarray(words[name], np.int64), width, depth))


def host_packets(mesh: Mesh, inputs: dict[str, np.ndarray], T: int, B: int
                 ) -> list[np.ndarray]:
    """Per step (sample-major) the host's packets (x, y, layer, neuron, value): each non-zero
    input value to every core it reaches, once per link."""
    parts = []
    for name, (indptr, pc, lay, idx) in mesh.host.items():
        x = inputs[name].reshape(T, B, -1)
        t, b, i = np.nonzero(x)
        counts = indptr[i + 1] - indptr[i]
        which = np.repeat(np.arange(i.size), counts)
        pos = indptr[i][which] + np.arange(which.size) - np.repeat(np.cumsum(counts) - counts,
                                                                   counts)
        core = pc[pos]
        parts.append(np.stack([(b * T + t)[which], core % mesh.cols, core // mesh.cols,
                               lay[pos], idx[pos], x[t, b, i][which].astype(np.int64)], axis=1))
    allp = np.concatenate(parts) if parts else np.zeros((0, 6), np.int64)
    allp = allp[np.argsort(allp[:, 0], kind="stable")]
    cuts = np.searchsorted(allp[:, 0], np.arange(T * B + 1))
    return [allp[a:b, 1:] for a, b in itertools.pairwise(cuts)]


def write_mesh_stimulus(path: Path, packets: list[np.ndarray], B: int, T: int, trace: bool,
                        stall: tuple[int, int] | None) -> None:
    """The mesh testbench's stim.txt (see rtl/nm_mesh_tb.v): header, then per step the host's
    packets (x, y, layer, neuron, value) and "-1 0 0 0 0"."""
    bit, period = stall if stall else (-1, 1)
    with path.open("w") as f:
        f.write(f"{B} {T} {int(trace)} {bit} {period}\n")
        for ev in packets:
            if len(ev):
                f.write("".join(f"{a} {b} {c} {d} {e}\n" for a, b, c, d, e in ev.tolist()))
            f.write("-1 0 0 0 0\n")


def _parse(text: str, n_steps: int) -> dict:
    events, trace, cycles, counters, routers, work = [], [], [], {}, {}, {}
    step, ended = 0, False
    for line in text.splitlines():
        tag, *vals = line.split()
        if tag == "E":
            events.append((step, *map(int, vals)))
        elif tag == "U":
            trace.append((step, *map(int, vals)))
        elif tag == "T":
            cycles.append(int(vals[2]))
            step += 1
        elif tag == "K":
            counters[(int(vals[0]), int(vals[1]))] = int(vals[2])
        elif tag == "R":
            routers[int(vals[0])] = int(vals[1])
        elif tag == "W":
            work[int(vals[0])] = int(vals[1])
        elif tag == "END":
            ended = True
    if not ended or step != n_steps:
        raise NmcompileError(f"the mesh testbench stopped after {step} of {n_steps} steps; its "
                             f"output ends with: {text[-300:]!r}")
    return {"events": np.asarray(events, np.int64).reshape(-1, 5),
            "trace": np.asarray(trace, np.int64).reshape(-1, 6),
            "cycles": np.asarray(cycles, np.int64), "counters": counters, "routers": routers,
            "work": work}


def run_mesh(graph: Graph, spikes: np.ndarray | Mapping[str, np.ndarray], *,
             record: bool = False, simulator: str = "verilator",
             sizes: Mapping[str, int] | None = None, timeout_s: float | None = None,
             stall: tuple[int, int] | None = None, lanes: int = 1) -> HdlRun:
    """Simulate a placed graph on nm_mesh (its chip's R x C cores) in one testbench run.

    `sizes`: build at least this large (`mesh.merge_mesh`), so that graphs share a build.
    `stall=(bit, period)`: hold router output `bit` (4 * core + 0 east, 1 west, 2 north,
    3 south) not ready on all but one clock in `period` (a busy link: only cycles change).
    `lanes`: synapses per clock of every core (1, 2, 4).
    """
    shapes = graph.validate()
    inputs, T, B = normalize_inputs(graph, spikes, shapes, integers=True)
    check_activity(T, B, shapes, record)
    inputs = {k: np.asarray(v).astype(np.int64) for k, v in inputs.items()}
    input_max = max([1] + [int(np.abs(v).max(initial=0)) for v in inputs.values()])
    mesh = build_mesh(graph, input_max=input_max, lanes=lanes)
    params = mesh.params if not sizes else merge_mesh(mesh.params, {**mesh.params, **sizes})
    bound = max(_counter_bound(p, T, B) for p in mesh.programs)
    if bound >= 1 << params["CNTW"]:
        params = merge_mesh(params, {**params, "CNTW": bound.bit_length()})
    if params["CNTW"] > 64:
        raise LimitError(f"{T} steps of batch {B} could count past 2^64 events; run a "
                         f"smaller batch")
    packets = host_packets(mesh, inputs, T, B)
    slow = stall[1] if stall else 1
    worst = sum(worst_cycles(p, T, B) for p in mesh.programs)
    worst += T * B * 4 * sum(len(e["d_ent"]) for e in mesh.extra) + sum(map(len, packets))
    budget = timeout_s or 60.0 + slow * worst / MIN_CYCLES_PER_S
    with Reaper() as reaper, built(simulator, params, reaper=reaper, top="nm_mesh_tb") as exe:
        resp = simulate(exe, simulator, partial(write_mesh_memories, mesh, params), [], B, T,
                        trace=record, timeout_s=budget, reaper=reaper,
                        stimulus=partial(write_mesh_stimulus, packets=packets, B=B, T=T,
                                         trace=record, stall=stall),
                        parse=partial(_parse, n_steps=B * T))
    result = _result(graph, mesh, params, resp, packets, inputs, T, B, record)
    return HdlRun(result, resp["cycles"].reshape(B, T).T.copy(), params, mesh)


def _result(graph: Graph, mesh: Mesh, params, resp, packets, inputs, T, B, record) -> RunResult:
    shapes = graph.shapes()
    sizes = {k: int(np.prod(s)) for k, s in shapes.items()}
    layer_out: dict[str, np.ndarray] = {k: x.reshape(T, B, -1) for k, x in inputs.items()}
    kinds = {}
    for prog in mesh.programs:
        for layer in prog.layers:
            if layer.kind != "input":
                kinds[layer.name] = layer.kind
    for name, kind in kinds.items():
        layer_out[name] = np.zeros((T, B, sizes[name]), np.int64 if kind == "li" else np.uint8)
    states = {name: {"u": np.zeros((T, B, sizes[name]), np.int64),
                     "v": np.zeros((T, B, sizes[name]), np.int64)} for name in kinds} \
        if record else {}
    ev, tr = resp["events"], resp["trace"]
    b, t = np.divmod(ev[:, 0], T)
    tb_, tt = np.divmod(tr[:, 0], T)
    nl, npr = params["NL"], params["NP"]
    cnt = resp["counters"]
    counters: dict = {k: {} for k in ("spikes", "neuron_updates", "synaptic_events",
                                      "synaptic_events_nonzero", "active_neuron_updates",
                                      "unsafe_updates")}

    def add(kind: str, key: str, value: int) -> None:
        counters[kind][key] = counters[kind].get(key, 0) + value

    for k, prog in enumerate(mesh.programs):
        for li, (name, members) in enumerate(mesh.where[k]):
            if name is None:
                continue
            sel = (ev[:, 1] == k) & (ev[:, 2] == li)
            value = ev[sel, 4] if kinds[name] == "li" else 1
            layer_out[name][t[sel], b[sel], members[ev[sel, 3]]] = value
            if record:
                s = (tr[:, 1] == k) & (tr[:, 2] == li)
                states[name]["u"][tt[s], tb_[s], members[tr[s, 3]]] = tr[s, 4]
                states[name]["v"][tt[s], tb_[s], members[tr[s, 3]]] = tr[s, 5]
            if kinds[name] != "li":
                add("spikes", name, cnt[(k, li)])
            add("neuron_updates", name, cnt[(k, nl + li)])
            add("unsafe_updates", name, cnt[(k, 2 * nl + li)])
            add("active_neuron_updates", name, cnt[(k, 3 * nl + li)])
        for q, p in enumerate(prog.projections):
            if p.count:
                add("synaptic_events", p.name, cnt[(k, 4 * nl + q)])
                add("synaptic_events_nonzero", p.name, cnt[(k, 4 * nl + npr + q)])
    spiking = [n for n, kind in kinds.items() if kind != "li"]
    outputs = assemble_outputs({n: graph.predecessors(n) for n in graph.outputs}, layer_out,
                               spiking)
    cycles = resp["cycles"]
    counters["cycles"] = {"total": int(cycles.sum()), "per_step_max": int(cycles.max(initial=0)),
                          "per_step_min": int(cycles.min(initial=cycles.max(initial=0))),
                          "steps": len(cycles),
                          # clocks each core worked (not waiting at the barrier), over the run
                          "per_core": {str(k): v for k, v in resp["work"].items()}}
    return RunResult(outputs=outputs, backend="verilog",
                     spikes={n: layer_out[n] for n in spiking} if record else {},
                     states=states, counters=counters,
                     traffic=_traffic(mesh, params, resp, packets))


def _traffic(mesh: Mesh, params, resp, packets) -> dict:
    """What the routers and cores counted, keyed as `nmcompile.mapping.traffic` keys it."""
    nl, npr = params["NL"], params["NP"]
    cnt, rc = resp["counters"], resp["routers"]
    n = mesh.n_cores
    sent = {str(k): cnt[(k, 4 * nl + 2 * npr)] for k in range(n)}
    hops = {str(k): cnt[(k, 4 * nl + 2 * npr + 1)] for k in range(n)}
    allp = np.concatenate(packets) if packets else np.zeros((0, 5), np.int64)
    if rc[5 * n]:
        sent["host"] = rc[5 * n]
        hops["host"] = int((1 + allp[:, 0] + allp[:, 1]).sum())  # the host port, then XY
    links = {"host->0,0": rc[5 * n]}
    for k in range(n):
        x, y = k % mesh.cols, k // mesh.cols
        for port, (dx, dy) in enumerate(PORTS, start=1):
            links[f"{x},{y}->{x + dx},{y + dy}"] = rc[5 * k + port]
    keep = {k: v for k, v in sent.items() if v}
    return {"core_messages": keep, "spike_hops": {k: hops[k] for k in keep},
            "link_packets": {k: v for k, v in links.items() if v}}
