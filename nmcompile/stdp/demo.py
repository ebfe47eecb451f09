"""`nmcompile demo --stdp`: STDP on scikit-learn's digits, end to end, as named stages.

Unsupervised training (event-based STDP, adaptive thresholds, E/I lateral inhibition), label
assignment, export to the float IR (`from_stdp`, checked spike for spike against the trained
network on every test digit), quantisation for Loihi 2, the emulator, and Lava (and Verilog
when that backend is registered) checked spike for spike against the emulator. Writes
DIR/stdp.nmc, DIR/stdp_q.nmc, DIR/stdp_fields.png and DIR/stdp_summary.json.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import datasets
from ..api import quantize, run
from ..demo import run_stages
from ..errors import LimitError, NmcompileError, UnsupportedError
from ..frontends.stdp import from_stdp
from ..ir import Graph, save
from ..outputs import write_text
from .inhibition import Inhibition
from .layers import AdaptiveLIF
from .network import STDPNetwork
from .patches import Patches, patch_indices
from .rules import EventSTDP, PairSTDP
from .training import assign_labels, class_scores, encode_data, responses, train

DATASET = {"name": "sklearn-digits", "split": "test", "test_size": 0.2, "seed": 0}
NUM_STEPS = 100


def encoding(num_steps: int = NUM_STEPS, seed: int = 1) -> dict[str, Any]:
    """The Poisson encoding of the test digits, as graph metadata names it."""
    return {"name": "poisson", "num_steps": num_steps, "rate": 1.0, "seed": seed}


def digits_network(n_neurons: int = 200, *, inhibition: bool = True, rule: str = "event",
                   seed: int = 0, num_steps: int = NUM_STEPS,
                   patches: Patches | None = None) -> STDPNetwork:
    """The network tuned for 8x8 digits (docs/stdp.md explains the choices).

    Weights sum to 6.4 per neuron (a mean of 0.1), so a neuron whose weights match a digit
    gets about 4.5 units per step at rate 1; the threshold 80 (plus theta) then takes ~20-40
    nearly leak-free steps (beta 0.99) to reach: drive differences of a few percent become
    spike-time differences of several steps, more than the 2-step E -> I -> E loop, so the
    first neuron to fire silences the others (w_ie = 120 > threshold). With `patches`,
    `n_neurons` per patch, and weight sum, thresholds and inhibition scale with the patch's
    share of the image."""
    if rule == "event":
        learning = EventSTDP(a_plus=0.002, a_minus=0.002, window=3)
    elif rule == "pair":
        learning = PairSTDP(a_plus=0.002, a_minus=0.002, tau_plus=5.0, tau_minus=5.0)
    else:
        raise NmcompileError(f"unknown STDP rule {rule!r}: use 'event' or 'pair'")
    f = 1.0 if patches is None else patch_indices((8, 8), patches.size,
                                                  patches.stride).shape[1] / 64
    return STDPNetwork(
        (8, 8), n_neurons,
        neuron=AdaptiveLIF(beta=0.99, threshold=80.0 * f, rho=0.99999, adapt_step=1.5 * f),
        rule=learning,
        inhibition=Inhibition(w_ie=120.0 * f, w_ei=1.0, threshold=0.5, delay_ei=1,
                              delay_ie=1) if inhibition else None,
        patches=patches, normalize=6.4 * f, num_steps=num_steps, rate=1.0, init=1.0, seed=seed)


@dataclass
class StdpDemo:
    out_dir: Path
    neurons: int = 200
    epochs: int = 4
    samples: int = 32
    seed: int = 0
    frozen: bool = True
    rule: str = "event"
    log: Callable[[str], None] = print
    net: STDPNetwork | None = None
    graph: Graph | None = None
    qgraph: Graph | None = None
    test_spikes: np.ndarray | None = None
    test_labels: np.ndarray | None = None
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def mode(self) -> str:
        return "frozen" if self.frozen else "adaptive"


def stage_train(d: StdpDemo) -> None:
    x_tr = datasets.digits(DATASET["test_size"], DATASET["seed"])[0]
    d.net = digits_network(d.neurons, rule=d.rule, seed=d.seed)
    info = train(d.net, x_tr, epochs=d.epochs, batch_size=32, seed=d.seed + 100)
    d.summary["train"] = {"neurons": d.net.n_excitatory, "epochs": d.epochs,
                          "rule": d.rule, "seconds": round(info["seconds"], 2),
                          "spikes_per_sample": round(info["spikes_per_sample"], 2)}
    d.log(f"trained {d.net.n_excitatory} excitatory neurons ({d.rule} STDP) for {d.epochs} "
          f"epoch(s) in {info['seconds']:.1f} s")


def stage_label(d: StdpDemo) -> None:
    """Each neuron's class: its strongest mean response on the (re-encoded) training set."""
    x_tr, y_tr, _, _ = datasets.digits(DATASET["test_size"], DATASET["seed"])
    counts = responses(d.net, encode_data(d.net, x_tr, seed=d.seed + 2), d.mode)
    assignments = assign_labels(d.net, counts, y_tr, 10)
    d.summary["neurons_per_class"] = np.bincount(assignments[assignments >= 0],
                                                 minlength=10).tolist()
    d.summary["silent_neurons"] = int((assignments < 0).sum())


