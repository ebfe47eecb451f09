"""Mapping onto Loihi 2's cores: `sequential` against `traffic`, side by side (issue 15).

    .venv/bin/python benchmarks/mapping.py [--nets mlp,dvs,reservoir] [--scale 1.0]
        [--chip loihi2] [--steps 20]

Networks (`--scale` shrinks their widths, e.g. 0.05 for a quick look):
- mlp: the digits MLP scaled to 2,048 hidden neurons, 64 -> 2048 LIF -> 10 LIF, random
  weights, digits-like inputs (20 % of inputs spiking);
- dvs: `benchmarks/scale.py`'s DVS CNN (1.06M neurons), input events at 5 % per step;
- reservoir: `examples/reservoir.py`'s 100k-neuron E/I reservoir, Poisson inputs at 20 %.

The DVS CNN's and the reservoir's readouts (fan-in 524,288 and 100,000 source neurons) fit
no Loihi core (4,096 input axons): they are read out on the host (`host_layers`), and their
inputs count as messages to the host port. Each network is quantised once; each strategy then
maps it (the calibration run on the same inputs included in the time) and the mapped graph
runs on the emulator, which counts the messages and hops. Prints one JSON object per
(network, strategy) and one comparison line per network: spike-hops per inference of
`traffic` against `sequential`, and cores used.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))


def network(net: str, scale: float):
    """(quantised graph, host layers, input spikes (T, 1, ...) maker)."""
    import nmcompile

    if net == "mlp":
        from nmcompile.ir import LIF, Dense, Graph, Input, Output

        rng = np.random.default_rng(0)
        hidden = max(16, round(2048 * scale))
        g = Graph(dt=1e-3)
        g.add_node("x", Input((64,)))
        g.add_node("fc1", Dense(rng.normal(0, 0.4, (hidden, 64))))
        g.add_node("h", LIF(beta=0.9))
        g.add_node("fc2", Dense(rng.normal(0, 0.1, (10, hidden))))
        g.add_node("o", LIF(beta=0.9))
        g.add_node("out", Output())
        for a, b in (("x", "fc1"), ("fc1", "h"), ("h", "fc2"), ("fc2", "o"), ("o", "out")):
            g.add_edge(a, b)
        return nmcompile.quantize(g), (), 0.2
    import torch
    from scale import build

    torch.manual_seed(0)
    graph = build(net, scale)
    readout = [n for n in graph.schedule() if graph[n].kind == "neuron"][-1]
    return nmcompile.quantize(graph), (readout,), 0.05 if net == "dvs" else 0.2


def measure(q, chip: str, strategy: str, host, x) -> dict:
    import nmcompile

    t0 = time.perf_counter()
    mapped = nmcompile.map(q, chip, strategy=strategy, inputs=x, host_layers=host)
    map_s = time.perf_counter() - t0
    r = nmcompile.run(mapped, x)
    used = np.unique(np.concatenate(list(mapped.placement.cores.values())))
    hops = sum(r.counters["hops_east_west"].values()) + \
        sum(r.counters["hops_north_south"].values())
    batch = x.shape[1]
    return {"strategy": strategy, "cores": int(used.size),
            "chips": int(np.unique(used // 128).size), "map_s": round(map_s, 2),
            "messages_per_inference": sum(r.counters["core_messages"].values()) / batch,
            "spike_hops_per_inference": hops / batch,
            "within_tile_per_inference": sum(r.counters["messages_within_tile"].values())
            / batch, "spikes_per_inference": sum(r.counters["spikes"].values()) / batch}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nets", default="mlp,dvs,reservoir")
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--chip", default="loihi2")
    p.add_argument("--steps", type=int, default=20)
    args = p.parse_args()
    print(json.dumps({"load_average": os.getloadavg(), "cpus": os.cpu_count(),
                      "scale": args.scale, "chip": args.chip, "steps": args.steps}))
    for net in args.nets.split(","):
        t0 = time.perf_counter()
        q, host, rate = network(net, args.scale)
        shape = q[q.inputs[0]].shape
        x = (np.random.default_rng(1).random((args.steps, 1, *shape)) < rate).astype(np.uint8)
        neurons = sum(math.prod(s) for n, s in q.shapes().items() if q[n].kind == "neuron")
        print(json.dumps({"net": net, "neurons": neurons, "host_layers": list(host),
                          "build_and_quantize_s": round(time.perf_counter() - t0, 2)}))
        got = {}
        for strategy in ("sequential", "traffic"):
            got[strategy] = measure(q, args.chip, strategy, host, x)
            print(json.dumps({"net": net, **got[strategy]}), flush=True)
        seq, tr = got["sequential"], got["traffic"]
        print(json.dumps({"net": net, "summary": True,
                          "hops_traffic_over_sequential": round(
                              tr["spike_hops_per_inference"]
                              / max(seq["spike_hops_per_inference"], 1e-12), 3),
                          "cores_traffic_over_sequential": round(tr["cores"] / seq["cores"], 3),
                          "messages_traffic_over_sequential": round(
                              tr["messages_per_inference"]
                              / max(seq["messages_per_inference"], 1e-12), 3)}), flush=True)


if __name__ == "__main__":
    main()
