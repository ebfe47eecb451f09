"""Clock cycles per step of the Verilog target as one core and as a 2 x 2 mesh, one JSON object.

    .venv/bin/python benchmarks/hdl_mesh.py [--model digits_q.nmc] [--stdp stdp_q.nmc]
                                           [--samples 20]

The models: the demo's quantised 64-128-10 digits network (trained here with the demo's
stages unless --model is given) and, with --stdp, a quantised STDP digits network (e.g. the
400-neuron one of `nmcompile demo --stdp --neurons 400`: DIR/stdp_q.nmc). Each runs on the
first --samples test digits in Verilator, side by side in one run:

- `1x1_lanes1`: today's single core (`hdl.run_hdl`, one synapse per clock);
- `2x2_lanes1`, `2x2_lanes2`: the graph mapped with
  `nmcompile.map(q, "fpga-mesh", cores=4, objective="latency")` on nm_mesh, 1 and 2
  accumulate lanes per core (`mesh_runner.run_mesh`).

Per build: clocks per step (mean, min, max over every sample and step), the ratio to the
single core, each core's working clocks per step (busy, not waiting at the barrier: the
testbench counts them), and the mapping report's latency estimate
(`nmcompile.mapping.report.summary`: the busiest core's synaptic events per step, plus the
longest route) in clocks: one synaptic event per lane per clock, two clocks per hop (a router's
input FIFO, then its output register). Before reporting, every run's spikes, states and
counters are asserted equal to the emulator's, and the mesh's router counts to the
emulator's traffic on the same mapping.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import nmcompile  # noqa: E402
from backends.hdl.mesh_runner import run_mesh  # noqa: E402
from backends.hdl.runner import run_hdl  # noqa: E402
from benchmarks.hdl_digits import digits_model  # noqa: E402
from nmcompile import datasets  # noqa: E402
from nmcompile.ir import load  # noqa: E402
from nmcompile.mapping.report import summary  # noqa: E402

COUNTERS = ("spikes", "neuron_updates", "synaptic_events", "synaptic_events_nonzero",
            "active_neuron_updates", "unsafe_updates")


def check(ref, got, label: str, traffic: bool) -> None:
    for layer, spikes in ref.spikes.items():
        assert np.array_equal(spikes, got.spikes[layer]), (label, layer)
    for layer, states in ref.states.items():
        for var, v in states.items():
            assert np.array_equal(v, got.states[layer][var]), (label, layer, var)
    for c in COUNTERS:
        assert ref.counters[c] == got.counters[c], (label, c)
    if traffic:
        for k in ("core_messages", "spike_hops", "link_packets"):
            assert ref.traffic[k] == got.traffic[k], (label, k)


def cycles(c: np.ndarray) -> dict:
    return {"mean": round(float(c.mean()), 1), "min": int(c.min()), "max": int(c.max())}


def measure(name: str, q, x) -> dict:
    ref = nmcompile.run(q, x, record=True)
    single = run_hdl(q, x, record=True, simulator="verilator")
    check(ref, single.result, f"{name} 1x1", False)
    out = {"1x1_lanes1": cycles(single.cycles)}
    mapped = nmcompile.map(q, "fpga-mesh", cores=4, objective="latency", inputs=x)
    ref_m = nmcompile.run(mapped, x, record=True)
    steps = x.shape[0] * x.shape[1]
    info = summary(mapped, ref_m, steps)["traffic"]
    busiest = max(info["core_events"].values()) / steps
    route = sum(ref_m.traffic["longest_route"])
    for lanes in (1, 2):
        run = run_mesh(mapped, x, record=True, simulator="verilator", lanes=lanes)
        check(ref_m, run.result, f"{name} 2x2 lanes {lanes}", True)
        work = {k: round(v / steps, 1)
                for k, v in run.result.counters["cycles"]["per_core"].items()}
        out[f"2x2_lanes{lanes}"] = {**cycles(run.cycles), "work_per_core": work,
                                    "estimate": round(busiest / lanes + 2 * route, 1)}
    base = out["1x1_lanes1"]["mean"]
    for key in ("2x2_lanes1", "2x2_lanes2"):
        out[key]["ratio_to_1x1"] = round(out[key]["mean"] / base, 3)
    events = {}
    for k, v in ref_m.traffic.get("core_events", {}).items():
        events[k] = round(v / steps, 1)
    out["mapping"] = {"neurons_per_core": {layer: np.bincount(c).tolist()
                                           for layer, c in mapped.placement.cores.items()},
                      "synaptic_events_per_step_by_core": events,
                      "messages": ref_m.traffic["core_messages"]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="the quantised digits model (.nmc); default: train one")
    ap.add_argument("--stdp", help="a quantised STDP digits model (.nmc), e.g. the 400-neuron "
                    "demo's stdp_q.nmc")
    ap.add_argument("--samples", type=int, default=20, help="test digits (default 20)")
    args = ap.parse_args()
    report = {"load_average": os.getloadavg(), "samples": args.samples}
    q = digits_model(args.model)
    x, _ = datasets.test_inputs(q.metadata, args.samples)
    report["digits"] = measure("digits", q, x)
    if args.stdp:
        s = load(args.stdp)
        xs, _ = datasets.test_inputs(s.metadata, args.samples)
        report["stdp"] = measure("stdp", s, xs)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