def stage_export(d: StdpDemo) -> None:
    meta = {"dataset": DATASET, "encoding": encoding(d.net.num_steps),
            "description": "nmcompile demo --stdp"}
    d.graph = from_stdp(d.net, d.frozen, metadata=meta)
    d.test_spikes, d.test_labels = datasets.test_inputs(meta)
    d.log(f"wrote {save(d.graph, d.out_dir / 'stdp.nmc')}")


def stage_interpret(d: StdpDemo) -> None:
    """The IR float interpreter against the trained network, every test digit."""
    result = run(d.graph, d.test_spikes, record=True)
    parts = [d.net.run(d.test_spikes[:, k:k + 256], d.mode)
             for k in range(0, d.test_spikes.shape[1], 256)]
    layers = {name: torch.cat([p[name] for p in parts], dim=1) for name in parts[0]}
    net_pred = class_scores(d.net, layers["exc"]).argmax(axis=1)
    d.summary["ir_equals_network"] = all(
        np.array_equal(result.spikes[name], spikes.numpy().astype(np.uint8))
        for name, spikes in layers.items())
    ir_pred = result.output().max(axis=0).argmax(axis=1)
    d.summary["test_accuracy"] = {"network": float((net_pred == d.test_labels).mean()),
                                  "ir_float": float((ir_pred == d.test_labels).mean())}
    if not d.summary["ir_equals_network"]:
        raise NmcompileError("the IR float interpreter differs from the trained STDP network")


def stage_quantize(d: StdpDemo) -> None:
    """Loihi 2 fixed point, calibrated on 128 encoded training digits; DIR/stdp_q.nmc."""
    x_tr = datasets.digits(DATASET["test_size"], DATASET["seed"])[0]
    calibration = datasets.encode_spikes(x_tr[:128], encoding(d.net.num_steps, seed=3))
    d.qgraph, report = quantize(d.graph, "loihi2", calibration, report=True)
    d.log(report.table())
    d.log(f"wrote {save(d.qgraph, d.out_dir / 'stdp_q.nmc')}")


def stage_emulate(d: StdpDemo) -> None:
    result = run(d.qgraph, d.test_spikes, backend="emulator")
    pred = result.output().max(axis=0).argmax(axis=1)
    d.summary["test_accuracy"]["emulator"] = float((pred == d.test_labels).mean())
    d.summary["unsafe_updates"] = sum(result.counters["unsafe_updates"].values())


def targets() -> list[str]:
    """The fixed-point backends to compare: the emulator, Lava, and Verilog if registered."""
    from ..registry import available

    return ["emulator", "lava"] + (["verilog"] if "verilog" in available() else [])


#: Per-backend run options: Verilator simulates the Verilog core faster than Icarus (20 test
#: digits through the 200-neuron network: 13 s against 168 s).
OPTIONS: dict[str, dict[str, Any]] = {"verilog": {"simulator": "verilator"}}


