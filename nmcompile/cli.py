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
