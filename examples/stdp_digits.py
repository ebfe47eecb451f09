"""Unsupervised STDP on scikit-learn's 8x8 digits, then compiled like any other network.

    .venv/bin/python examples/stdp_digits.py --out stdp-digits
    .venv/bin/python examples/stdp_digits.py --compare-inhibition      # with vs without
    .venv/bin/python examples/stdp_digits.py --patch 4 --stride 2 --shared --neurons 20

1. trains an excitatory layer of adaptive-threshold LIF neurons with lateral inhibition on
   Poisson-encoded digits, without labels (event-based STDP by default);
2. gives each neuron the class it responds to most (Diehl and Cook) and prints the test
   accuracy of the trained network;
3. rebuilds each test digit from the weights of the neurons it makes fire (a PNG, and the
   mean cosine similarity between digits and their reconstructions);
4. exports the network with `nmcompile.from_stdp` (checked spike for spike against the
   trained network), quantises it for Loihi 2 and checks that Lava (and Verilog, when that
   backend is registered) produce the emulator's spikes, every one of them.

Writes OUT/fields.png (receptive fields; with --compare-inhibition also the network trained
without inhibition), OUT/reconstruction.png, OUT/stdp.nmc, OUT/stdp_q.nmc, OUT/summary.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import nmcompile
from nmcompile import datasets
from nmcompile.stdp import (
    Patches,
    assign_labels,
    encode_data,
    predict,
    reconstruct,
    responses,
    train,
)
from nmcompile.stdp.demo import DATASET, compare_backends, digits_network, encoding, targets
from nmcompile.stdp.plots import plot_fields, plot_reconstructions


def trained(args: argparse.Namespace, inhibition: bool, x_tr, y_tr, mode: str):
    patches = Patches((args.patch, args.patch), (args.stride, args.stride),
                      shared=args.shared) if args.patch else None
    net = digits_network(args.neurons, inhibition=inhibition, rule=args.rule, seed=args.seed,
                         patches=patches)
    info = train(net, x_tr, epochs=args.epochs, batch_size=32, seed=args.seed + 100)
    counts = responses(net, encode_data(net, x_tr, seed=args.seed + 2), mode)
    assign_labels(net, counts, y_tr, 10)
    return net, info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="stdp-digits", help="output folder")
    parser.add_argument("--neurons", type=int, default=200,
                        help="excitatory neurons (per patch with --patch)")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--rule", choices=("event", "pair"), default="event")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--adaptive-thresholds", action="store_true",
                        help="ALIF at inference instead of frozen per-neuron thresholds")
    parser.add_argument("--patch", type=int, default=0, help="patch size in pixels (0: none)")
    parser.add_argument("--stride", type=int, default=0, help="patch stride (default: size)")
    parser.add_argument("--shared", action="store_true", help="one learner for all patches")
    parser.add_argument("--compare-inhibition", action="store_true",
                        help="also train without lateral inhibition and plot both")
    parser.add_argument("--samples", type=int, default=32,
                        help="test digits compared spike for spike across backends")
    args = parser.parse_args()
    args.stride = args.stride or args.patch
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    mode = "adaptive" if args.adaptive_thresholds else "frozen"

    x_tr, y_tr, x_te, _ = datasets.digits(DATASET["test_size"], DATASET["seed"])
    meta = {"dataset": DATASET, "encoding": encoding()}
    test_spikes, test_labels = datasets.test_inputs(meta)

    net, info = trained(args, True, x_tr, y_tr, mode)
    accuracy = float((predict(net, test_spikes, mode) == test_labels).mean())
    print(f"{net.n_excitatory} neurons, {args.rule} STDP, {args.epochs} epochs in "
          f"{info['seconds']:.1f} s: test accuracy {accuracy:.1%} ({mode} thresholds)")
    summary = {"neurons": net.n_excitatory, "rule": args.rule, "epochs": args.epochs,
               "train_seconds": round(info["seconds"], 2), "thresholds": mode,
               "accuracy": {"network": accuracy}}

    panels = [(f"with lateral inhibition: {accuracy:.1%}", net)]
    if args.compare_inhibition:
        alone, _ = trained(args, False, x_tr, y_tr, mode)
        acc_alone = float((predict(alone, test_spikes, mode) == test_labels).mean())
        print(f"without inhibition: test accuracy {acc_alone:.1%}")
        summary["accuracy"]["without_inhibition"] = acc_alone
        panels.append((f"without inhibition: {acc_alone:.1%}", alone))
    print(f"wrote {plot_fields(panels, out / 'fields.png', max_neurons=60)}")

    counts = responses(net, test_spikes, mode)
    rebuilt = reconstruct(net, counts)
    cosine = (rebuilt * x_te).sum(1) / (np.linalg.norm(rebuilt, axis=1)
                                        * np.linalg.norm(x_te, axis=1) + 1e-12)
    summary["reconstruction_cosine"] = float(cosine.mean())
    print(f"reconstruction from learned features: mean cosine similarity {cosine.mean():.3f}; "
          f"wrote {plot_reconstructions(net, x_te, rebuilt, out / 'reconstruction.png')}")

    graph = nmcompile.from_stdp(net, frozen_thresholds=not args.adaptive_thresholds,
                                metadata=meta)
    ir = nmcompile.run(graph, test_spikes, record=True)
    same = np.array_equal(ir.spikes["exc"],
                          net.run(test_spikes, mode)["exc"].numpy().astype(np.uint8))
    print(f"IR float interpreter equals the trained network on {test_spikes.shape[1]} test "
          f"digits: {same}")
    nmcompile.save(graph, out / "stdp.nmc")

    calibration = datasets.encode_spikes(x_tr[:128], encoding(seed=3))
    qgraph, report = nmcompile.quantize(graph, "loihi2", calibration, report=True)
    print(report.table())
    nmcompile.save(qgraph, out / "stdp_q.nmc")
    emulated = nmcompile.run(qgraph, test_spikes)
    q_acc = float((emulated.output().max(0).argmax(1) == test_labels).mean())
    summary["accuracy"] |= {"ir_float": float((ir.output().max(0).argmax(1) ==
                                               test_labels).mean()), "quantized": q_acc}
    print(f"quantised accuracy on the emulator: {q_acc:.1%}")

    n = min(args.samples, test_spikes.shape[1])
    backends = targets()
    check = compare_backends(qgraph, test_spikes[:, :n], backends)
    for name, reason in check["skipped"].items():
        print(f"{name} skipped: {reason}")
    print(f"{', '.join(check['compared'])} on {n} test digits: "
          + ("equal, spike for spike" if check["equal"] else f"DIFFER: {check['mismatches'][0]}"))
    summary |= {"ir_equals_network": same, "backends_equal": check["equal"],
                "backends": check["compared"], "samples": n}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
