"""The main job, end to end on scikit-learn's digits: a pipeline of named stages.

Each stage is a function of the shared `Demo` state; later stages (quantise, run per backend,
verify, estimate) are added to `STAGES` without touching the others.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from . import datasets
from . import nn as snn
from .api import quantize, run
from .frontends.pytorch import from_torch
from .ir import Graph, save
from .outputs import claim_folder, save_figure, write_text
from .progress import bar

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DATASET = {"name": "sklearn-digits", "split": "test", "test_size": 0.2, "seed": 0}
ENCODING = {"name": "poisson", "num_steps": 25, "rate": 1.0, "seed": 1}


@dataclass
class Demo:
    out_dir: Path
    seed: int = 0
    epochs: int = 12
    hidden: int = 128
    log: Callable[[str], None] = print
    model: nn.Module | None = None
    graph: Graph | None = None
    qgraph: Graph | None = None
    test_spikes: np.ndarray | None = None
    test_labels: np.ndarray | None = None
    summary: dict[str, Any] = field(default_factory=dict)


def build_model(hidden: int) -> snn.TimeLoop:
    """64 inputs -> LIF hidden layer -> 10 LIF outputs, read out by spike count."""
    return snn.sequential(nn.Linear(64, hidden), snn.LIF(beta=0.9, threshold=1.0),
                          nn.Linear(hidden, 10), snn.LIF(beta=0.9, threshold=1.0))


def stage_train(d: Demo) -> None:
    torch.manual_seed(d.seed)
    x_tr, y_tr, _, _ = datasets.digits(DATASET["test_size"], DATASET["seed"])
    d.model = build_model(d.hidden)
    opt = torch.optim.Adam(d.model.parameters(), lr=2e-3)
    x_tr, y_tr = torch.as_tensor(x_tr), torch.as_tensor(y_tr)
    gen = torch.Generator().manual_seed(d.seed + 100)
    epochs = bar(range(d.epochs), "train", unit="epoch", leave=True)
    history = []
    for _ in epochs:
        d.model.train()
        perm = torch.randperm(len(x_tr), generator=gen)
        correct = 0
        for k in range(0, len(x_tr), 32):
            idx = perm[k:k + 32]
            spikes = snn.encode.poisson(x_tr[idx], ENCODING["num_steps"], ENCODING["rate"],
                                        generator=gen)
            out = d.model(spikes)
            loss = snn.loss.ce_count(out, y_tr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            correct += int((snn.loss.predict_count(out) == y_tr[idx]).sum())
        history.append(correct / len(x_tr))
        if hasattr(epochs, "set_postfix"):  # a tqdm bar (on a terminal, without --quiet)
            epochs.set_postfix(loss=f"{loss.item():.3f}", train_acc=f"{history[-1]:.3f}")
    d.model.eval()
    d.summary["train_accuracy"] = history


def stage_export(d: Demo) -> None:
    meta = {"dataset": DATASET, "encoding": ENCODING, "source": "nmcompile demo",
            "readout": "spike count"}
    d.test_spikes, d.test_labels = datasets.test_inputs(meta)
    d.graph = from_torch(d.model, torch.zeros(1, 1, 64), dt=1e-3, metadata=meta)
    path = save(d.graph, d.out_dir / "digits.nmc")
    d.log(f"wrote {path}")


def _accuracy(spikes: np.ndarray, labels: np.ndarray) -> float:
    pred = snn.loss.predict_count(torch.as_tensor(spikes.astype(np.float32)))
    return float((pred.numpy() == labels).mean())


def stage_interpret(d: Demo) -> None:
    with torch.no_grad():
        torch_out = d.model(torch.as_tensor(d.test_spikes, dtype=torch.float32)).numpy()
    ir_out = run(d.graph, d.test_spikes).output()
    d.summary["test_accuracy"] = {"pytorch": _accuracy(torch_out, d.test_labels),
                                  "ir_float": _accuracy(ir_out, d.test_labels)}
    d.summary["float32_vs_ir_equal_bins"] = float((torch_out.astype(np.uint8) == ir_out).mean())


def digits_figure(d: Demo) -> Figure:
    """The training curve and, for one test digit, the spike raster of every layer on the IR
    float interpreter beside the quantised model's on the emulator (bins where they differ
    marked): needs the quantised graph, so the plot stage runs after quantise."""
    from matplotlib.ticker import MaxNLocator

    from .plots import new_figure, raster_grid

    x = d.test_spikes[:, :1]
    runs = {"IR float interpreter": run(d.graph, x, record=True),
            "quantised (emulator)": run(d.qgraph, x, backend="emulator", record=True)}
    columns = {title: {"input": x[:, 0], **{k: v[:, 0] for k, v in r.spikes.items()}}
               for title, r in runs.items()}
    fig = new_figure(14, 4.8)
    outer = fig.add_gridspec(1, 2, width_ratios=[1, 3.2])
    ax = fig.add_subplot(outer[0])
    acc = d.summary["train_accuracy"]
    ax.plot(range(1, len(acc) + 1), acc, marker="o")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title("training accuracy", fontsize=9)
    ax.set_xlabel("epoch", fontsize=8)
    ax.set_ylim(0, 1)
    ax.tick_params(labelsize=7)
    raster_grid(fig, columns, cell=outer[1], against="IR float interpreter")
    test = d.summary.get("test_accuracy", {})
    scores = "" if not {"ir_float", "emulator"} <= set(test) else (
        f" (test accuracy: float {test['ir_float']:.1%}, quantised {test['emulator']:.1%})")
    fig.suptitle(f"digit {d.test_labels[0]}: float vs quantised spikes, one row per layer"
                 + scores, fontsize=10)
    return fig


def stage_plot(d: Demo) -> None:
    """DIR/digits.png: `digits_figure`."""
    save_figure(digits_figure(d), d.out_dir / "digits.png")
    d.log(f"wrote {d.out_dir / 'digits.png'}")


def stage_quantize(d: Demo) -> None:
    """Quantise for Loihi 2, calibrated on 128 encoded training digits; DIR/digits_q.nmc."""
    x_tr = datasets.digits(DATASET["test_size"], DATASET["seed"])[0]
    calibration = datasets.encode_spikes(x_tr[:128], {**ENCODING, "seed": ENCODING["seed"] + 1})
    d.qgraph, report = quantize(d.graph, "loihi2", calibration, report=True)
    d.log(report.table())
    d.log(f"wrote {save(d.qgraph, d.out_dir / 'digits_q.nmc')}")


def stage_emulate(d: Demo) -> None:
    """Run the quantised model on the emulator (the reference fixed-point core)."""
    result = run(d.qgraph, d.test_spikes, backend="emulator")
    d.summary["test_accuracy"]["emulator"] = _accuracy(result.output(), d.test_labels)
    d.summary["unsafe_updates"] = sum(result.counters["unsafe_updates"].values())


def stage_lava(d: Demo, samples: int = 64) -> None:
    """Run the quantised model on Lava 0.10 (fixed_pt, in a worker process) and compare every
    spike of every layer with the emulator's."""
    from .verification import verify

    n = min(samples, d.test_spikes.shape[1])
    report = verify(d.qgraph, d.test_spikes[:, :n], ["emulator", "lava"],
                    labels=d.test_labels[:n])
    d.summary["lava"] = {"samples": n, "equal_to_emulator": report.equal,
                         "accuracy": report.accuracy.get("quantized")}
    d.log(f"Lava on {n} test digits: " + ("every spike of every layer equals the emulator's"
                                          if report.equal else f"DIFFERS: {report.mismatches[0]}"))