def compare_backends(qgraph: Graph, spikes: np.ndarray, backends: list[str],
                     optional: tuple[str, ...] = ("verilog",),
                     placed: dict[str, Graph] | None = None) -> dict[str, Any]:
    """Run every backend (the first is the reference) and compare every spike of every layer
    and output; `placed[backend]` is the graph that backend runs instead (the Verilog
    target's mesh). A backend in `optional` that refuses the graph (a `LimitError` or
    `UnsupportedError`) is skipped, with its reason.
    Returns {'equal', 'compared', 'skipped': {name: reason}, 'mismatches'}."""
    from ..verification import compare

    results, skipped = {}, {}
    for b in backends:
        try:
            g = (placed or {}).get(b, qgraph)
            results[b] = run(g, spikes, backend=b, record=True, **OPTIONS.get(b, {}))
        except (LimitError, UnsupportedError) as exc:
            if b not in optional:
                raise
            skipped[b] = str(exc)
    ref, compared = backends[0], list(results)
    found = [str(m) for b in compared[1:] if (m := compare(results[ref], results[b], ref, b))]
    return {"equal": not found, "compared": compared, "skipped": skipped, "mismatches": found}


def stage_verify(d: StdpDemo) -> None:
    """Lava (and Verilog, on a 2 x 2 mesh of its cores: the graph mapped with
    `nmcompile.map(q, "fpga-mesh", cores=4, objective="latency")`) against the emulator,
    every spike of every layer."""
    from ..mapping import map_graph

    n = min(d.samples, d.test_spikes.shape[1])
    x = d.test_spikes[:, :n]
    mesh = map_graph(d.qgraph, "fpga-mesh", cores=4, objective="latency", inputs=x)
    check = compare_backends(d.qgraph, x, targets(), placed={"verilog": mesh})
    d.summary["verify"] = {"samples": n, "verilog_cores": mesh.placement.n_cores, **check}
    for name, reason in check["skipped"].items():
        d.log(f"{name} skipped: {reason}")
    d.log(f"{' and '.join(check['compared'][1:])} (verilog on {mesh.placement.n_cores} cores of "
          f"a 2 x 2 mesh) on {n} test digits: "
          + ("every spike of every layer equals the emulator's" if check["equal"]
             else f"DIFFER: {check['mismatches'][0]}"))


def stage_plot(d: StdpDemo) -> None:
    from .plots import plot_fields

    path = plot_fields([(f"{d.net.n_excitatory} neurons, {d.rule} STDP", d.net)],
                       d.out_dir / "stdp_fields.png")
    d.log(f"wrote {path}")


STAGES: list[tuple[str, Callable[[StdpDemo], None]]] = [
    ("train", stage_train),
    ("label", stage_label),
    ("export", stage_export),
    ("interpret", stage_interpret),
    ("quantize", stage_quantize),
    ("emulate", stage_emulate),
    ("verify", stage_verify),
    ("plot", stage_plot),
]


def run_stdp_demo(out_dir: str | Path = "nmcompile-demo", *, neurons: int = 200,
                  epochs: int = 4, samples: int = 32, seed: int = 0, frozen: bool = True,
                  rule: str = "event", force: bool = False,
                  log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every stage; write DIR/stdp.nmc, DIR/stdp_q.nmc, DIR/stdp_fields.png and
    DIR/stdp_summary.json; return the summary."""
    if neurons < 1 or epochs < 0 or samples < 1:
        raise NmcompileError("demo --stdp: need --neurons >= 1, --epochs >= 0, --samples >= 1")
    d = StdpDemo(out_dir=Path(out_dir), neurons=neurons, epochs=epochs, samples=samples,
                 seed=seed, frozen=frozen, rule=rule, log=log)
    run_stages(d, STAGES, force=force)
    acc = d.summary["test_accuracy"]
    log(f"test accuracy on {len(d.test_labels)} digits ({d.mode} thresholds): trained network "
        f"{acc['network']:.1%}, IR float interpreter {acc['ir_float']:.1%} (spike for spike "
        f"equal), quantised on the emulator {acc['emulator']:.1%}")
    write_text(d.out_dir / "stdp_summary.json", json.dumps(d.summary, indent=1))
    return d.summary
