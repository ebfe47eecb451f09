"""Post-training quantisation against quantisation-aware fine-tuning on the digits, as JSON.

    .venv/bin/python benchmarks/finetune_digits.py [--bits 8,6,5,4,3,2] [--epochs 5]

The float model is the demo's (`nmcompile.demo`: 64 -> LIF(128) -> LIF(10), 12 epochs,
Poisson spikes over 25 steps, spike-count readout). Per weight width b: PTQ quantises it with
`weight_bits=b`, calibrated on the first 128 training digits (`datasets.train_inputs`), and
runs the test split on the emulator (the fixed-point reference core); QAT fine-tunes it
(`nmcompile.finetune`, training digits freshly encoded each epoch), quantises the result the
same way and runs the same test spikes. `recovered` is (QAT - PTQ) / (float - PTQ).

The acceptance point (issue 17, point 2): at the widest width where PTQ loses at least 3
points against the float model, and at 2 bits, QAT recovers at least half of the loss.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

import nmcompile
from nmcompile import datasets, demo
from nmcompile import nn as snn
from nmcompile.quantization import PROFILES
from nmcompile.stdp.network import one_thread


class PoissonBatches:
    """Training digits as (spikes (T, B, 64), labels) batches, shuffled and Poisson-encoded
    afresh on every pass (as the demo trains): a re-iterable `finetune` accepts."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int = 32, seed: int = 0):
        self.x, self.y = torch.as_tensor(x), torch.as_tensor(y)
        self.batch_size = batch_size
        self.gen = torch.Generator().manual_seed(seed)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        perm = torch.randperm(len(self.x), generator=self.gen)
        for k in range(0, len(perm), self.batch_size):
            idx = perm[k:k + self.batch_size]
            yield (snn.encode.poisson(self.x[idx], demo.ENCODING["num_steps"],
                                      demo.ENCODING["rate"], generator=self.gen), self.y[idx])


@contextmanager
def threads(n: int) -> Iterator[None]:
    """PyTorch on `n` threads within the block (`one_thread` for 1), set again each time:
    the emulator's parallel numba kernels reset the OpenMP thread count PyTorch shares."""
    if n == 1:
        with one_thread():
            yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def accuracy(qgraph: nmcompile.Graph, spikes: np.ndarray, labels: np.ndarray) -> float:
    """Spike-count accuracy of a graph on its default target (the emulator when quantised)."""
    out = nmcompile.run(qgraph, spikes).output()
    pred = snn.loss.predict_count(torch.as_tensor(out.astype(np.float32))).numpy()
    return float((pred == labels).mean())


def train_float(model: torch.nn.Module, batches: PoissonBatches, epochs: int, lr: float
                ) -> torch.nn.Module:
    """The control: the float model trained `epochs` more, as `finetune` trains (Adam, `lr`,
    spike-count cross-entropy, the same batches) but without fake quantisation."""
    import copy

    model = copy.deepcopy(model)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        for x, y in batches:
            loss = snn.loss.ce_count(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def quantized(model: torch.nn.Module, bits: int, calibration: np.ndarray) -> nmcompile.Graph:
    graph = nmcompile.from_torch(model, torch.zeros(1, 1, 64), dt=1e-3)
    return nmcompile.quantize(graph, dataclasses.replace(PROFILES["loihi2"], weight_bits=bits),
                              calibration)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bits", default="8,6,5,4,3,2")
    ap.add_argument("--epochs", type=int, default=5, help="fine-tuning epochs")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--float-epochs", type=int, default=12)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1,
                    help="PyTorch threads (small matrices: one is fastest on a busy machine)")
    args = ap.parse_args(argv)
    start = time.perf_counter()
    d = demo.Demo(out_dir=Path(tempfile.mkdtemp(prefix="finetune-digits-")), seed=args.seed,
                  epochs=args.float_epochs, hidden=args.hidden, log=lambda _: None)
    with threads(args.threads):
        demo.stage_train(d)
    demo.stage_export(d)
    float_seconds = time.perf_counter() - start
    test_x, test_y = d.test_spikes, d.test_labels
    calibration, _ = datasets.train_inputs(d.graph.metadata, 128)
    x_tr, y_tr, _, _ = datasets.digits(demo.DATASET["test_size"], demo.DATASET["seed"])
    float_acc = accuracy(d.graph, test_x, test_y)
    snn.reset_states(d.model)  # its last call's state holds autograd tensors: not copyable
    with threads(args.threads):
        control = train_float(d.model, PoissonBatches(x_tr, y_tr, seed=args.seed + 7),
                              args.epochs, args.lr)
    rows = []
    for bits in (int(b) for b in args.bits.split(",")):
        t0 = time.perf_counter()
        ptq = accuracy(quantized(d.model, bits, calibration), test_x, test_y)
        t1 = time.perf_counter()
        profile = dataclasses.replace(PROFILES["loihi2"], weight_bits=bits)
        with threads(args.threads):  # the emulator's numba threads reset PyTorch's
            tuned, history = nmcompile.finetune(
                d.model, PoissonBatches(x_tr, y_tr, seed=args.seed + 7), profile,
                epochs=args.epochs, lr=args.lr, calibration=calibration, seed=args.seed)
        qat = accuracy(quantized(tuned, bits, calibration), test_x, test_y)
        qat_seconds = time.perf_counter() - t1
        # the two controls: the initial clipping alone (no training), and PTQ of the float
        # model trained as many epochs more without fake quantisation
        clipped, _ = nmcompile.finetune(d.model, PoissonBatches(x_tr, y_tr), profile, epochs=0,
                                        calibration=calibration)
        clip_only = accuracy(quantized(clipped, bits, calibration), test_x, test_y)
        ptq_control = accuracy(quantized(control, bits, calibration), test_x, test_y)
        loss = float_acc - ptq
        rows.append({"bits": bits, "ptq": round(ptq, 4), "qat": round(qat, 4),
                     "clip_only": round(clip_only, 4), "ptq_float_trained_more": round(
                         ptq_control, 4),
                     "ptq_loss_points": round(100 * loss, 2),
                     "recovered": round((qat - ptq) / loss, 3) if loss > 0 else None,
                     "fake_quant_vs_emulator": history.agreement,
                     "ptq_seconds": round(t1 - t0, 2),
                     "qat_seconds": round(qat_seconds, 2)})
    lossy = [r for r in rows if r["ptq_loss_points"] >= 3]
    widest = max(lossy, key=lambda r: r["bits"]) if lossy else None
    checked = [r for r in rows if r is widest or r["bits"] == 2]
    report = {
        "cores": os.cpu_count(), "torch_threads": args.threads,
        "float_accuracy": round(float_acc, 4), "float_train_seconds": round(float_seconds, 2),
        "float_trained_more_accuracy": round(accuracy(nmcompile.from_torch(
            control, torch.zeros(1, 1, 64)), test_x, test_y), 4),
        "test_digits": len(test_y), "qat_epochs": args.epochs, "qat_lr": args.lr,
        "widths": rows,
        "acceptance": {"widest_lossy_bits": widest["bits"] if widest else None,
                       "met": bool(checked) and all(r["recovered"] is not None
                                                    and r["recovered"] >= 0.5
                                                    for r in checked)},
        "seconds_total": round(time.perf_counter() - start, 2),
    }
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
