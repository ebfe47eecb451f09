"""The backend contract for Lava: `capabilities`, `check`, `run`, `compile`, and `build` for
embedding the lowered processes in your own Lava application.

`run` never runs Lava in the calling process: it lowers the graph here, then runs the Lava
processes in a fresh worker interpreter (see `isolation.py`), and re-aligns what Lava recorded
to IR time.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from nmcompile.contract import (
    BASE_COUNTERS,
    Capabilities,
    Option,
    Problem,
    node_problems,
    raise_problems,
)
from nmcompile.errors import LimitError, NmcompileError
from nmcompile.ir import Graph
from nmcompile.ir.inputs import delayed, normalize_inputs
from nmcompile.result import RunResult

from .isolation import LavaRunError
from .lowering import MAX_PROCESSES, SUPPORTED, lower
from .plan import Plan

if TYPE_CHECKING:
    from .processes import LavaNetwork

__all__ = ["build", "capabilities", "check", "compile", "lower", "name", "run", "run_many"]

#: Bytes of block-diagonal weights one batched network may hold (int64, before Lava's int32).
BATCH_BYTES = 64 << 20
MAX_BATCH = 16
#: Bytes the Extractor buffers of one run may hold (Lava's recorders buffer float64).
RECORD_BYTES = 1 << 30
DEFAULT_TIMEOUT_S = 600.0

name = "lava"
capabilities = Capabilities(
    nodes=SUPPORTED,
    counters=(*BASE_COUNTERS, "lava"),
    options=(
        Option("timeout_s", float, DEFAULT_TIMEOUT_S, "seconds the whole run, start-up "
               "included, may take before its Lava worker is stopped", verbs=("run",)),
        Option("max_batch", int, None, f"samples per Lava network (default: as many as "
               f"{BATCH_BYTES >> 20} MiB of block-diagonal weights hold, at most {MAX_BATCH})",
               verbs=("run",)),
        Option("max_processes", int, MAX_PROCESSES, "Lava processes a graph may need (a long "
               "edge delay adds a delay line per 64 steps)"),
        Option("spikes", np.ndarray, None, "an example input written with the program "
               "(default: the model's data set or random spikes)", verbs=("compile",)),
        Option("strict_hardware", bool, False, "refuse a graph that needs a custom Lava "
               "process (CPU simulation only; alias: --strict-hardware)", verbs=("compile",)),
    ),
    tools=("lava-nc 0.10.0",),
    notes=("a cycle runs when its IR delay is at least its number of projections",
           "weights: 8-bit Loihi synapses, unchanged by Lava's weight preparation"),
)


def check(graph: Graph) -> list[Problem]:
    """What the Lava backend cannot lower, each naming its node, before any work: node
    types, then whatever the lowering refuses (weights Lava would change, cycles shorter than
    their Lava hops). The number of Lava processes is an option's limit (`max_processes`):
    `run` and `compile` check it against theirs."""
    problems = node_problems(graph, name, capabilities)
    if problems:
        return problems
    try:
        lower(graph, max_processes=sys.maxsize)
    except NmcompileError as exc:
        return [Problem.of(exc)]
    return []
#: Networks run side by side in one Lava run up to this many Lava processes (each one an OS
#: process stepping in lockstep): fewer runs, fewer fixed start-up costs.
GROUP_PROCESSES = 48

Spikes = np.ndarray | Mapping[str, np.ndarray]


def _inputs(graph: Graph, spikes: Spikes, shapes: Mapping[str, tuple[int, ...]]
            ) -> tuple[dict[str, np.ndarray], int, int]:
    """The caller's inputs as int64 (T, B, *shape) arrays by input name, with T and B."""
    inputs, T, B = normalize_inputs(graph, spikes, shapes, integers=True)
    for name, arr in inputs.items():
        if np.abs(arr).max(initial=0) >= 2**23:
            raise NmcompileError(f"input {name!r}: values must stay within 24 bits")
    return {name: arr.astype(np.int64) for name, arr in inputs.items()}, T, B


def _graded(inputs: Mapping[str, np.ndarray]) -> set[str]:
    return {name for name, x in inputs.items() if x.size and (x.min() < 0 or x.max() > 1)}


