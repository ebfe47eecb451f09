"""`run`: a quantised graph through the testbench, back to the emulator's `RunResult`."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from nmcompile.errors import LimitError
from nmcompile.ir import Graph
from nmcompile.ir.inputs import check_activity, normalize_inputs
from nmcompile.mapping.chips import Chip
from nmcompile.procs import Reaper
from nmcompile.result import RunResult, assemble_outputs

from .hexfiles import write_memories
from .limits import DEFAULT_CHIP, refuse_core
from .program import Program, apply_lanes, build_program, fit
from .simulate import Response, built, simulate

#: The slowest simulator speed the timeout allows for (Icarus runs ~10^5 clocks/s here).
MIN_CYCLES_PER_S = 10_000


@dataclass
class HdlRun:
    """A testbench run: the result, the clock cycles of every step (T, batch), the sizes
    the simulator was built with, and the program (a mesh's: `mesh.Mesh`)."""

    result: RunResult
    cycles: np.ndarray
    params: dict[str, int]
    program: Any


def input_events(program: Program, inputs: dict[str, np.ndarray], T: int,
                 B: int) -> list[np.ndarray]:
    """Per step (sample-major) the input events (source layer, neuron, value), non-zero only."""
    parts = []
    for layer in program.inputs:
        if not layer.ring:
            continue
        x = inputs[layer.name].reshape(T, B, -1)
        t, b, i = np.nonzero(x)
        step = b * T + t
        parts.append(np.stack([step, np.full_like(step, program.index(layer.name)), i,
                               x[t, b, i].astype(np.int64)], axis=1))
    allev = np.concatenate(parts) if parts else np.zeros((0, 4), np.int64)
    allev = allev[np.argsort(allev[:, 0], kind="stable")]
    cuts = np.searchsorted(allev[:, 0], np.arange(T * B + 1))
    return [allev[a:b, 1:] for a, b in itertools.pairwise(cuts)]


def worst_cycles(program: Program, T: int, B: int) -> int:
    """An upper bound on the run's clock cycles (docs/hdl.md's formula, every neuron and
    input firing on every step)."""
    per_step = 2 * len(program.layers) + len(program.projections) + 3
    per_step += sum(layer.n for layer in program.inputs)
    per_step += sum(4 + 3 * len(p.rows.lengths) + p.rows.count for p in program.projections)
    per_step += sum(layer.n * max(1, layer.nproj) + 10 for layer in program.neuron_layers)
    clear = program.params["S_DEPTH"] + program.params["A_DEPTH"]
    return T * B * per_step + B * clear


def _counter_bound(program: Program, T: int, B: int) -> int:
    synapses = sum(p.rows.count for p in program.projections)
    neurons = sum(layer.n for layer in program.neuron_layers)
    return T * B * (synapses + 2 * neurons)


def run_hdl(graph: Graph, spikes: np.ndarray | Mapping[str, np.ndarray], *,
            record: bool = False, simulator: str = "icarus",
            sizes: Mapping[str, int] | None = None, timeout_s: float | None = None,
            chip: str | Path | Chip = DEFAULT_CHIP, lanes: int = 1) -> HdlRun:
    """Simulate `graph` on `spikes` (T, batch, *shape) in one testbench invocation.

    `sizes`: build at least this large (see `program.merge_sizes`), so that several graphs
    share one simulator build. `chip`: the chip whose core bounds the program (neurons,
    synapse words: `limits.CoreLimits.of`); the weight width is the graph's profile's.
    `lanes`: synapses per clock of the core (1, 2, 4; `program.apply_lanes`).
    """
    shapes = graph.validate()
    inputs, T, B = normalize_inputs(graph, spikes, shapes, integers=True)
    check_activity(T, B, shapes, record)
    inputs = {k: np.asarray(v).astype(np.int64) for k, v in inputs.items()}
    input_max = max([1] + [int(np.abs(v).max(initial=0)) for v in inputs.values()])
    program = apply_lanes(build_program(graph, input_max=input_max, chip=chip), lanes)
    params = fit(program.params, dict(sizes) if sizes else None)
    bound = _counter_bound(program, T, B)
    if bound >= 1 << params["CNTW"]:
        params = fit(params, {"CNTW": bound.bit_length()})
    if params["CNTW"] > 64:
        raise LimitError(f"{T} steps of batch {B} could count past 2^64 events; run a "
                         f"smaller batch")
    events = input_events(program, inputs, T, B)
    budget = timeout_s or 60.0 + worst_cycles(program, T, B) / MIN_CYCLES_PER_S
    # One reaper for the build and the run: it removes their folders if we are killed.
    with Reaper() as reaper, built(simulator, params, reaper=reaper) as exe:
        resp = simulate(exe, simulator, partial(write_memories, program, params), events, B, T,
                        trace=record, timeout_s=budget, reaper=reaper)
    result = _result(program, params, resp, inputs, T, B, record)
    return HdlRun(result, resp.cycles.reshape(B, T).T.copy(), params, program)


def _result(program: Program, params: dict[str, int], resp: Response,
            inputs: dict[str, np.ndarray], T: int, B: int, record: bool) -> RunResult:
    """The testbench's per-layer events, traces and counters as the emulator's RunResult."""
    layer_out: dict[str, np.ndarray] = {}
    for name, x in inputs.items():
        layer_out[name] = x.reshape(T, B, -1)
    ev = resp.events
    b, t = np.divmod(ev[:, 0], T)
    for k, layer in enumerate(program.layers):
        if layer.kind == "input":
            continue
        sel = ev[:, 1] == k
        if layer.kind == "li":
            out = np.zeros((T, B, layer.n), np.int64)
            out[t[sel], b[sel], ev[sel, 2]] = ev[sel, 3]
        else:
            out = np.zeros((T, B, layer.n), np.uint8)
            out[t[sel], b[sel], ev[sel, 2]] = 1
        layer_out[layer.name] = out
    spiking = [layer.name for layer in program.neuron_layers if layer.kind != "li"]

    outputs = assemble_outputs(program.outputs, layer_out, spiking)

    states = {}
    if record:
        tr = resp.trace
        tb, tt = np.divmod(tr[:, 0], T)
        for k, layer in enumerate(program.layers):
            if layer.kind == "input":
                continue
            sel = tr[:, 1] == k
            u = np.zeros((T, B, layer.n), np.int64)
            v = np.zeros((T, B, layer.n), np.int64)
            u[tt[sel], tb[sel], tr[sel, 2]] = tr[sel, 3]
            v[tt[sel], tb[sel], tr[sel, 2]] = tr[sel, 4]
            states[layer.name] = {"u": u, "v": v}

    nl, npr = params["NL"], params["NP"]
    cnt = resp.counters
    neurons = {k: layer for k, layer in enumerate(program.layers) if layer.kind != "input"}
    cycles = resp.cycles
    counters = {
        "spikes": {layer.name: cnt[k] for k, layer in neurons.items() if layer.kind != "li"},
        "neuron_updates": {layer.name: cnt[nl + k] for k, layer in neurons.items()},
        "synaptic_events": {p.name: cnt[4 * nl + k] for k, p in enumerate(program.projections)
                            if p.count},
        "synaptic_events_nonzero": {p.name: cnt[4 * nl + npr + k]
                                    for k, p in enumerate(program.projections) if p.count},
        "active_neuron_updates": {layer.name: cnt[3 * nl + k] for k, layer in neurons.items()},
        "unsafe_updates": {layer.name: cnt[2 * nl + k] for k, layer in neurons.items()},
        "cycles": {"total": int(cycles.sum()), "per_step_max": int(cycles.max(initial=0)),
                   "per_step_min": int(cycles.min(initial=cycles.max(initial=0))),
                   "steps": len(cycles)},
    }
    return RunResult(outputs=outputs, backend="verilog",
                     spikes={n: layer_out[n] for n in spiking} if record else {},
                     states=states, counters=counters)


def run(graph: Graph, spikes: np.ndarray | Mapping[str, np.ndarray], *, record: bool = False,
        simulator: str = "icarus", sizes: Mapping[str, int] | None = None,
        timeout_s: float | None = None, chip: str | Path | Chip = DEFAULT_CHIP,
        core: None = None, lanes: int = 1) -> RunResult:
    """Run a quantised graph on the Verilog core in a simulator; see `nmcompile.run`.
    A graph placed by `nmcompile.map` runs on nm_mesh, a core per core of its placement
    (`mesh_runner.run_mesh`). `core` is refused: `chip` replaced it."""
    refuse_core(core)
    if graph.placement is not None:
        from .mesh_runner import run_mesh

        return run_mesh(graph, spikes, record=record, simulator=simulator, sizes=sizes,
                        timeout_s=timeout_s, lanes=lanes).result
    return run_hdl(graph, spikes, record=record, simulator=simulator, sizes=sizes,
                   timeout_s=timeout_s, chip=chip, lanes=lanes).result


__all__ = ["HdlRun", "run", "run_hdl"]
