"""Synaptic events per second of the emulator's convolution path against its dense path.

    .venv/bin/python benchmarks/conv_speed.py [--repeats 5] [--profile]

conv: the DVS CNN without pooling, a float graph `Input((2, 128, 128)) -> Conv2d(2, 32, 3,
p=1) -> LIF(beta=0.9) -> Conv2d(32, 32, 3, p=1) -> LIF(beta=0.9) -> Output` (about 1.05M
neurons) with random weights scaled so both layers fire at a few % of steps, quantised by
`nmcompile.quantize`; T = 20, batch 1, Poisson input p = 0.1.
dense: benchmarks/emulator_speed.py's reference network (512 Poisson(p=0.1) -> Dense -> 512
LIF -> Dense -> 10 LIF, T = 200, its weights and parameters, copied here so that this script
needs neither Lava nor PyTorch), batch 1.

Events are `counters["synaptic_events"]` summed, time the wall time of `nmcompile.run` after
one untimed warm-up run (numba's compile); both networks are timed alternately, `--repeats`
times each; the medians are reported, and the best of the repeats (steadier on a busy
machine). Before timing, the script asserts on a small copy of the CNN that the emulator's run
equals the same network with every convolution unrolled by explicit loops into a dense matrix
(spikes of both layers), and that its event counts equal the unrolled synapses' fan-outs.
Prints one JSON object: events/s of both paths, their ratios (conv / dense), the load average
before and after.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import itertools
import json
import os
import pstats
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

import nmcompile  # noqa: E402
from nmcompile.ir import LIF, Conv2d, Graph, Input, Output  # noqa: E402
from nmcompile.ir.quantized import QLIF, QConv2d, QDense  # noqa: E402

# the dense reference: benchmarks/emulator_speed.py
N_IN, N_HID, N_OUT = 512, 512, 10
T_DENSE, P_IN = 200, 0.1
HIDDEN = {"vth": 8000, "du": 2048, "dv": 512}
OUTPUT = {"vth": 4000, "du": 2048, "dv": 512}
# the CNN
T_CONV, HW, CHANNELS = 20, 128, 32
SCALES = ((0.3, 0.03), (0.15, 0.003))  # (std, mean) of each layer's float weights


def chain(nodes: list[tuple[str, object]]) -> Graph:
    g = Graph()
    for name, node in nodes:
        g.add_node(name, node)
    for (a, _), (b, _) in itertools.pairwise(nodes):
        g.add_edge(a, b)
    return g


def dense_graph(seed: int = 0) -> Graph:
    rng = np.random.default_rng(seed)
    w1 = 2 * rng.integers(-32, 48, (N_HID, N_IN))
    w2 = 2 * rng.integers(-40, 48, (N_OUT, N_HID))
    return chain([("x", Input((N_IN,))), ("fc1", QDense(w1)), ("hidden", QLIF(**HIDDEN)),
                  ("fc2", QDense(w2)), ("out_lif", QLIF(**OUTPUT)), ("out", Output())])


def conv_graph(hw: int = HW, seed: int = 0) -> Graph:
    rng = np.random.default_rng(seed)
    (s1, m1), (s2, m2) = SCALES
    w1 = rng.normal(m1, s1, (CHANNELS, 2, 3, 3))
    w2 = rng.normal(m2, s2, (CHANNELS, CHANNELS, 3, 3))
    return nmcompile.quantize(chain([
        ("x", Input((2, hw, hw))), ("conv1", Conv2d(w1, padding=(1, 1))),
        ("lif1", LIF(beta=0.9)), ("conv2", Conv2d(w2, padding=(1, 1))),
        ("lif2", LIF(beta=0.9)), ("out", Output())]))


def poisson(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random(shape) < P_IN).astype(np.uint8)


def unrolled(node: QConv2d, in_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(weights, stored) (out, in) of a convolution, by explicit loops over every (output,
    input channel, tap): stored marks the taps that land inside the input."""
    c_out, cg, kh, kw = node.weight.shape
    _, h, w = in_shape
    _, ho, wo = node.output_shape(in_shape, "conv")
    (s0, s1), (p0, p1), (d0, d1) = node.stride, node.padding, node.dilation
    mat = np.zeros((c_out * ho * wo, int(np.prod(in_shape))), np.int64)
    stored = np.zeros(mat.shape, bool)
    for co in range(c_out):
        g = co // (c_out // node.groups)
        for ci in range(cg):
            for ky in range(kh):
                for kx in range(kw):
                    for oy in range(ho):
                        for ox in range(wo):
                            iy, ix = oy * s0 - p0 + ky * d0, ox * s1 - p1 + kx * d1
                            if 0 <= iy < h and 0 <= ix < w:
                                i = (co * ho + oy) * wo + ox
                                j = ((g * cg + ci) * h + iy) * w + ix
                                mat[i, j], stored[i, j] = node.weight[co, ci, ky, kx], True
    return mat, stored


