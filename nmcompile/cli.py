"""The `nmcompile` command. Errors print as one line and exit 1; `--debug` shows tracebacks."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .errors import NmcompileError

DESCRIPTION = """\
nmcompile compiles trained spiking neural networks (PyTorch with surrogate gradients, STDP,
or NIR from other frameworks) into one hardware-neutral graph IR, quantises it to fixed
point and lowers it to Lava, a bit-accurate emulator and Verilog.

Start with `nmcompile demo`: it trains a LIF network on scikit-learn's digits and writes
nmcompile-demo/digits.nmc, which every other command takes as MODEL.
"""


def _load(path: str):
    from .ir import load

    return load(path)


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(args.out, seed=args.seed, epochs=args.epochs)
    print(f"next: nmcompile inspect {Path(args.out) / 'digits.nmc'}")
    return 0


def _fmt_shape(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def cmd_inspect(args: argparse.Namespace) -> int:
    from .ir.summary import summarize

    graph = _load(args.model)
    rows = summarize(graph)
    table = [("node", "type", "shape", "inputs", "params", "synapses", "details")]
    table += [(r["name"], r["type"], _fmt_shape(r["shape"]), ", ".join(r["inputs"]) or "-",
               f"{r['params']:,}", f"{r['synapses']:,}" if r["synapses"] else "-", r["details"])
              for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    print(f"{args.model}: {len(graph)} nodes, {graph.nx.number_of_edges()} edges, "
          f"dt={graph.dt if graph.dt is not None else 'unset'}")
    for k, row in enumerate(table):
        print("  ".join(c.rjust(w) if i in (4, 5) else c.ljust(w)
                        for i, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip())
        if k == 0:
            print("  ".join("-" * w for w in widths))
    print(f"total: {sum(r['params'] for r in rows):,} parameters, "
          f"{sum(r['synapses'] for r in rows):,} synapses")
    for key, value in graph.metadata.items():
        print(f"metadata {key}: {value}")
    return 0


def _samples(graph, n: int, seed: int = 0):
    """N test samples of the model's data set, else N seeded random inputs; and labels."""
    from . import datasets

    if "dataset" in graph.metadata and "encoding" in graph.metadata:
        return datasets.test_inputs(graph.metadata, n)
    shapes = {name: graph[name].shape for name in graph.inputs}
    spikes = datasets.random_inputs(shapes, n, seed=seed)
    return (spikes if len(spikes) > 1 else next(iter(spikes.values()))), None


def _input_file(path: str):
    import numpy as np

    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise NmcompileError(f"cannot read spikes from {path}: {exc}") from None
    if isinstance(data, np.lib.npyio.NpzFile):
        return {k: data[k] for k in data.files}
    return data


