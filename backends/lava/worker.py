"""The worker interpreter's entry point: the Lava side of a run, without PyTorch.

Lava forks one OS process per Lava process; forking a process in which PyTorch has started
its thread pools can deadlock the child. So `isolation.run_jobs` starts this module with
`python -m backends.lava.worker SCRATCH` (a new interpreter, not a fork and not
`multiprocessing`'s spawn, which would re-import the caller's `__main__`), hands it plain
arrays in `SCRATCH/job<k>.npz` (loaded with `allow_pickle=False`) and reads back
`SCRATCH/result<k>.npz`, or `SCRATCH/error.json` when a job failed.

`session.json` groups the jobs; each group is one Lava run holding its jobs' networks side by
side, guarded by `isolation.run_guarded` (deadline, clean-up of children and shared memory).
Groups run one after the other in this one interpreter, so they share its start-up.

This module imports only the standard library and numpy at the top (Lava and the rest of the
backend where a job is run), so the interpreter starts light.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np


def execute(jobs: list[tuple[Any, int, dict[str, np.ndarray], int, bool]], timeout_s: float,
            scratch: Path) -> list[dict[str, np.ndarray]]:
    """Build several lowered networks side by side, run them as one Lava run, read them back.

    A job is (plan, batch, RingBuffer data by input, steps, whether to record u and v). One
    run saves Lava's fixed cost (compiling, forking, the shared-memory server) for every
    network but the first. Per job: `rec/<process>` (steps, batch * n) outputs of every
    neuron process (a layer, or a piece of one) in Lava order; with states,
    `state/<process>/u` and `.../v` (steps, batch * n) after every step;
    `fanout/<proc>` synapses per input neuron of each counted connection process, from the
    weights Lava holds after the run; `weights_ok/<proc>` whether those are the weights the
    lowering asked for. The weight reader also holds a RefPort to every neuron layer's v, so
    that all networks, and unconnected parts of one graph, belong to the one process graph
    Lava compiles (it compiles what is connected to the process it runs).
    """
    from backends.lava.fanout import conv_fanout, matrix_fanout, sparse_fanout
    from backends.lava.isolation import run_guarded
    from backends.lava.models import state_recorder, weight_reader
    from backends.lava.processes import build, replicate

    t0 = time.perf_counter()
    steps = max(job[3] for job in jobs)
    nets, read_back = [], []  # read_back: (job, proc name) per reader port, None: a link
    sources = []
    traced: list[tuple[int, str, str]] = []  # (job, neuron process, var) per recorded trace
    for k, (plan, batch, ring, _, states) in enumerate(jobs):
        padded = {name: np.pad(data, ((0, 0), (0, steps - data.shape[1])))
                  for name, data in ring.items()}  # a RingBuffer replays: pad with silence
        net = build(plan, batch, padded, record_steps=steps)
        nets.append(net)
        counted = list(dict.fromkeys(c.proc for c in plan.counts))
        for name in counted:
            kind = plan.proc(name).entry
            if kind.read_back:
                sources.append((net.processes[name], kind.weights))
                read_back.append((k, name))
        neurons = [name for layer in plan.layers for name in layer.procs]
        for name in neurons:  # join every layer (and so every network) into one run
            sources.append((net.processes[name], "v"))
            read_back.append(None)
        traced += [(k, name, var) for name in neurons for var in ("u", "v")] if states else []
    path = scratch / f"weights-{time.monotonic_ns()}.npz"
    trace_path = scratch / f"states-{time.monotonic_ns()}.npz"
    model_map: dict[Any, type] = {}
    for net in nets:
        model_map.update(net.model_map)
    if sources:
        reader, model = weight_reader(sources, steps, str(path))
        model_map[reader] = model
    if traced:
        recorder, model = state_recorder(
            [(nets[k].processes[name], var) for k, name, var in traced], steps, str(trace_path))
        model_map[recorder] = model

    def read() -> list[dict[str, np.ndarray]]:
        return [{f"rec/{name}": np.stack([ex.receive() for _ in range(steps)])
                 for name, ex in net.recorders.items()} for net in nets]

    from lava.magma.core.run_configs import Loihi2SimCfg

    cfg = Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map=model_map)
    t1 = time.perf_counter()
    outs = run_guarded(nets[0].top, steps, cfg, read=read, timeout_s=timeout_s)
    t2 = time.perf_counter()
    assert outs is not None
    held = dict(np.load(path, allow_pickle=False)) if sources else {}
    path.unlink(missing_ok=True)
    weights = {where: held[f"w{i}"] for i, where in enumerate(read_back) if where}
    held = dict(np.load(trace_path, allow_pickle=False)) if traced else {}
    trace_path.unlink(missing_ok=True)
    traces = {(k, f"state/{name}/{var}"): held[f"s{i}"].astype(np.int64)
              for i, (k, name, var) in enumerate(traced)}
    results = []
    for k, ((plan, batch, _, _, _), net, rec) in enumerate(zip(jobs, nets, outs, strict=True)):
        out = {key: np.rint(v).astype(np.int64) for key, v in rec.items()}
        out |= {key: trace for (j, key), trace in traces.items() if j == k}
        for name in dict.fromkeys(c.proc for c in plan.counts):
            spec = plan.proc(name)
            p = replicate(spec, batch)
            if (k, name) in weights:
                w = weights[(k, name)]
                want = p["weights"] if "weights" in p else p["weight"]
                out[f"weights_ok/{name}"] = np.array(np.array_equal(w, want))
                out[f"fanout/{name}"] = conv_fanout(
                    w.shape, p["input_shape"], p["output_shape"], p["stride"], p["padding"],
                    p["dilation"], p["groups"]) if spec.is_image else \
                    matrix_fanout(w, batch)
            else:
                # Lava 0.10 cannot send a csr Var through a RefPort, and Var.get() returns
                # its values without their positions: use the structure it was built with.
                out[f"fanout/{name}"] = sparse_fanout(net.processes[name].weights.init, batch)
                out[f"weights_ok/{name}"] = np.array(True)
        # seconds building the processes, and in Lava (compile, start, steps, read, stop)
        out["seconds/build"], out["seconds/lava"] = np.array(t1 - t0), np.array(t2 - t1)
        results.append(out)
    return results


def main(scratch_dir: str) -> int:
    scratch = Path(scratch_dir)
    from backends.lava.plan import Plan

    session = json.loads((scratch / "session.json").read_text())
    deadline = time.time() + float(session["timeout_s"])
    for group in session["groups"]:
        try:
            jobs = []
            for k in group:
                with np.load(scratch / f"job{k}.npz", allow_pickle=False) as job:
                    ring = {key[len("ring/"):]: job[key] for key in job.files
                            if key.startswith("ring/")}
                    states = "states" in job.files and bool(job["states"])
                    jobs.append((Plan.from_arrays(job, "plan/"), int(job["batch"]), ring,
                                 int(job["steps"]), states))
            results = execute(jobs, max(deadline - time.time(), 1.0), scratch)
            for k, result in zip(group, results, strict=True):
                result["torch_imported"] = np.array("torch" in sys.modules)
                np.savez(scratch / f"result{k}.npz", **result)
        except Exception as exc:
            # a LavaRunError carries the tracebacks Lava's own processes sent back
            failures = [list(f) for f in getattr(exc, "failures", [])]
            (scratch / "error.json").write_text(json.dumps({
                "jobs": group, "type": type(exc).__name__, "message": str(exc),
                "failures": [*failures, ["worker", traceback.format_exc()]]}))
            return 1
    return 0


if __name__ == "__main__":
    # Die with the parent (SIGKILL when it dies, even by SIGKILL); the parent's reaper then
    # kills the Lava children left in this session, unlinks their segments and removes the
    # scratch folder.
    from nmcompile.procs import die_with_parent

    die_with_parent(int(os.environ.get("NMCOMPILE_PARENT_PID", "0")) or None)
    sys.exit(main(sys.argv[1]))