def batch_size(plan: Plan, batch: int, max_batch: int | None = None) -> int:
    """Samples per Lava network: 1 with a `Conv`, else as many as the block-diagonal weights
    allow within `BATCH_BYTES` (they grow with the square of the batch)."""
    if not plan.batchable():
        return 1
    per_pair = sum(8 * int(np.prod(p.params["shape"])) * (1 + int(p.params.get("delays", 0)))
                   for p in plan.procs if "weights" in p.params)
    fit = math.isqrt(BATCH_BYTES // per_pair) if per_pair else MAX_BATCH
    return max(1, min(batch, fit, max_batch or MAX_BATCH))


def _ring(plan: Plan, inputs: Mapping[str, np.ndarray], b0: int, b1: int, steps: int
          ) -> dict[str, np.ndarray]:
    """RingBuffer data (batch * n, steps), Lava order, IR step t on Lava step t + depth."""
    ring = {}
    for spec in plan.inputs:
        x = inputs[spec.name][:, b0:b1].reshape(inputs[spec.name].shape[0], b1 - b0, -1)
        x = x[:, :, spec.perm]
        T = x.shape[0]
        data = np.zeros((steps, b1 - b0, spec.n), np.int32)
        data[spec.depth:spec.depth + T] = x
        ring[spec.name] = np.ascontiguousarray(data.reshape(steps, -1).T)
    return ring


def _job(plan: Plan, inputs: Mapping[str, np.ndarray], b0: int, b1: int, T: int,
         states: bool = False) -> dict[str, np.ndarray]:
    """The arrays of one Lava network: the plan, its RingBuffer data, its batch and steps,
    and whether to record every neuron's u and v (`states`)."""
    steps = T + plan.max_depth
    # the Extractors buffer float64 spikes; u and v add two int32 traces
    per_neuron = 8 + (8 if states else 0)
    record = per_neuron * steps * (b1 - b0) * sum(layer.n for layer in plan.layers)
    if record > RECORD_BYTES:
        raise LimitError(f"recording {steps} Lava steps of {b1 - b0} sample(s) would buffer "
                         f"{record / 2**30:.1f} GiB; run fewer steps or a smaller batch")
    job = plan.to_arrays("plan/")
    job |= {f"ring/{k}": v for k, v in _ring(plan, inputs, b0, b1, steps).items()}
    job["batch"], job["steps"] = np.array(b1 - b0), np.array(steps)
    job["states"] = np.array(bool(states))
    return job


def _prepare(graph: Graph, spikes: Spikes, max_batch: int | None,
             max_processes: int = MAX_PROCESSES
             ) -> tuple[Plan, dict[str, np.ndarray], int, int, list[tuple[int, int]]]:
    raise_problems(node_problems(graph, name, capabilities))  # before the inputs are read
    shapes = graph.validate()
    inputs, T, B = _inputs(graph, spikes, shapes)
    plan = lower(graph, _graded(inputs), max_processes=max_processes)
    size = batch_size(plan, B, max_batch)
    chunks = [(b, min(b + size, B)) for b in range(0, B, size)]
    return plan, inputs, T, B, chunks


def _aligned(plan: Plan, results: Sequence[Mapping[str, np.ndarray]], T: int,
             chunks: Sequence[tuple[int, int]], key: str = "rec/{}") -> dict[str, np.ndarray]:
    """Each neuron layer's recordings `key` (its outputs, or a state trace) as (T, B, n) in
    IR time and IR neuron order, its pieces' recordings side by side first."""
    out = {}
    for layer in plan.layers:
        # a run shared with longer networks records more steps: keep this graph's window
        parts = [np.concatenate([r[key.format(name)][layer.depth:layer.depth + T]
                                 .reshape(T, b1 - b0, -1) for name in layer.procs], axis=2)
                 for r, (b0, b1) in zip(results, chunks, strict=True)]
        lava = np.concatenate(parts, axis=1)
        ir = np.empty_like(lava)
        ir[..., layer.perm] = lava
        out[layer.name] = ir  # (T, B, n), flat like the emulator's
    return out


def _states(plan: Plan, results: Sequence[Mapping[str, np.ndarray]], T: int,
            chunks: Sequence[tuple[int, int]]) -> dict[str, dict[str, np.ndarray]]:
    """Each neuron layer's u and v after every step, as the emulator records them."""
    if not results or not any(k.startswith("state/") for k in results[0]):
        return {}
    traces = {var: _aligned(plan, results, T, chunks, f"state/{{}}/{var}") for var in "uv"}
    return {layer.name: {var: traces[var][layer.name] for var in "uv"}
            for layer in plan.layers}


def _assemble(graph: Graph, plan: Plan, inputs: Mapping[str, np.ndarray],
              results: Sequence[Mapping[str, np.ndarray]], T: int, B: int,
              chunks: Sequence[tuple[int, int]], record: bool) -> RunResult:
    from nmcompile.result import assemble_outputs

    for r in results:
        for key in r:
            if key.startswith("weights_ok/") and not bool(r[key]):
                raise LavaRunError(f"Lava process {key.split('/', 1)[1]!r} holds other weights "
                                   f"than the lowering gave it (Lava's weight preparation "
                                   f"changed them)")
    values = _aligned(plan, results, T, chunks)
    spiking = [layer.name for layer in plan.layers if layer.spiking]
    spikes = {n: values[n].astype(np.uint8) for n in spiking}
    flat = {**{n: v.reshape(T, B, -1) for n, v in inputs.items()}, **values}
    outputs = assemble_outputs({spec.name: spec.sources for spec in plan.outputs}, flat, spiking)
    events: dict[str, int] = {}
    for count in plan.counts:  # a projection split into pieces: one per connection process
        source = plan.layer(count.source)
        fan = np.zeros(source.n, results[0][f"fanout/{count.proc}"].dtype)
        fan[source.piece_perm(count.piece)] = results[0][f"fanout/{count.proc}"]
        active = delayed(flat[count.source] != 0, count.delay)
        events[count.node] = events.get(count.node, 0) + int(
            active.reshape(-1, active.shape[-1]).sum(axis=0) @ fan)
    counters = {
        "spikes": {n: int(spikes[n].sum(dtype=np.int64)) for n in spiking},
        "neuron_updates": {layer.name: T * B * layer.n for layer in plan.layers},
        "synaptic_events": events,
        "lava": {"processes": len(plan.procs),
                 "custom_processes": sum(not p.stock for p in plan.procs),
                 "steps": T + plan.max_depth, "runs": len(chunks)},
    }
    return RunResult(outputs=outputs, backend="lava", spikes=spikes if record else {},
                     states=_states(plan, results, T, chunks) if record else {},
                     counters=counters)


def _groups(sizes: Sequence[int]) -> list[list[int]]:
    """Consecutive jobs sharing one Lava run, up to `GROUP_PROCESSES` Lava processes each."""
    groups: list[list[int]] = []
    total = 0
    for k, size in enumerate(sizes):
        if groups and total + size <= GROUP_PROCESSES:
            groups[-1].append(k)
            total += size
        else:
            groups.append([k])
            total = size
    return groups


def run(graph: Graph, spikes: Spikes, *, record: bool = False,
        timeout_s: float = DEFAULT_TIMEOUT_S, max_batch: int | None = None,
        max_processes: int = MAX_PROCESSES) -> RunResult:
    """Run a quantised graph on Lava's bit-accurate CPU simulation; see `nmcompile.run`.

    The batch runs as block-diagonal copies in one network where Lava allows (sample by sample
    when the graph has a stock `Conv`). Everything, start-up included, must finish within
    `timeout_s`, else `LavaRunError` (nothing is left running). A graph that would need more
    than `max_processes` Lava processes (long edge delays add a delay line per 64 steps) is
    refused with a `LimitError` before any worker starts.
    """
    return run_many([(graph, spikes)], record=record, timeout_s=timeout_s,
                    max_batch=max_batch, max_processes=max_processes)[0]


def run_many(items: Sequence[tuple[Graph, Spikes]], *, record: bool = False,
             timeout_s: float = DEFAULT_TIMEOUT_S, max_batch: int | None = None,
             max_processes: int = MAX_PROCESSES) -> list[RunResult]:
    """`run` for several graphs in one Lava worker (one start-up for all)."""
    from .isolation import run_jobs

    prepared = [_prepare(graph, spikes, max_batch, max_processes) for graph, spikes in items]
    jobs, sizes = [], []
    for plan, inputs, T, _, chunks in prepared:
        for b0, b1 in chunks:
            jobs.append(_job(plan, inputs, b0, b1, T, states=record))
            sizes.append(plan.n_processes)
    results = run_jobs(jobs, timeout_s, _groups(sizes)) if jobs else []
    out, k = [], 0
    for (graph, _), (plan, inputs, T, B, chunks) in zip(items, prepared, strict=True):
        mine = results[k:k + len(chunks)]
        k += len(chunks)
        out.append(_assemble(graph, plan, inputs, mine, T, B, chunks, record))
    return out


def build(graph: Graph, batch: int = 1, *, max_processes: int = MAX_PROCESSES) -> LavaNetwork:
    """The live Lava processes of a quantised graph, for embedding in a Lava application.

    Runs in the calling process (Lava is imported here): connect your sources with
    `net.connect_input(name, port)`, read `net.output_ports`, and run with `net.run_cfg()`.
    Lava forks its workers, so do this in a process that has not started PyTorch's threads.
    """
    from .processes import build as build_plan

    return build_plan(lower(graph, max_processes=max_processes), batch)


def compile(graph: Graph, out_dir: str | Path, *, spikes: Spikes | None = None,
            max_processes: int = MAX_PROCESSES, strict_hardware: bool = False) -> Path:
    """Write a self-contained Lava program for `graph` into `out_dir` (see `artefact.py`);
    `max_processes` as for `run`; `strict_hardware`: refuse (UnsupportedError naming each
    layer, why and the fix) a graph that needs a custom, simulation-only process."""
    from .artefact import write

    return write(graph, Path(out_dir), spikes, max_processes=max_processes,
                 strict_hardware=strict_hardware)

