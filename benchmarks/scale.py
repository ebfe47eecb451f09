"""Real-size networks through every stage, each stage in a fresh process (issue 14).

    .venv/bin/python benchmarks/scale.py [--nets dvs,mlp,reservoir] [--dir DIR] [--scale 1.0]
        [--stages build,load,quantize,load_q,run,estimate,lava,verilog]

Networks (`--scale` shrinks their widths, e.g. 0.1 for a quick look):
- dvs: Conv2d(2,32,3,p=1) -> LIF -> Conv2d(32,32,3,p=1) -> LIF -> AvgPool2d(4) -> Flatten ->
  Linear(32768, 11) -> LIF on a 2x128x128 input (1.06M neurons with the pooling folded);
- mlp: Linear(1000, 100000) -> LIF -> Linear(100000, 10) -> LIF (101M synapses);
- reservoir: `examples/reservoir.py`'s 100k-neuron sparse E/I reservoir (about 1,000
  synapses each, delays) with a linear readout.

Stages, each a child process whose wall time and peak RSS (`wait4`) are reported, reading the
previous stage's file: build (the PyTorch model and `from_torch`, or the reservoir builder,
then `save`), load (the float file), quantize (load, `quantize`, `save`), load_q, run (the
emulator, T = 20, batch 1), estimate, lava (`compile --target lava`), verilog (`compile
--target verilog`: an artefact, or the `LimitError` that names the layer and the core limit).
Prints one JSON object per stage, then a summary line per network with `float_to_quantized_s`
(the quantise stage, which loads, quantises and saves, plus load_q: the issue's 60 s target)
and the quantise stage's peak RSS
against the float weights' in-memory size plus 1 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

STAGES = ("build", "load", "quantize", "load_q", "run", "estimate", "lava", "verilog")
T = 20


def weights_mb(graph) -> float:
    """Megabytes of every array the graph's nodes hold (weights, indices, parameters)."""
    import numpy as np

    return sum(v.nbytes for node in graph.nodes.values()
               for v in vars(node).values() if isinstance(v, np.ndarray)) / 1e6


