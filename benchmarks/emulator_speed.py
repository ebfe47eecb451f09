"""Speed of the fixed-point emulator against Lava 0.10 (fixed_pt) and a float PyTorch loop.

    .venv/bin/python benchmarks/emulator_speed.py [--repeats 7] [--repeats-b1 21] [--lava-batch64 N]
        [--profile]

The reference network: 512 Poisson inputs (p = 0.1) -> Dense -> 512 LIF -> Dense -> 10 LIF,
T = 200 steps, random integer weights (mixed sign, even, so Lava's weight preparation keeps
them) that keep the hidden layer spiking at about 11 % of steps. Measured, each a few times
(the median is reported):

- emulator: `nmcompile.run(qgraph, spikes)` on the quantised graph, built from Q-nodes, at
  batch 1 and 64 (after one untimed warm-up run, so numba's compile is not timed);
- lava: the same network as Lava processes (RingBuffer -> Dense -> LIF -> Dense -> LIF ->
  Extractor, `Loihi2SimCfg(select_tag="fixed_pt")`), its compile, runtime start-up and
  `run()` timed separately; batch 1, and batch 64 as `--lava-batch64` samples run one after
  another (their `run()` times summed and scaled to 64);
- torch: an snnTorch-style float32 loop (per step: Linear, current and voltage update,
  threshold, reset), the same sizes and the float counterpart of the integer parameters,
  under `torch.no_grad()`, at batch 64 and 1; and snnTorch's own `Synaptic` neurons.

Lava needs two steps more than the IR (each Dense adds one step of latency) to deliver the
last input to the output layer; its run covers T + 2 steps and the ratios use its time per
step times T. Before any timing, the script asserts that Lava's hidden and output spikes equal
the emulator's on every step at batch 1 (aligned by the Dense latency), and each timed Lava
run asserts its output spikes again.

Synaptic events are counted as one per (delivered spike, stored synapse) pair: every input
spike reaches 512 synapses, every hidden spike 10. Prints one JSON object per measurement,
then, as the last line, a summary with `emulator_vs_lava_batch1` and
`emulator_vs_torch_batch64` (speed ratios; > 1 means the emulator is faster).
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import io
import json
import multiprocessing
import os
import pstats
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# Lava fixes multiprocessing's start method when first imported: import it before anything
# else can (the shim makes lava-nc 0.10 importable on Python 3.11).
from backends.lava import compat  # noqa: E402

compat.import_lava()

import numpy as np  # noqa: E402
import torch  # noqa: E402

import nmcompile  # noqa: E402
from nmcompile.ir import Graph, Input, Output  # noqa: E402
from nmcompile.ir.quantized import QLIF, QDense  # noqa: E402

N_IN, N_HID, N_OUT = 512, 512, 10
T = 200
P_IN = 0.1
HIDDEN = {"vth": 8000, "du": 2048, "dv": 512}
OUTPUT = {"vth": 4000, "du": 2048, "dv": 512}
LAVA_HOPS = 2  # Dense layers on the path to the output: Lava's extra steps
TARGETS = {"emulator_vs_lava_batch1": 100.0, "emulator_vs_torch_batch64": 1.0}


def emit(record: dict) -> None:
    print(json.dumps(record), flush=True)


# ---------------------------------------------------------------------------------------------
# The network
# ---------------------------------------------------------------------------------------------


def weights(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mixed-sign even integers: Lava drops the lowest bit of mixed 8-bit weights."""
    rng = np.random.default_rng(seed)
    w1 = 2 * rng.integers(-32, 48, (N_HID, N_IN))
    w2 = 2 * rng.integers(-40, 48, (N_OUT, N_HID))
    return w1, w2


def qgraph(w1: np.ndarray, w2: np.ndarray) -> Graph:
    g = Graph()
    g.add_node("x", Input((N_IN,)))
    g.add_node("fc1", QDense(w1))
    g.add_node("hidden", QLIF(**HIDDEN))
    g.add_node("fc2", QDense(w2))
    g.add_node("out_lif", QLIF(**OUTPUT))
    g.add_node("out", Output())
    for a, b in [("x", "fc1"), ("fc1", "hidden"), ("hidden", "fc2"), ("fc2", "out_lif"),
                 ("out_lif", "out")]:
        g.add_edge(a, b)
    return g


def poisson(batch: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((T, batch, N_IN)) < P_IN).astype(np.uint8)


def events(x: np.ndarray, hidden_spikes: np.ndarray) -> int:
    """Synaptic events: input spikes x 512 synapses + hidden spikes x 10 synapses."""
    return int(np.count_nonzero(x)) * N_HID + int(np.count_nonzero(hidden_spikes)) * N_OUT