def stage_verilog(d: Demo, samples: int = 20) -> None:
    """Write the Verilog project (DIR/verilog), simulate the core with Icarus Verilog and
    compare every spike of every layer with the emulator's and Lava's (docs/hdl.md)."""
    from .api import compile as compile_graph
    from .verification import verify

    compile_graph(d.qgraph, d.out_dir / "verilog", "verilog")
    n = min(samples, d.test_spikes.shape[1])
    report = verify(d.qgraph, d.test_spikes[:, :n], ["emulator", "lava", "verilog"],
                    labels=d.test_labels[:n])
    cycles = report.backends["verilog"]["counters"]["cycles"]
    d.summary["verilog"] = {"samples": n, "equal_to_emulator_and_lava": report.equal,
                            "cycles_per_step_mean": round(cycles["total"] / cycles["steps"], 1),
                            "cycles_per_step_max": cycles["per_step_max"]}
    d.log(f"Verilog core (Icarus) on {n} test digits: "
          + ("every spike of every layer equals the emulator's and Lava's"
             if report.equal else f"DIFFERS: {report.mismatches[0]}")
          + f"; {cycles['total'] / cycles['steps']:.0f} clock cycles per step; project in "
          f"{d.out_dir / 'verilog'}")


def stage_estimate(d: Demo) -> None:
    """Synaptic ops, neuron updates, spikes and energy per inference of the quantised model on
    every test digit (docs/estimation.md)."""
    from .analysis import estimate

    est = estimate(d.qgraph, d.test_spikes, "loihi,truenorth,spinnaker2,cpu",
                   model="digits_q.nmc")
    d.log(est.table())
    report = est.to_json()
    d.summary["estimate"] = {"per_inference": report["per_inference"],
                             "energy_j": report["energy_j"], "baseline_j": report["baseline_j"]}


STAGES: list[tuple[str, Callable[[Demo], None]]] = [
    ("train", stage_train),
    ("export", stage_export),
    ("interpret", stage_interpret),
    ("quantize", stage_quantize),
    ("emulate", stage_emulate),
    ("lava", stage_lava),
    ("verilog", stage_verilog),
    ("plot", stage_plot),
    ("estimate", stage_estimate),
]


#: The files by which a demo folder written before the `.nmcompile-artefact` marker existed
#: is recognised (the digits demo's, the STDP demo's).
LEGACY_FILES = (("digits.nmc", "digits_q.nmc", "summary.json"),
                ("stdp.nmc", "stdp_q.nmc", "stdp_summary.json"))


def run_stages(state: Any, stages: list[tuple[str, Callable[[Any], None]]], *,
               force: bool = False) -> None:
    """Run each stage on `state` in order and record its wall time in
    `state.summary["seconds"]`. `state.out_dir` is created, or must be empty or a demo's
    folder (`force` writes into any folder; `nmcompile.outputs.claim_folder`)."""
    claim_folder(state.out_dir, "demo", force=force, legacy=LEGACY_FILES)
    for name, stage in stages:
        start = time.perf_counter()
        stage(state)
        state.summary.setdefault("seconds", {})[name] = round(time.perf_counter() - start, 2)


def run_demo(out_dir: str | Path = "nmcompile-demo", *, seed: int = 0, epochs: int = 12,
             force: bool = False, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every stage in order; write DIR/digits.nmc and DIR/summary.json; return the summary."""
    d = Demo(out_dir=Path(out_dir), seed=seed, epochs=epochs, log=log)
    run_stages(d, STAGES, force=force)
    acc = d.summary["test_accuracy"]
    log(f"test accuracy on {len(d.test_labels)} digits, same encoded spikes: "
        f"PyTorch {acc['pytorch']:.1%}, IR float interpreter {acc['ir_float']:.1%}, "
        f"quantised on the emulator {acc['emulator']:.1%}")
    write_text(d.out_dir / "summary.json", json.dumps(d.summary, indent=1))
    return d.summary