def check_small_case() -> dict:
    """The CNN on a 2x12x12 input (T = 6, batch 2) against its convolutions unrolled into
    dense matrices: equal spikes, and events equal to the unrolled synapses' fan-outs."""
    q = conv_graph(hw=12, seed=1)
    shapes = q.validate()
    x = poisson((6, 2, 2, 12, 12), seed=2)
    got = nmcompile.run(q, x, record=True)
    nodes = []
    want_events = {}
    for name in q.schedule():
        node = q[name]
        if isinstance(node, QConv2d):
            src = q.predecessors(name)[0][0]
            mat, stored = unrolled(node, shapes[src])
            fed = x.reshape(12, -1) if src == "x" else got.spikes[src].reshape(12, -1)
            want_events[name] = int((fed != 0).sum(axis=0) @ stored.sum(axis=0))
            node = QDense(mat, node.weight_exp, out_shape=shapes[name])
        nodes.append((name, node))
    ref = nmcompile.run(chain(nodes), x, record=True)
    for name, spikes in got.spikes.items():
        assert np.array_equal(spikes, ref.spikes[name]), name
    assert got.counters["synaptic_events"] == want_events, (got.counters, want_events)
    assert sum(got.counters["spikes"].values()) > 0
    return {"small_case": "equal", "small_case_events": want_events}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--profile", action="store_true", help="print a cProfile of one conv run")
    args = ap.parse_args()
    load_before = os.getloadavg()
    checked = check_small_case()
    nets = {"conv": (conv_graph(), poisson((T_CONV, 1, 2, HW, HW), seed=1)),
            "dense": (dense_graph(), poisson((T_DENSE, 1, N_IN), seed=1))}
    info, times = {}, {name: [] for name in nets}
    for name, (g, x) in nets.items():  # warm-up: numba's compile; rates and events
        ref = nmcompile.run(g, x, record=True)
        assert sum(ref.counters["unsafe_updates"].values()) == 0, ref.counters
        info[name] = {"events": sum(ref.counters["synaptic_events"].values()),
                      "rates": {n: round(float(s.mean()), 4) for n, s in ref.spikes.items()},
                      "neurons": sum(ref.counters["neuron_updates"].values()) // len(x)}
        nets[name] = (g, x, ref.output())
    for _ in range(args.repeats):
        for name, (g, x, want) in nets.items():
            t0 = time.perf_counter()
            res = nmcompile.run(g, x)
            times[name].append(time.perf_counter() - t0)
            assert np.array_equal(res.output(), want)
            assert sum(res.counters["synaptic_events"].values()) == info[name]["events"]
    record = {"measure": "conv_vs_dense_events_per_s", **checked}
    for name in nets:
        med = statistics.median(times[name])
        best = min(times[name])
        record[name] = {**info[name], "wall_s": med, "wall_s_all": times[name],
                        "events_per_s": info[name]["events"] / med,
                        "events_per_s_best": info[name]["events"] / best}
    record["ratio_conv_to_dense"] = (record["conv"]["events_per_s"]
                                     / record["dense"]["events_per_s"])
    # on a busy machine the best of the repeats is the steadier comparison
    record["ratio_conv_to_dense_best"] = (record["conv"]["events_per_s_best"]
                                          / record["dense"]["events_per_s_best"])
    record["target_ratio"] = 1 / 3
    record["load_average_before"], record["load_average_after"] = load_before, os.getloadavg()
    record["cpus"] = os.cpu_count()
    if args.profile:
        g, x, _ = nets["conv"]
        prof = cProfile.Profile()
        prof.runcall(nmcompile.run, g, x)
        text = io.StringIO()
        pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(12)
        record["profile_conv"] = text.getvalue().splitlines()
    print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