def timed(fn, repeats: int) -> tuple[float, list[float], object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times, out


# ---------------------------------------------------------------------------------------------
# Emulator
# ---------------------------------------------------------------------------------------------


def bench_emulator(g: Graph, x: np.ndarray, repeats: int) -> dict:
    ref = nmcompile.run(g, x, record=True)  # warm-up (numba) and the event count
    assert sum(ref.counters["unsafe_updates"].values()) == 0, ref.counters["unsafe_updates"]
    med, times, res = timed(lambda: nmcompile.run(g, x), repeats)
    assert np.array_equal(res.output(), ref.output())
    n_events = sum(res.counters["synaptic_events"].values())
    assert n_events == events(x, ref.spikes["hidden"])
    return {"measure": "emulator", "batch": x.shape[1], "T": T, "wall_s": med,
            "wall_s_all": times, "synaptic_events": n_events, "events_per_s": n_events / med,
            "hidden_rate": float(ref.spikes["hidden"].mean()),
            "output_rate": float(ref.spikes["out_lif"].mean())}


# ---------------------------------------------------------------------------------------------
# Lava
# ---------------------------------------------------------------------------------------------


def lava_once(w1: np.ndarray, w2: np.ndarray, x1: np.ndarray, with_hidden: bool = False,
              timeout_s: float = 300.0) -> dict:
    """One sample (x1: (T, 512)) through Lava; returns timings and spikes (T + 2, n).

    Runs blocking `run()` so that its wall time is the run's; every child process and shared
    memory segment is cleaned up by the guarded runner's bookkeeping whatever happens.
    """
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.models import PyDenseModelBitAcc
    from lava.proc.dense.process import Dense
    from lava.proc.io.extractor import Extractor, PyLoihiExtractorModel
    from lava.proc.io.source import PySendModelFixed, RingBuffer
    from lava.proc.lif.models import PyLifModelBitAcc
    from lava.proc.lif.process import LIF

    from backends.lava.isolation import LavaRunError, _call_with_timeout, _RunGuard

    steps = T + LAVA_HOPS
    data = np.zeros((N_IN, steps), np.int32)  # the ring buffer wraps around: pad with zeros
    data[:, :T] = x1.T
    src = RingBuffer(data=data)
    fc1 = Dense(weights=w1)
    hidden = LIF(shape=(N_HID,), **HIDDEN)
    fc2 = Dense(weights=w2)
    out = LIF(shape=(N_OUT,), **OUTPUT)
    ext_out = Extractor(shape=(N_OUT,), buffer_size=steps)
    src.s_out.connect(fc1.s_in)
    fc1.a_out.connect(hidden.a_in)
    hidden.s_out.connect(fc2.s_in)
    fc2.a_out.connect(out.a_in)
    out.s_out.connect(ext_out.in_port)
    ext_hidden = None
    if with_hidden:
        ext_hidden = Extractor(shape=(N_HID,), buffer_size=steps)
        hidden.s_out.connect(ext_hidden.in_port)
    cfg = Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map={
        RingBuffer: PySendModelFixed, Dense: PyDenseModelBitAcc, LIF: PyLifModelBitAcc,
        Extractor: PyLoihiExtractorModel})
    guard = _RunGuard(out, children_before={c.pid for c in multiprocessing.active_children()})
    stamps: dict[str, float] = {}

    def go() -> dict:
        t0 = time.perf_counter()
        exe = out.compile(cfg)
        t1 = time.perf_counter()
        out.create_runtime(executable=exe)
        guard.remember_shm()
        t2 = time.perf_counter()
        stamps.update(compile_s=t1 - t0, startup_s=t2 - t1)
        out.run(condition=RunSteps(num_steps=steps, blocking=True))
        stamps["run_s"] = time.perf_counter() - t2
        got = {"out": np.array([ext_out.receive() for _ in range(steps)])}
        if ext_hidden is not None:
            got["hidden"] = np.array([ext_hidden.receive() for _ in range(steps)])
        t3 = time.perf_counter()
        out.stop()
        stamps["stop_s"] = time.perf_counter() - t3
        return got

    try:
        call = _call_with_timeout(go, timeout_s, "benchmark")
        if not call.done:
            raise LavaRunError(f"the Lava benchmark run did not finish within {timeout_s} s")
        if call.error is not None:
            raise LavaRunError(f"the Lava benchmark run failed: {call.error!r}") from call.error
    finally:
        guard.kill_everything()
    return {**stamps, **{k: v.astype(np.uint8) for k, v in call.value.items()}}