def cmd_quantize(args: argparse.Namespace) -> int:
    from .ir import save
    from .quantize.quantizer import quantize

    graph = _load(args.model)
    calibration = None
    if args.calibrate:
        calibration, _ = _samples(graph, args.calibrate)
    qgraph, report = quantize(graph, args.profile, calibration, report=True)
    print(report.table())
    save(qgraph, args.output)
    print(f"wrote {args.output}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    import numpy as np

    from .api import run

    graph = _load(args.model)
    spikes = _input_file(args.input)
    result = run(graph, spikes, backend=args.backend, record=args.record)
    for name, out in result.outputs.items():
        kind = "spikes" if out.dtype == np.uint8 else "values"
        print(f"{name}: {kind} {out.shape}, total {out.sum():g}")
    for counter, per_node in result.counters.items():
        print(f"{counter}: " + ", ".join(f"{k}={v:,}" for k, v in per_node.items()))
    if args.output:
        arrays = {f"output/{k}": v for k, v in result.outputs.items()}
        arrays |= {f"spikes/{k}": v for k, v in result.spikes.items()}
        np.savez_compressed(args.output, **arrays)
        print(f"wrote {args.output} (backend {result.backend})")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    import json

    from .verify import verify

    graph = _load(args.model)
    labels = None
    if args.input:
        spikes = _input_file(args.input)
    else:
        spikes, labels = _samples(graph, args.samples, args.seed)
    backends = [b for b in args.backends.split(",") if b]
    report = verify(graph, spikes, backends, profile=args.profile, labels=labels)
    if args.json:
        print(json.dumps(report.to_json(), default=float))
        return 0 if report.equal else 1
    print(f"{'backend':<12} {'spikes':>10}  agrees with {report.reference}")
    bad = {m.backend for m in report.mismatches}
    for name, info in report.backends.items():
        verdict = "reference" if name == report.reference else (
            "NO" if name in bad else "yes, every spike")
        print(f"{name:<12} {info['spikes']:>10,}  {verdict}")
    for m in report.mismatches:
        print(f"mismatch: {m}")
    if report.float_agreement is not None:
        print(f"float vs quantised: {report.float_agreement:.2%} of output (step, neuron) "
              f"bins equal")
    for k, v in report.accuracy.items():
        print(f"accuracy ({k}): {v:.2%}")
    print("all backends agree" if report.equal else "backends DISAGREE")
    return 0 if report.equal else 1


def cmd_compile(args: argparse.Namespace) -> int:
    from .api import compile as compile_graph
    from .api import is_quantized
    from .quantize.quantizer import quantize

    graph = _load(args.model)
    if not is_quantized(graph):
        graph, report = quantize(graph, args.profile, report=True)
        print(report.table())
    out = compile_graph(graph, args.output, args.target)
    print(f"wrote {out}/ (see {out}/README.md)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nmcompile", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"nmcompile {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("demo", help="train on scikit-learn's digits and run every stage",
                       description="Train a LIF network on scikit-learn's bundled digits "
                       "(Poisson spikes, spike-count readout), export it to the IR and check "
                       "the IR against PyTorch. Writes DIR/digits.nmc, DIR/summary.json and "
                       "DIR/digits.png.")
    p.add_argument("--out", default="nmcompile-demo", metavar="DIR",
                   help="output folder (default: ./nmcompile-demo)")
    p.add_argument("--epochs", type=int, default=12, help="training epochs (default: 12)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("inspect", help="print a model's nodes, shapes, delays and sizes",
                       description="Print a table of a model's nodes in schedule order: type, "
                       "output shape, inputs with their edge delays, parameters, synapses.")
    p.add_argument("model", metavar="MODEL", help="a .nmc file")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("quantize", help="quantise a float model to fixed point",
                       description="Fold linear chains, choose per-layer scales and per-"
                       "projection weight exponents for a fixed-point profile, print the "
                       "per-layer report and write the quantised model.")
    p.add_argument("model", metavar="MODEL", help="a float .nmc file")
    p.add_argument("-o", "--output", required=True, metavar="QMODEL.nmc")
    p.add_argument("--profile", default="loihi2", help="loihi2 (default) or fpga16")
    p.add_argument("--calibrate", type=int, default=0, metavar="N",
                   help="pick scales from activity on N samples of the model's data set")
    p.set_defaults(func=cmd_quantize)

    p = sub.add_parser("run", help="run a model on input spikes",
                       description="Run MODEL on spikes (T, batch, *input_shape) from a .npy "
                       "file (or an .npz by input name). A float model runs on the float "
                       "interpreter, a quantised one on the emulator, unless --backend says.")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--input", required=True, metavar="SPIKES.npy")
    p.add_argument("--backend", default=None, help="float, emulator, ...")
    p.add_argument("--record", action="store_true", help="also save per-layer spikes")
    p.add_argument("-o", "--output", metavar="OUT.npz", help="save outputs (and spikes)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("verify", help="check that backends agree spike for spike",
                       description="Run the same input through each backend and compare "
                       "output and per-layer spikes exactly; exit 0 only if all agree. A float "
                       "model is quantised first (--profile) and float-vs-quantised agreement "
                       "and, when the model names its data set, accuracies are reported.")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--backends", default="emulator", help="comma-separated, first is the "
                   "reference (default: emulator)")
    p.add_argument("--samples", type=int, default=32, metavar="N",
                   help="N test samples of the model's data set, else N seeded random inputs")
    p.add_argument("--input", metavar="SPIKES.npy", help="use these spikes instead")
    p.add_argument("--profile", default="loihi2")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("compile", help="write a target's artefact (a Lava program, ...)",
                       description="Write the artefact of a target for MODEL into a self-"
                       "describing folder (written atomically: a failed compile leaves nothing). "
                       "A float model is quantised first with --profile.")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--target", required=True, help="lava, ...")
    p.add_argument("-o", "--output", required=True, metavar="OUT")
    p.add_argument("--profile", default="loihi2")
    p.set_defaults(func=cmd_compile)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("nmcompile: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        kind = "error" if isinstance(exc, NmcompileError) else f"error ({type(exc).__name__})"
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"nmcompile: {kind}: {message} (rerun with --debug for details)"
              if not isinstance(exc, NmcompileError) else f"nmcompile: {kind}: {message}",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
