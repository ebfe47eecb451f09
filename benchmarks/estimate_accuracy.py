"""How close the analytic estimate (firing rates only, no simulation) comes to measured counts.

    .venv/bin/python benchmarks/estimate_accuracy.py [--model DIR/digits_q.nmc] [--samples N]

Two networks on scikit-learn's digits (Poisson-encoded test images, 25 steps):
- the demo's trained 64-128-10 LIF model (`nmcompile demo` writes DIR/digits_q.nmc), run on
  the emulator;
- a convolutional network with seeded random weights: 1x8x8 -> Conv2d 3x3 (6 channels,
  padding 1) -> LIF -> SumPool 2 -> Flatten -> Dense 10 -> LIF, on the float interpreter
  (the pool/flatten/dense chain folds into one 384 -> 10 matrix that stores zeros).

For each: measured counts; the analytic estimate at the measured per-layer rates (the
error of the model itself: uniform rates, independent spikes); and at rates known before any
run (the inputs' rate from the data, every other layer 0.1). Prints one JSON object per
network: per-layer measured and estimated synaptic ops and active updates, relative errors,
and the Loihi energy of each.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

import nmcompile  # noqa: E402
from nmcompile import datasets  # noqa: E402
from nmcompile.analysis import analytic, estimate  # noqa: E402
from nmcompile.analysis.estimation import hardware_view  # noqa: E402
from nmcompile.analysis.rates import measured_rates  # noqa: E402
from nmcompile.analysis.report import Estimate  # noqa: E402
from nmcompile.ir import LIF, Conv2d, Dense, Flatten, Graph, Input, Output, SumPool2d  # noqa: E402

META = {"dataset": {"name": "sklearn-digits", "split": "test", "test_size": 0.2, "seed": 0},
        "encoding": {"name": "poisson", "num_steps": 25, "rate": 1.0, "seed": 1}}


def conv_net(seed: int = 0) -> Graph:
    rng = np.random.default_rng(seed)
    g = Graph(dt=1e-3, metadata=META)
    g.add_node("x", Input((1, 8, 8)))
    g.add_node("conv", Conv2d(rng.normal(0.15, 0.5, (6, 1, 3, 3)), padding=1))
    g.add_node("lif1", LIF(beta=0.8, threshold=1.0))
    g.add_node("pool", SumPool2d(2))
    g.add_node("flat", Flatten())
    g.add_node("fc", Dense(rng.normal(0.0, 0.25, (10, 96))))
    g.add_node("lif2", LIF(beta=0.8, threshold=1.0))
    g.add_node("out", Output())
    for a, b in [("x", "conv"), ("conv", "lif1"), ("lif1", "pool"), ("pool", "flat"),
                 ("flat", "fc"), ("fc", "lif2"), ("lif2", "out")]:
        g.add_edge(a, b)
    return g


def compare(name: str, graph: Graph, spikes: np.ndarray) -> dict:
    measured = estimate(graph, spikes, "loihi", model=name)
    m = measured.counts
    g = hardware_view(graph)
    input_rate = float(np.count_nonzero(spikes) / spikes.size)
    out = {"network": name, "backend": m.backend, "samples": m.samples, "steps": m.steps,
           "measured_rates": measured_rates(m), "layers": {}, "loihi_j": {}}
    for label, rates in (("at_measured_rates", measured_rates(m)),
                         ("before_running", {**{k: input_rate for k in g.inputs},
                                             "default": 0.1})):
        a = analytic(g, m.steps, rates, m.samples)
        out["loihi_j"][label] = Estimate(name, a, measured.devices).energy_j["loihi"]
        for layer in m.layers:
            if layer.kind == "input":
                continue
            key = "synaptic_ops" if layer.kind == "projection" else "active_updates"
            got, want = getattr(a.layer(layer.name), key), getattr(layer, key)
            row = out["layers"].setdefault(layer.name, {"count": key, "measured": want})
            row[label] = round(got, 1)
            row[f"{label}_error"] = round((got - want) / want, 4) if want else None
    out["loihi_j"]["measured"] = measured.energy_j["loihi"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="nmcompile-demo/digits_q.nmc",
                        help="the demo's quantised digits model")
    parser.add_argument("--samples", type=int, default=360)
    args = parser.parse_args()
    spikes, _ = datasets.test_inputs(META, args.samples)
    model = Path(args.model)
    if model.exists():
        print(json.dumps(compare(model.name, nmcompile.load(model), spikes)))
    else:
        print(json.dumps({"network": str(model), "skipped": "run `nmcompile demo` first"}))
    images = spikes.reshape(spikes.shape[0], spikes.shape[1], 1, 8, 8).astype(np.float64)
    print(json.dumps(compare("conv-digits (random weights)", conv_net(), images)))


if __name__ == "__main__":
    main()