def lava_aligned(spikes: np.ndarray, hops: int) -> np.ndarray:
    """Lava's per-step rows (step 1 first) -> IR steps 0..T-1 of a layer `hops` Dense deep."""
    return spikes[hops:hops + T]


def check_lava_equals_emulator(g, w1, w2, x1: np.ndarray) -> dict:
    em = nmcompile.run(g, x1[:, None, :], record=True)
    lv = lava_once(w1, w2, x1, with_hidden=True)
    hidden_eq = np.array_equal(lava_aligned(lv["hidden"], 1), em.spikes["hidden"][:, 0])
    out_eq = np.array_equal(lava_aligned(lv["out"], 2), em.output()[:, 0])
    assert hidden_eq and out_eq, "Lava's spikes differ from the emulator's"
    assert not lv["out"][:2].any() and not lv["hidden"][:1].any(), "latency is not as stated"
    return {"measure": "check_emulator_equals_lava", "batch": 1, "hidden_spikes_equal": hidden_eq,
            "output_spikes_equal": out_eq, "hidden_spikes": int(em.spikes["hidden"].sum()),
            "output_spikes": int(em.output().sum())}


def bench_lava(g, w1, w2, x: np.ndarray, samples: int, repeats: int, ev_per_sample) -> dict:
    """`samples` samples of x (T, B, 512) one after another, `repeats` times each for batch 1."""
    runs = []
    for b in range(samples):
        for _ in range(repeats if samples == 1 else 1):
            lv = lava_once(w1, w2, x[:, b])
            want = nmcompile.run(g, x[:, b:b + 1]).output()[:, 0]
            assert np.array_equal(lava_aligned(lv["out"], 2), want)
            runs.append({k: lv[k] for k in ("compile_s", "startup_s", "run_s", "stop_s")})
    per = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    steps = T + LAVA_HOPS
    if samples == 1:
        run_t = per["run_s"] * T / steps
        n_events = ev_per_sample[0]
        rec = {"measure": "lava", "batch": 1, "T": T, "lava_steps": steps,
               "run_s": per["run_s"], "run_s_all": [r["run_s"] for r in runs],
               "ms_per_step": 1e3 * per["run_s"] / steps, "run_s_for_T": run_t,
               "compile_s": per["compile_s"], "startup_s": per["startup_s"],
               "stop_s": per["stop_s"], "synaptic_events": n_events,
               "events_per_s": n_events / run_t}
    else:
        total = sum(r["run_s"] for r in runs) * T / steps
        n_events = sum(ev_per_sample[:samples])
        rec = {"measure": "lava", "batch": x.shape[1], "samples_run": samples,
               "method": "samples one after another, run() times summed, scaled to the batch",
               "T": T, "run_s_for_T": total * x.shape[1] / samples,
               "ms_per_step_median": 1e3 * per["run_s"] / steps,
               "compile_s_median": per["compile_s"], "startup_s_median": per["startup_s"],
               "synaptic_events": sum(ev_per_sample), "events_per_s": n_events / total}
    return rec


# ---------------------------------------------------------------------------------------------
# PyTorch (float32), snnTorch-style
# ---------------------------------------------------------------------------------------------


def float_params(w1, w2):
    """The float counterpart: u and v in units of the integer state (so W * 64, vth * 64)."""
    def layer(p):
        return {"alpha": (4096 - p["du"] - 1) / 4096, "beta": (4096 - p["dv"]) / 4096,
                "thr": float(p["vth"] * 64)}
    fc1 = torch.nn.Linear(N_IN, N_HID, bias=False)
    fc2 = torch.nn.Linear(N_HID, N_OUT, bias=False)
    with torch.no_grad():
        fc1.weight.copy_(torch.as_tensor(w1 * 64, dtype=torch.float32))
        fc2.weight.copy_(torch.as_tensor(w2 * 64, dtype=torch.float32))
    return fc1, fc2, layer(HIDDEN), layer(OUTPUT)


@torch.no_grad()
def torch_loop(x: torch.Tensor, fc1, fc2, p1, p2) -> tuple[torch.Tensor, torch.Tensor]:
    """A plain snnTorch-style loop: Linear, then current, voltage, threshold, reset."""
    B = x.shape[1]
    syn1 = torch.zeros(B, N_HID)
    mem1 = torch.zeros(B, N_HID)
    syn2 = torch.zeros(B, N_OUT)
    mem2 = torch.zeros(B, N_OUT)
    hidden, outs = [], []
    for t in range(x.shape[0]):
        syn1 = p1["alpha"] * syn1 + fc1(x[t])
        mem1 = p1["beta"] * mem1 + syn1
        spk1 = (mem1 > p1["thr"]).float()
        mem1 = mem1 * (1.0 - spk1)
        syn2 = p2["alpha"] * syn2 + fc2(spk1)
        mem2 = p2["beta"] * mem2 + syn2
        spk2 = (mem2 > p2["thr"]).float()
        mem2 = mem2 * (1.0 - spk2)
        hidden.append(spk1)
        outs.append(spk2)
    return torch.stack(outs), torch.stack(hidden)