def _dvs(scale: float):
    import torch.nn as nn

    from nmcompile import nn as snn

    c = max(1, round(32 * scale))
    side = max(8, round(128 * scale ** 0.5) // 4 * 4)
    model = snn.sequential(nn.Conv2d(2, c, 3, padding=1), snn.LIF(beta=0.9),
                           nn.Conv2d(c, c, 3, padding=1), snn.LIF(beta=0.9), nn.AvgPool2d(4),
                           nn.Flatten(), nn.Linear(c * (side // 4) ** 2, 11), snn.LIF(beta=0.9))
    return model, (2, side, side)


def _mlp(scale: float):
    import torch.nn as nn

    from nmcompile import nn as snn

    hidden = max(10, round(100_000 * scale))
    model = snn.sequential(nn.Linear(1000, hidden), snn.LIF(beta=0.9), nn.Linear(hidden, 10),
                           snn.LIF(beta=0.9))
    return model, (1000,)


def build(net: str, scale: float):
    """The float graph of `net`."""
    if net == "reservoir":
        sys.path.insert(0, str(REPO / "examples"))
        from reservoir import build_reservoir

        return build_reservoir(n=max(100, round(100_000 * scale)))
    import torch

    import nmcompile

    model, shape = {"dvs": _dvs, "mlp": _mlp}[net](scale)
    with torch.no_grad():
        return nmcompile.from_torch(model, torch.zeros(1, 1, *shape), dt=1e-3)


def stage(net: str, name: str, folder: Path, scale: float) -> dict:
    """One stage, in this (fresh) process; its own timings of the steps inside."""
    import numpy as np

    import nmcompile

    float_file, q_file = folder / f"{net}.nmc", folder / f"{net}_q.nmc"
    out: dict = {}
    t0 = time.perf_counter()
    if name == "build":
        graph = build(net, scale)
        out["build_s"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        nmcompile.save(graph, float_file, force=True)
        out["save_s"] = time.perf_counter() - t1
        out["file_mb"] = float_file.stat().st_size / 1e6
        out["weights_mb"] = weights_mb(graph)
    elif name == "load":
        nmcompile.load(float_file)
    elif name == "quantize":
        graph = nmcompile.load(float_file)
        out["load_s"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        q = nmcompile.quantize(graph)
        out["quantize_s"] = time.perf_counter() - t1
        out["q_weights_mb"] = weights_mb(q)
        t1 = time.perf_counter()
        nmcompile.save(q, q_file, force=True)
        out["save_s"] = time.perf_counter() - t1
        out["file_mb"] = q_file.stat().st_size / 1e6
    elif name == "load_q":
        nmcompile.load(q_file)
    elif name in ("run", "estimate"):
        q = nmcompile.load(q_file)
        shapes = {n: q[n].shape for n in q.inputs}
        x = (np.random.default_rng(0).random((T, 1, *shapes[q.inputs[0]])) < 0.1)
        t1 = time.perf_counter()
        if name == "run":
            result = nmcompile.run(q, x.astype(np.int64))
            out["synaptic_events"] = int(sum(result.counters["synaptic_events"].values()))
        else:
            nmcompile.estimate(q, x.astype(np.int64))
        out[f"{name}_s"] = time.perf_counter() - t1
        if name == "run":
            out["events_per_s"] = out["synaptic_events"] / out["run_s"]
    elif name in ("lava", "verilog"):
        q = nmcompile.load(q_file)
        t1 = time.perf_counter()
        try:
            nmcompile.compile(q, folder / f"{net}_{name}", name, force=True)
            out["artefact"] = str(folder / f"{net}_{name}")
        except nmcompile.NmcompileError as exc:
            out["refused"] = f"{type(exc).__name__}: {exc}"
        out["compile_s"] = time.perf_counter() - t1
    out["seconds"] = time.perf_counter() - t0
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nets", default="dvs,mlp,reservoir")
    p.add_argument("--stages", default=",".join(STAGES))
    p.add_argument("--dir", default="/tmp/nmcompile-scale")
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--child", nargs=2, metavar=("NET", "STAGE"), help=argparse.SUPPRESS)
    args = p.parse_args()
    folder = Path(args.dir)
    if args.child:
        print(json.dumps(stage(*args.child, folder, args.scale), default=str))
        return
    folder.mkdir(parents=True, exist_ok=True)
    print(json.dumps({"load_average": os.getloadavg(), "cpus": os.cpu_count(),
                      "scale": args.scale}))
    for net in args.nets.split(","):
        got = {}
        for name in args.stages.split(","):
            start = time.perf_counter()
            proc = subprocess.Popen([sys.executable, __file__, "--dir", str(folder), "--scale",
                                     str(args.scale), "--child", net, name],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            stdout, stderr = proc.stdout.read(), proc.stderr.read()
            row = {"net": net, "stage": name, "wall_s": round(time.perf_counter() - start, 2),
                   "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}
            if proc.returncode == 0:
                row |= json.loads(stdout.strip().splitlines()[-1])
            else:
                row["error"] = (stderr.strip().splitlines() or ["?"])[-1]
            got[name] = row
            print(json.dumps(row, default=str), flush=True)
            if "error" in row and name in ("build", "quantize"):
                break
        q = got.get("quantize", {})
        summary = {"net": net, "summary": True}
        if all(s in got and "error" not in got[s] for s in ("quantize", "load_q")):
            # the quantise stage loads the float file itself
            summary["float_to_quantized_s"] = round(
                got["quantize"]["wall_s"] + got["load_q"]["wall_s"], 1)
        if "weights_mb" in got.get("build", {}) and "peak_rss_mb" in q:
            summary["quantize_rss_mb"] = q["peak_rss_mb"]
            summary["quantize_rss_target_mb"] = round(got["build"]["weights_mb"] + 1024, 1)
        print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
