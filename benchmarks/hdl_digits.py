"""The Verilog core on the digits model, as one JSON object.

    .venv/bin/python benchmarks/hdl_digits.py [--model digits_q.nmc] [--samples 20]
                                             [--no-synth]

The model is the demo's quantised 64-128-10 LIF network (trained here with the demo's stages
when --model is not given). Measured:

- `simulation`: `nmcompile.run(qgraph, spikes, backend="verilog", simulator=...)` on the first
  `--samples` test digits, Icarus Verilog and Verilator, each with a cold build (a fresh
  build cache) and again with the cached build; simulated clock cycles per wall second;
- `cycles_per_step`: mean, min and max over every (sample, step), from the testbench;
- `resources`: `nmcompile compile --target verilog --synth ice40,xilinx`'s report: Yosys'
  cell counts (LUTs, FFs, block RAMs, carry cells, DSPs), nextpnr-ice40's measured Fmax on an
  iCE40 HX8K, and the throughput the measured cycles imply at that clock.

Before timing, asserts that both simulators' spikes equal the emulator's on every layer, step
and sample, and that the hardware counters equal the emulator's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import nmcompile  # noqa: E402
from backends import hdl  # noqa: E402
from nmcompile import datasets, demo  # noqa: E402
from nmcompile.ir import load  # noqa: E402

COUNTERS = ("spikes", "neuron_updates", "synaptic_events", "unsafe_updates")


def digits_model(path: str | None):
    if path:
        return load(path)
    with tempfile.TemporaryDirectory(prefix="hdl-bench-") as tmp:
        d = demo.Demo(out_dir=Path(tmp), log=lambda _: None)
        for stage in (demo.stage_train, demo.stage_export, demo.stage_quantize):
            stage(d)
    return d.qgraph


def timed_run(qgraph, x, simulator: str, ref) -> tuple[dict, hdl.runner.HdlRun]:
    out = {}
    for label in ("cold_build", "cached_build"):
        start = time.perf_counter()
        run = hdl.run_hdl(qgraph, x, simulator=simulator, record=True)
        out[f"{label}_s"] = round(time.perf_counter() - start, 3)
        for layer, spikes in ref.spikes.items():
            assert np.array_equal(spikes, run.result.spikes[layer]), (simulator, layer)
        for counter in COUNTERS:
            assert run.result.counters[counter] == ref.counters[counter], (simulator, counter)
    cycles = int(run.cycles.sum())
    out["clock_cycles"] = cycles
    out["cycles_per_wall_s"] = round(cycles / out["cached_build_s"])
    return out, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a quantised digits model (.nmc); default: train one")
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--no-synth", action="store_true", help="skip Yosys and nextpnr")
    args = parser.parse_args()

    qgraph = digits_model(args.model)
    x, _ = datasets.test_inputs(qgraph.metadata, args.samples)
    ref = nmcompile.run(qgraph, x, record=True)
    result = {"benchmark": "hdl_digits", "date": time.strftime("%Y-%m-%d"),
              "cores": os.cpu_count(), "machine": platform.machine(),
              "load_average_1min": {"start": round(os.getloadavg()[0], 2)},
              "samples": args.samples, "steps_per_sample": int(x.shape[0]),
              "synaptic_events": int(sum(ref.counters["synaptic_events"].values()))}
    user_cache = os.environ.get("NMCOMPILE_CACHE")
    with tempfile.TemporaryDirectory() as cache:
        os.environ["NMCOMPILE_CACHE"] = cache  # cold builds, then cached ones
        sims = {}
        for simulator in ("icarus", "verilator"):
            sims[simulator], run = timed_run(qgraph, x, simulator, ref)
    # back to the user's cache: the compile below must not recreate the deleted folder
    if user_cache is None:
        del os.environ["NMCOMPILE_CACHE"]
    else:
        os.environ["NMCOMPILE_CACHE"] = user_cache
    result["simulation"] = sims
    result["equal_to_emulator"] = True  # asserted above, every spike and counter
    result["cycles_per_step"] = {"mean": round(float(run.cycles.mean()), 1),
                                 "min": int(run.cycles.min()), "max": int(run.cycles.max())}
    result["params"] = run.params
    if not args.no_synth:
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            out = nmcompile.compile(qgraph, Path(tmp) / "digits_v", "verilog",
                                    synth=["ice40", "xilinx"])
            result["synthesis_s"] = round(time.perf_counter() - start, 1)
            reports = json.loads((out / "report.json").read_text())
        result["resources"] = {r["target"]: {k: r.get(k) for k in (
            "device", "luts", "ffs", "brams", "lutram", "carry", "dsps", "fmax_mhz",
            "throughput", "tool", "pnr_tool") if k in r} for r in reports}
    result["load_average_1min"]["end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