@torch.no_grad()
def snntorch_loop(x: torch.Tensor, fc1, fc2, p1, p2):
    """The same with snnTorch's own `Synaptic` neurons (reset to zero)."""
    import snntorch as snn

    lif1 = snn.Synaptic(alpha=p1["alpha"], beta=p1["beta"], threshold=p1["thr"],
                        reset_mechanism="zero")
    lif2 = snn.Synaptic(alpha=p2["alpha"], beta=p2["beta"], threshold=p2["thr"],
                        reset_mechanism="zero")
    syn1, mem1 = lif1.init_synaptic()
    syn2, mem2 = lif2.init_synaptic()
    hidden, outs = [], []
    for t in range(x.shape[0]):
        spk1, syn1, mem1 = lif1(fc1(x[t]), syn1, mem1)
        spk2, syn2, mem2 = lif2(fc2(spk1), syn2, mem2)
        hidden.append(spk1)
        outs.append(spk2)
    return torch.stack(outs), torch.stack(hidden)


def bench_torch(fn, name: str, x: np.ndarray, params, repeats: int) -> dict:
    xt = torch.as_tensor(x, dtype=torch.float32)
    fn(xt, *params)  # warm-up
    med, times, (out, hidden) = timed(lambda: fn(xt, *params), repeats)
    n_events = events(x, hidden.numpy())
    return {"measure": name, "batch": x.shape[1], "T": T, "wall_s": med, "wall_s_all": times,
            "torch_threads": torch.get_num_threads(), "synaptic_events": n_events,
            "events_per_s": n_events / med, "hidden_rate": float(hidden.mean()),
            "output_rate": float(out.mean())}


# ---------------------------------------------------------------------------------------------
# Where the emulator's time goes
# ---------------------------------------------------------------------------------------------


def profile_emulator(g: Graph, x: np.ndarray) -> dict:
    """cProfile of one run: the functions that take the most time themselves."""
    prof = cProfile.Profile()
    prof.enable()
    nmcompile.run(g, x)
    prof.disable()
    text = io.StringIO()
    pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(8)
    rows = [" ".join(line.split()) for line in text.getvalue().splitlines()
            if line.strip()[:1].isdigit()]
    return {"measure": "emulator_profile", "batch": x.shape[1],
            "top_tottime (ncalls tottime percall cumtime percall where)": rows[:8]}


def stage_times(g: Graph, x: np.ndarray, repeats: int) -> dict:
    """The emulator's stages re-done by hand with its own functions, each timed (median)."""
    from backends.emulator.neuron import NeuronLayer
    from backends.emulator.projections import projection

    B = x.shape[1]
    laps: dict[str, list[float]] = {}

    def lap(name: str, fn, *args):
        t0 = time.perf_counter()
        value = fn(*args)
        laps.setdefault(name, []).append(time.perf_counter() - t0)
        return value

    def prepare():
        g.validate()
        return projection(g["fc1"], (N_IN,), 1), projection(g["fc2"], (N_HID,), 1)

    def neurons(name, n, a):
        return NeuronLayer(g[name], B, n, (n,)).step(a.reshape(T, -1), False)[0]

    for _ in range(repeats):
        fc1, fc2 = lap("validate + prepare projections", prepare)
        xr = x.reshape(T * B, N_IN)
        a1 = lap("fc1 projection + shift", fc1[0], xr)
        lap("fc1 event count", fc1[1], xr)
        s1 = lap("hidden neuron kernel", neurons, "hidden", N_HID, a1).reshape(T * B, N_HID)
        a2 = lap("fc2 projection + shift", fc2[0], s1)
        lap("fc2 event count", fc2[1], s1)
        lap("output neuron kernel", neurons, "out_lif", N_OUT, a2)
        lap("nmcompile.run (whole)", nmcompile.run, g, x)
    med = {k: round(statistics.median(v), 5) for k, v in laps.items()}
    best = {k: round(min(v), 5) for k, v in laps.items()}
    return {"measure": "emulator_stages", "batch": B, "seconds_median": med, "seconds_min": best}


