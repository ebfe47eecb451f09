"""The Lava backend on the reference network, as one JSON object.

    .venv/bin/python benchmarks/lava_backend.py [--repeats 3]

Reference network: 512 Poisson inputs (p = 0.1) -> Dense -> 512 LIF -> Dense -> 10 LIF,
T = 200, batch 1; random integer weights (mixed sign, even, so Lava's weight preparation keeps
them), scalar LIF parameters without bias, so every process is stock Lava (`Dense`, `LIF`).
Measured (the median of `--repeats` runs):

- `lowering_s`: `backends.lava.lower(qgraph)`, IR -> plan of Lava processes (no Lava import);
- `lava.end_to_end_s`: `nmcompile.run(qgraph, spikes, backend="lava")`: lowering, starting the
  worker interpreter and importing Lava, building the processes, compiling, forking, running
  T + depth steps, reading back, stopping, re-aligning;
- `lava.in_lava_s`: the part inside Lava (compile, start, run, read, stop), from the worker;
- `lava.per_step_ms`: the marginal cost of one Lava step, from two runs of T and 6 T steps
  ((t(6T) - t(T)) / 5T), so that start-up and teardown cancel out;
- `emulator.run_s` / `per_step_ms`: `nmcompile.run(qgraph, spikes)` after one warm-up run
  (numba's compile is not timed).

Before timing, asserts that Lava's spikes equal the emulator's on every layer and step.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import nmcompile  # noqa: E402
from backends.lava import api, lower  # noqa: E402
from backends.lava import isolation as session  # noqa: E402
from nmcompile.ir import Graph, Input, Output  # noqa: E402
from nmcompile.ir.quantized import QLIF, QDense  # noqa: E402

T = 200


def reference(seed: int = 0) -> tuple[Graph, np.ndarray]:
    rng = np.random.default_rng(seed)
    g = Graph()
    g.add_node("x", Input((512,)))
    g.add_node("fc1", QDense(2 * rng.integers(-12, 16, (512, 512))))
    g.add_node("hidden", QLIF(vth=4000, du=1024, dv=256))  # ~11 % of steps
    g.add_node("fc2", QDense(2 * rng.integers(-20, 30, (10, 512))))
    g.add_node("out", QLIF(vth=8000, du=1024, dv=256))  # ~20 %
    g.add_node("o", Output())
    for a, b in (("x", "fc1"), ("fc1", "hidden"), ("hidden", "fc2"), ("fc2", "out"),
                 ("out", "o")):
        g.add_edge(a, b)
    x = (rng.random((T, 1, 512)) < 0.1).astype(np.int64)
    return g, x


def in_lava_seconds(g: Graph, x: np.ndarray) -> float:
    plan, inputs, t, _, chunks = api._prepare(g, x, None)
    (result,) = session.run_jobs([api._job(plan, inputs, *chunks[0], t)], timeout_s=600)
    return float(result["seconds/lava"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    g, x = reference()

    emulator = nmcompile.run(g, x, record=True)
    lava = nmcompile.run(g, x, backend="lava", record=True)
    for layer, spikes in emulator.spikes.items():
        assert np.array_equal(spikes, lava.spikes[layer]), f"Lava differs on {layer!r}"

    def median(fn) -> float:
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    lowering = median(lambda: lower(g))
    end_to_end = median(lambda: nmcompile.run(g, x, backend="lava"))
    in_lava = statistics.median(in_lava_seconds(g, x) for _ in range(args.repeats))
    long_x = np.concatenate([x] * 6)
    in_lava_long = statistics.median(in_lava_seconds(g, long_x) for _ in range(args.repeats))
    emulator_s = median(lambda: nmcompile.run(g, x))
    plan = lower(g)
    print(json.dumps({
        "network": "512 Poisson(p=0.1) -> Dense -> 512 LIF -> Dense -> 10 LIF, T=200, batch 1",
        "spikes": {k: int(v.sum()) for k, v in emulator.spikes.items()},
        "lava_equals_emulator": True,
        "lowering_s": round(lowering, 4),
        "lava": {
            "processes": [row["kind"] for row in plan.report()],
            "steps": T + plan.max_depth,
            "end_to_end_s": round(end_to_end, 3),
            "in_lava_s": round(in_lava, 3),
            "per_step_ms": round(1e3 * (in_lava_long - in_lava) / (5 * T), 3),
        },
        "emulator": {"run_s": round(emulator_s, 4),
                     "per_step_ms": round(1e3 * emulator_s / T, 4)},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "repeats": args.repeats,
    }, indent=1))


if __name__ == "__main__":
    main()