# ---------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=7, help="timings per batch-64 measurement")
    ap.add_argument("--repeats-b1", type=int, default=21,
                    help="timings per batch-1 measurement (they take milliseconds)")
    ap.add_argument("--lava-repeats", type=int, default=5, help="Lava batch-1 runs")
    ap.add_argument("--lava-batch64", type=int, default=64, metavar="N",
                    help="samples of the batch of 64 to run through Lava (0 skips)")
    ap.add_argument("--profile", action="store_true", help="also profile the emulator")
    args = ap.parse_args()

    load_before = os.getloadavg()[0]
    w1, w2 = weights()
    g = qgraph(w1, w2)
    x64 = poisson(64, seed=1)
    x1 = x64[:, :1]
    results: dict[str, dict] = {}

    results["check"] = check_lava_equals_emulator(g, w1, w2, x1[:, 0])
    emit(results["check"])
    reps = {1: args.repeats_b1, 64: args.repeats}
    for name, x in (("emulator_b1", x1), ("emulator_b64", x64)):
        results[name] = bench_emulator(g, x, reps[x.shape[1]])
        emit(results[name])
    per_sample = [sum(nmcompile.run(g, x64[:, b:b + 1]).counters["synaptic_events"].values())
                  for b in range(64)]
    results["lava_b1"] = bench_lava(g, w1, w2, x1, 1, args.lava_repeats, per_sample)
    emit(results["lava_b1"])
    if args.lava_batch64:
        results["lava_b64"] = bench_lava(g, w1, w2, x64, args.lava_batch64, 1, per_sample)
        emit(results["lava_b64"])
    params = float_params(w1, w2)
    for b, x in ((64, x64), (1, x1)):
        for fn, name in ((torch_loop, "torch_loop"), (snntorch_loop, "snntorch_synaptic")):
            results[f"{name}_b{b}"] = bench_torch(fn, name, x, params, reps[b])
            emit(results[f"{name}_b{b}"])
    if args.profile:
        for x in (x1, x64):
            emit(stage_times(g, x, reps[x.shape[1]]))
            emit(profile_emulator(g, x))

    def best_torch(b: int) -> float:
        return min(results[f"torch_loop_b{b}"]["wall_s"],
                   results[f"snntorch_synaptic_b{b}"]["wall_s"])

    emu1, emu64 = results["emulator_b1"]["wall_s"], results["emulator_b64"]["wall_s"]
    summary = {
        "benchmark": "emulator_speed",
        "date": datetime.date.today().isoformat(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1min": {"start": round(load_before, 2),
                              "end": round(os.getloadavg()[0], 2)},
        "network": f"{N_IN} Poisson(p={P_IN}) -> Dense -> {N_HID} LIF -> Dense -> {N_OUT} LIF, "
                   f"T={T}",
        "emulator_equals_lava_batch1": bool(results["check"]["output_spikes_equal"]),
        "wall_s": {"emulator_b1": emu1, "emulator_b64": emu64,
                   "lava_run_b1": results["lava_b1"]["run_s_for_T"],
                   "lava_compile_plus_startup_b1": results["lava_b1"]["compile_s"]
                   + results["lava_b1"]["startup_s"],
                   "lava_run_b64": results.get("lava_b64", {}).get("run_s_for_T"),
                   "torch_loop_b1": results["torch_loop_b1"]["wall_s"],
                   "torch_loop_b64": results["torch_loop_b64"]["wall_s"],
                   "snntorch_b64": results["snntorch_synaptic_b64"]["wall_s"]},
        "events_per_s": {"emulator_b1": results["emulator_b1"]["events_per_s"],
                         "emulator_b64": results["emulator_b64"]["events_per_s"],
                         "lava_b1": results["lava_b1"]["events_per_s"],
                         "torch_loop_b64": results["torch_loop_b64"]["events_per_s"]},
        "emulator_vs_lava_batch1": results["lava_b1"]["run_s_for_T"] / emu1,
        "emulator_vs_lava_batch1_with_compile_and_startup": (
            results["lava_b1"]["run_s_for_T"] + results["lava_b1"]["compile_s"]
            + results["lava_b1"]["startup_s"]) / emu1,
        "emulator_vs_lava_batch64": (results["lava_b64"]["run_s_for_T"] / emu64
                                     if "lava_b64" in results else None),
        "emulator_vs_torch_batch64": best_torch(64) / emu64,
        "emulator_vs_torch_batch1": best_torch(1) / emu1,
        "targets": TARGETS,
    }
    summary["targets_met"] = {k: summary[k] >= v for k, v in TARGETS.items()}
    emit(summary)


if __name__ == "__main__":
    main()
