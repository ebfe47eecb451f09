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
nmcompile-demo/digits.nmc, which every other command takes as MODEL. A MODEL may also be a
NIR file (.nir, from snnTorch, Norse, Sinabs, ...) with its time step: --dt SECONDS.
"""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose epilog and argument helps may be functions, called only when
    help is shown: the backends' options come from their capabilities, and reading those
    imports the backends (the chips of --chip are read from their files)."""

    def format_help(self) -> str:
        if callable(self.epilog):
            self.epilog = self.epilog()
        for action in self._actions:
            if callable(action.help):
                action.help = action.help()
        return super().format_help()


def _options_help(verb: str) -> str:
    """Every backend's `verb` options, from its capabilities (`contract.Option`)."""
    import textwrap

    from .registry import available, get_backend

    lines, none = [], []
    for name in available():
        options = [o for o in get_backend(name).capabilities.options_of(verb).values()
                   if o.on_cli]
        if not options:
            none.append(name)
        for o in options:
            lines += textwrap.wrap(f"{name}: {o.describe()}", 92, initial_indent="  ",
                                   subsequent_indent="      ")
    lines.append(f"  {', '.join(none)}: none")
    return ("backend options (--option KEY=VALUE, repeatable; BACKEND.KEY=VALUE for one "
            "backend):\n" + "\n".join(lines))


def _option_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="an option of the backend (listed below); repeatable")


def _chip_help() -> str:
    """--chip's help: the chips found now (built in, and in $NMCOMPILE_CHIPS), and the
    verilog backend's default, from its capabilities."""
    from .mapping.chips import available
    from .registry import get_backend

    default = get_backend("verilog").capabilities.options_of("run")["chip"].default
    return (f"with backend verilog: the chip whose core sizes the verilog core (neurons, "
            f"synapse words), a name ({', '.join(sorted(available()))}; default {default}, "
            f"the core's own sizes) or a chip TOML file of your own; an alias of --option "
            f"chip=...")


def _map_chip_help() -> str:
    from .mapping.chips import available

    return (f"the chip to map onto: a name ({', '.join(sorted(available()))}; default "
            f"loihi2) or a chip TOML file of your own (docs/mapping.md)")


def _devices() -> list[str]:
    """The energy devices found now (built in, and in $NMCOMPILE_DEVICES)."""
    from .analysis.energy import available

    return sorted(available())


def _chip_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--chip", metavar="NAME|FILE", help=_chip_help)


def _backend_options(pairs: Sequence[str], backends: Sequence[str], verb: str
                     ) -> dict[str, dict[str, object]]:
    """`--option [BACKEND.]KEY=VALUE` pairs as keyword options by backend: a KEY goes to every
    one of `backends` that takes it (BACKEND. names one), and one that none takes is an error
    that lists what they take."""
    from .registry import get_backend

    out: dict[str, dict[str, object]] = {b: {} for b in backends}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        scope, dot, key = key.rpartition(".")
        if not sep or not key:
            raise NmcompileError(f"--option {pair!r}: give KEY=VALUE")
        if dot and scope not in backends:
            raise NmcompileError(f"--option {pair!r}: backend {scope!r} is not one of "
                                 f"{', '.join(backends)}")
        targets = [scope] if dot else list(backends)
        takes = {b: get_backend(b).capabilities.options_of(verb) for b in targets}
        for b, options in takes.items():
            if key in options:
                out[b][key] = options[key].parse(text)
        if not any(key in options for options in takes.values()):
            known = "; ".join(f"{b}: {', '.join(o) or 'none'}" for b, o in takes.items())
            raise NmcompileError(f"--option {pair!r}: no backend here takes {key!r} "
                                 f"({verb} options: {known})")
    return out


def _load(args: argparse.Namespace):
    """The verb's MODEL: a .nmc file, or a .nir file read with --dt and --reset."""
    if str(args.model).lower().endswith(".nir"):
        from .frontends.nir import from_nir

        return from_nir(args.model, dt=args.dt, reset=args.reset)
    from .ir import load

    return load(args.model)


def _model_arg(p: argparse.ArgumentParser, help: str = "a .nmc file, or a .nir file with --dt"
               ) -> None:
    """MODEL, with --dt and --reset for a MODEL that is a NIR file."""
    p.add_argument("model", metavar="MODEL", help=help)
    p.add_argument("--dt", type=float, metavar="SECONDS",
                   help="time step of a .nir MODEL, required (NIR has none; snnTorch's exports "
                   "assume 1e-4, Norse 1e-3, Sinabs counts steps: 1)")
    p.add_argument("--reset", choices=("zero", "subtract"),
                   help="reset of a .nir MODEL's spiking neurons (default: NIR's own, to "
                   "v_reset = 0)")


def cmd_demo(args: argparse.Namespace) -> int:
    if args.stdp:
        from .stdp.demo import run_stdp_demo

        run_stdp_demo(args.out, neurons=args.neurons, seed=args.seed, samples=args.samples,
                      epochs=4 if args.epochs is None else args.epochs,
                      frozen=not args.adaptive_thresholds, rule=args.rule, force=args.force)
        print(f"next: nmcompile inspect {Path(args.out) / 'stdp_q.nmc'}")
        return 0
    from .demo import run_demo

    run_demo(args.out, seed=args.seed, epochs=12 if args.epochs is None else args.epochs,
             force=args.force)
    print(f"next: nmcompile inspect {Path(args.out) / 'digits.nmc'}")
    return 0


def _force_arg(p: argparse.ArgumentParser, rule: str) -> None:
    p.add_argument("--force", action="store_true",
                   help=f"write over an existing output that nmcompile did not write (without "
                   f"it, {rule}; a symlink or the input itself is never replaced)")


def _positive(text: str) -> int:
    """An integer >= 1, for counts of samples."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _printable(value: object) -> str:
    """Text from a file, safe for a terminal: control characters (escape sequences, carriage
    returns) are shown escaped, as repr shows them, instead of being sent to the terminal."""
    text = str(value)
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _fmt_shape(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def cmd_inspect(args: argparse.Namespace) -> int:
    from .ir.summary import summarize

    graph = _load(args)
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
        print(f"metadata {_printable(key)}: {_printable(value)}")
    if (placed := graph.placement) is not None:
        import numpy as np

        layers = ", ".join(f"{k} on {np.unique(v).size}" for k, v in placed.cores.items())
        print(f"placement: chip {_printable(placed.chip.get('name'))} "
              f"({_printable(placed.strategy)}), "
              f"{np.unique(np.concatenate(list(placed.cores.values()))).size} cores: {layers}")
    return 0


def _samples(graph, n: int, seed: int = 0, split: str = "test"):
    """N samples of the model's data set (its test split, or for calibration its training
    split), else N seeded random inputs, said loudly on stderr; and labels (None if random)."""
    from . import datasets

    if "dataset" in graph.metadata and "encoding" in graph.metadata:
        load = datasets.train_inputs if split == "train" else datasets.test_inputs
        return load(graph.metadata, n)
    shapes = {name: graph[name].shape for name in graph.inputs}
    spikes = datasets.random_inputs(shapes, n, seed=seed)
    print(f"nmcompile: WARNING: the model names no data set and no --input was given: using "
          f"{n} seeded random inputs (20 % of inputs spiking per step, 25 steps, seed {seed}); "
          f"every figure below describes random spikes, not your data", file=sys.stderr)
    return (spikes if len(spikes) > 1 else next(iter(spikes.values()))), None


#: Bytes of input spikes a --input file may hold (checked from its headers before reading).
MAX_INPUT_BYTES = 4 << 30


def _input_file(path: str, layout: str = "TBC"):
    """A .npy array or an .npz of arrays by input name, read in bounded memory (no pickle;
    headers checked before allocating; other byte orders converted); `layout` BTC: stored
    batch-first, swapped to nmcompile's (T, batch, ...)."""
    from .ir import npy

    x = npy.load(path, MAX_INPUT_BYTES)
    if layout == "BTC":
        x = {k: v.swapaxes(0, 1) for k, v in x.items()} if isinstance(x, dict) else \
            x.swapaxes(0, 1)
    return x


def _layout_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--layout", choices=("TBC", "BTC"), default="TBC",
                   help="axes of --input: TBC (T, batch, ...; the default) or BTC (batch "
                   "first); an input whose first axis is not the model's recorded num_steps "
                   "while its second is, is refused as batch-first")


def cmd_quantize(args: argparse.Namespace) -> int:
    from .ir import save
    from .quantization.quantizer import quantize

    graph = _load(args)
    calibration = None
    if args.input:
        calibration = _input_file(args.input, args.layout)
    elif args.calibrate:  # the training split: accuracy is reported on the test split
        calibration, _ = _samples(graph, args.calibrate, split="train")
    qgraph, report = quantize(graph, args.profile, calibration, report=True)
    qgraph.metadata["quantization"]["source"]["file"] = Path(args.model).name
    print(report.table())
    save(qgraph, args.output, force=args.force)
    print(f"wrote {args.output}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    import numpy as np

    from .api import is_quantized, run

    graph = _load(args)
    spikes = _input_file(args.input, args.layout)
    backend = args.backend or ("emulator" if is_quantized(graph) else "float")
    alias = [f"simulator={args.simulator}"] if args.simulator else []
    alias += [f"chip={args.chip}"] if args.chip else []
    options = _backend_options([*alias, *args.option], [backend], "run")[backend]
    result = run(graph, spikes, backend=backend, record=args.record, **options)
    for name, out in result.outputs.items():
        kind = "spikes" if out.dtype == np.uint8 else "values"
        print(f"{name}: {kind} {out.shape}, total {out.sum():g}")
    for counter, per_node in result.counters.items():
        print(f"{counter}: " + ", ".join(f"{k}={v:,}" for k, v in per_node.items()))
    if args.output:
        from .outputs import NPZ_MARKER, is_run_npz, replace_file

        arrays = {f"output/{k}": v for k, v in result.outputs.items()}
        arrays |= {f"spikes/{k}": v for k, v in result.spikes.items()}
        arrays[NPZ_MARKER] = np.array(f"nmcompile {__version__} run, backend {result.backend}")
        replace_file(args.output, lambda f: np.savez_compressed(f, **arrays), is_run_npz,
                     force=args.force)
        print(f"wrote {args.output} (backend {result.backend})")
    return 0


def _fraction(text: str) -> float:
    """A number in [0, 1], for verify's fidelity bounds (0.02 is 2 points, not 2)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{value:g} is not a fraction in [0, 1] (0.02 is 2%)")
    return value


def cmd_verify(args: argparse.Namespace) -> int:
    """Exit status from `verify.EXIT_CODES`: 0 verified, 2 usage, 3-5 the failed checks."""
    import json

    from .api import is_quantized
    from .ir import load
    from .verification import usage_problem, verify

    graph = _load(args)
    labels = None
    if args.input:
        spikes = _input_file(args.input, args.layout)
    else:
        spikes, labels = _samples(graph, args.samples, args.seed)
    backends = [b for b in args.backends.split(",") if b]
    problem = usage_problem(is_quantized(graph), backends, labels is not None,
                            args.min_agreement, args.max_accuracy_drop, bool(args.reference))
    if problem:
        print(f"nmcompile verify: error: {problem}", file=sys.stderr)
        return 2
    alias = [f"verilog.simulator={args.simulator}"] if args.simulator else []
    alias += [f"verilog.chip={args.chip}"] if args.chip else []
    options = _backend_options([*alias, *args.option], backends, "run")
    reference = load(args.reference) if args.reference else None
    report = verify(graph, spikes, backends, profile=args.profile, labels=labels,
                    backend_options=options, allow_unsafe=args.allow_unsafe,
                    min_agreement=args.min_agreement, max_accuracy_drop=args.max_accuracy_drop,
                    reference=reference)
    if args.json:
        print(json.dumps(report.to_json(), default=float))
    else:
        _print_verify(report)
    return report.exit_code


def _print_verify(report) -> None:
    """The verify table (spikes, agreement, unsafe updates per backend), then the verdict."""
    print(f"{'backend':<12} {'spikes':>10} {'unsafe':>12}  agrees with {report.reference}")
    bad = {m.backend for m in report.mismatches}
    for name, info in report.backends.items():
        verdict = "reference" if name == report.reference else (
            "NO" if name in bad else "yes, every spike")
        counts = report.unsafe_updates.get(name)
        unsafe = "not counted" if counts is None else f"{sum(counts.values()):,}"
        print(f"{name:<12} {info['spikes']:>10,} {unsafe:>12}  {verdict}")
    for name, counts in report.unsafe_updates.items():
        for layer, n in counts.items():
            if n:
                print(f"unsafe updates ({name}): layer {layer!r}: {n:,}")
    for name in report.not_counting():
        print(f"unsafe updates ({name}): not counted by this backend")
    for m in report.mismatches:
        print(f"mismatch: {m}")
    layers = (report.fidelity or {}).get("layers")
    if layers:
        print(f"\nfloat reference vs quantised ({report.reference}), per layer:")
        print(f"{'layer':<16} {'agreement':>10} {'rate float':>11} {'rate quant':>11} "
              f"{'first divergence':>17}")
        for name, f in layers.items():
            step = "none" if f["first_divergent_step"] is None else \
                f"step {f['first_divergent_step']}"
            print(f"{name:<16} {f['agreement']:>10.2%} {f['rate_float']:>11.4f} "
                  f"{f['rate_quantized']:>11.4f} {step:>17}")
    elif report.float_agreement is not None:
        print(f"float vs quantised: {report.float_agreement:.2%} of output (step, neuron) "
              f"bins equal")
    for k, v in report.accuracy.items():
        print(f"accuracy ({k}): {v:.2%}")
    if report.exit_code == 0:
        what = ("within the fidelity bounds of its float reference"
                if layers and len(report.backends) == 1 else "all backends agree")
        print(f"verified: {what}" + ("" if report.safe else
                                     " (unsafe updates allowed by --allow-unsafe)"))
        return
    print("spikes equal across backends" if report.equal else "backends DISAGREE")
    for code, reason in sorted(report.reasons):
        print(f"NOT verified (exit {code}): {reason}")


def _print_hardware(out: Path) -> None:
    """Per layer of a Lava program: stock Lava (runs on a chip) or a custom model (CPU
    simulation only), why, and what would make it stock (lowering.json's `hardware`)."""
    import json

    rows = json.loads((out / "lowering.json").read_text()).get("hardware", [])
    for row in rows:
        kinds = "/".join(row["kinds"])
        if row["stock"]:
            print(f"  {row['layer']}: stock Lava ({kinds}), deployable")
        else:
            print(f"  {row['layer']}: custom {kinds}, CPU SIMULATION ONLY: "
                  f"{'; '.join(row['why'])}; to make it stock: {'; '.join(row['fix'])}")
    if any(not row["stock"] for row in rows):
        print("  (--strict-hardware refuses a model with custom layers)")


def cmd_compile(args: argparse.Namespace) -> int:
    from .api import compile as compile_graph
    from .api import is_quantized
    from .quantization.quantizer import quantize

    graph = _load(args)
    if not is_quantized(graph):
        graph, report = quantize(graph, args.profile, report=True)
        print(report.table())
    alias = [f"synth={args.synth}"] if args.synth else []
    alias += [f"chip={args.chip}"] if args.chip else []
    alias += ["strict_hardware=true"] if args.strict_hardware else []
    options = _backend_options([*alias, *args.option], [args.target], "compile")[args.target]
    out = compile_graph(graph, args.output, args.target, force=args.force,
                        inputs=[args.model], **options)
    print(f"wrote {out}/ (see {out}/README.md)")
    if args.target == "lava":
        _print_hardware(out)
    if options.get("synth"):
        print((out / "report.md").read_text())
    return 0


def _rates(spec: str) -> float | dict[str, float]:
    """`0.1`, or `input=0.3,lif1=0.05,default=0.1`."""
    try:
        if "=" not in spec:
            return float(spec)
        return {k.strip(): float(v) for k, v in (part.split("=", 1)
                                                  for part in spec.split(",") if part)}
    except ValueError:
        raise NmcompileError(f"--rates {spec!r}: give a number, or LAYER=RATE pairs separated "
                             f"by commas (with default=RATE for the others)") from None


def cmd_estimate(args: argparse.Namespace) -> int:
    import json

    from .analysis import estimate

    graph = _load(args)
    spikes = None
    if args.rates is None:
        spikes = (_input_file(args.input, args.layout) if args.input
                  else _samples(graph, args.samples, args.seed)[0])
    est = estimate(graph, spikes, args.device, backend=args.backend,
                   rates=None if args.rates is None else _rates(args.rates), steps=args.steps,
                   samples=args.samples, device_paths=args.devices_dir or (),
                   raster=bool(args.plot), model=Path(args.model).name)
    if args.plot:
        est.plot(args.plot, force=args.force)
    if args.json:
        print(json.dumps(est.to_json(), default=float))
    else:
        print(est.table())
        if args.plot:
            print(f"wrote {args.plot}")
    return 0


def cmd_map(args: argparse.Namespace) -> int:
    import json

    from .ir import save
    from .mapping import map_graph, report
    from .runtime import run

    graph = _load(args)
    spikes = (_input_file(args.input, args.layout) if args.input
              else _samples(graph, args.samples, args.seed)[0])
    mapped = map_graph(graph, args.chip, strategy=args.strategy, inputs=spikes,
                       cores=args.cores, objective=args.objective,
                       host_layers=args.host_layer)
    save(mapped, args.output, force=args.force)
    first = next(iter(spikes.values())) if isinstance(spikes, dict) else spikes
    info = report.summary(mapped, run(mapped, spikes), steps=first.shape[0] * first.shape[1])
    if args.plot:
        report.plot(info, args.plot, force=args.force)
    if args.json:
        print(json.dumps(info, default=float))
    else:
        print(report.table(info))
        print(f"wrote {args.output}" + (f" and {args.plot}" if args.plot else ""))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nmcompile", description=DESCRIPTION,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"nmcompile {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("demo", help="train on scikit-learn's digits and run every stage",
                       description="Train a LIF network on scikit-learn's bundled digits "
                       "(Poisson spikes, spike-count readout), export it to the IR and check "
                       "the IR against PyTorch, quantise it for Loihi 2, check that the "
                       "emulator, Lava and the Verilog core (Icarus) agree spike for spike, "
                       "and estimate synaptic ops and energy per device. Writes "
                       "DIR/digits.nmc, DIR/digits_q.nmc, DIR/verilog/, DIR/summary.json and "
                       "DIR/digits.png.")
    p.add_argument("--out", default="nmcompile-demo", metavar="DIR",
                   help="output folder (default: ./nmcompile-demo)")
    _force_arg(p, "an existing DIR is written into only when it is empty or an earlier demo's "
               "folder")
    p.add_argument("--epochs", type=int, default=None,
                   help="training epochs (default: 12; with --stdp: 4)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    stdp = p.add_argument_group(
        "STDP", "--stdp trains an STDP network without labels instead (adaptive thresholds, "
        "lateral inhibition; docs/stdp.md), assigns each neuron a class, compiles it, checks "
        "Lava (and Verilog) against the emulator and writes DIR/stdp.nmc, DIR/stdp_q.nmc, "
        "DIR/stdp_fields.png and DIR/stdp_summary.json")
    stdp.add_argument("--stdp", action="store_true", help="run the STDP pipeline")
    stdp.add_argument("--neurons", type=int, default=200,
                      help="excitatory neurons (default: 200)")
    stdp.add_argument("--samples", type=_positive, default=32,
                      help="test digits compared spike for spike across backends (default: 32)")
    stdp.add_argument("--rule", choices=("event", "pair"), default="event",
                      help="event-based (default) or pair-based STDP")
    stdp.add_argument("--adaptive-thresholds", action="store_true",
                      help="keep thresholds adapting at inference (ALIF) instead of freezing "
                      "them (LIF with per-neuron thresholds, the default)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("inspect", help="print a model's nodes, shapes, delays and sizes",
                       description="Print a table of a model's nodes in schedule order: type, "
                       "output shape, inputs with their edge delays, parameters, synapses.")
    _model_arg(p)
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("quantize", help="quantise a float model to fixed point",
                       description="Fold linear chains, choose per-layer scales and per-"
                       "projection weight exponents for a fixed-point profile, print the "
                       "per-layer report and write the quantised model.")
    _model_arg(p, "a float .nmc file, or a .nir file with --dt")
    p.add_argument("-o", "--output", required=True, metavar="QMODEL.nmc")
    _force_arg(p, "an existing QMODEL.nmc is replaced only when it is an .nmc file")
    p.add_argument("--profile", default="loihi2", help="loihi2 (default) or fpga16")
    p.add_argument("--calibrate", type=_positive, default=0, metavar="N",
                   help="pick scales from activity on N samples of the training split of the "
                   "model's data set (never the test split verify reports accuracy on); "
                   "without a data set, N random inputs (said on stderr)")
    p.add_argument("--input", metavar="SPIKES.npy", help="calibrate on these spikes instead "
                   "(your training data, (T, batch, ...))")
    _layout_arg(p)
    p.set_defaults(func=cmd_quantize)

    p = sub.add_parser("run", help="run a model on input spikes",
                       description="Run MODEL on spikes (T, batch, *input_shape) from a .npy "
                       "file (or an .npz by input name). A float model runs on the float "
                       "interpreter, a quantised one on the emulator, unless --backend says.",
                       epilog=lambda: _options_help("run"),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    _model_arg(p)
    p.add_argument("--input", required=True, metavar="SPIKES.npy")
    _layout_arg(p)
    p.add_argument("--backend", default=None, help="float, emulator, lava, verilog, ...")
    _option_arg(p)
    p.add_argument("--simulator", choices=("icarus", "verilator"),
                   help="with --backend verilog: the Verilog simulator (default: icarus); "
                   "an alias of --option simulator=...")
    _chip_arg(p)
    p.add_argument("--record", action="store_true", help="also save per-layer spikes")
    p.add_argument("-o", "--output", metavar="OUT.npz", help="save outputs (and spikes)")
    _force_arg(p, "an existing OUT.npz is replaced only when nmcompile run wrote it")
    p.set_defaults(func=cmd_run)

    from .verification import EXIT_CODES

    p = sub.add_parser("verify", help="check that backends agree spike for spike",
                       description="Run the same input through each backend and compare "
                       "output and per-layer spikes exactly, and count the updates that left "
                       "the fixed-point safe range (emulator and verilog count them, lava does "
                       "not): equal spikes outside it prove nothing. A float model is quantised "
                       "first (--profile) and float-vs-quantised agreement and, when the model "
                       "names its data set, accuracies are reported.",
                       epilog=lambda: "exit status:\n" + "\n".join(
                           f"  {c}  {m}" for c, m in EXIT_CODES.items())
                       + "\nWhen several of 3-5 apply, the lowest is returned and every reason "
                       "printed;\nthe same with --json (its 'verdict' lists the reasons).\n\n"
                       + _options_help("run"),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    _model_arg(p)
    p.add_argument("--backends", default="emulator", help="comma-separated, first is the "
                   "reference (default: emulator, enough for a float model, compared with its "
                   "quantised form; a quantised model needs two, e.g. emulator,lava)")
    p.add_argument("--allow-unsafe", action="store_true", help="pass even when a backend "
                   "counted unsafe updates (u wrapped or v saturated); they are still reported")
    p.add_argument("--reference", metavar="FLOAT.nmc", help="a quantised MODEL: the float "
                   "model it was quantised from (checked by the SHA-256 the quantiser "
                   "recorded); compares every layer's spikes, firing rates, first divergent "
                   "step and accuracies, with --min-agreement 0.95 and --max-accuracy-drop "
                   "0.02 unless given")
    p.add_argument("--min-agreement", type=_fraction, metavar="FRACTION", help="float model: "
                   "fail (exit 5) when fewer output (step, neuron) bins than this are equal; "
                   "with --reference: fewer spike bins of the worst layer")
    p.add_argument("--max-accuracy-drop", type=_fraction, metavar="FRACTION", help="float "
                   "model or --reference, with a data set: fail (exit 5) when quantised "
                   "accuracy is lower than float by more than this fraction (0.02: 2 points)")
    p.add_argument("--samples", type=_positive, default=32, metavar="N",
                   help="N test samples of the model's data set, else N seeded random inputs")
    p.add_argument("--input", metavar="SPIKES.npy", help="use these spikes instead")
    _layout_arg(p)
    p.add_argument("--profile", default="loihi2")
    p.add_argument("--seed", type=int, default=0)
    _option_arg(p)
    p.add_argument("--simulator", choices=("icarus", "verilator"),
                   help="the Verilog simulator of backend verilog (default: icarus); an alias "
                   "of --option verilog.simulator=...")
    _chip_arg(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("compile", help="write a target's artefact (a Lava program, ...)",
                       description="Write the artefact of a target for MODEL into a self-"
                       "describing folder (written atomically: a failed compile leaves nothing). "
                       "A float model is quantised first with --profile.",
                       epilog=lambda: _options_help("compile"),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    _model_arg(p)
    p.add_argument("--target", required=True, help="lava, verilog, ...")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="the artefact's folder, written atomically")
    _force_arg(p, "an existing OUT is replaced only when it is empty or an earlier nmcompile "
               "artefact")
    p.add_argument("--profile", default="loihi2")
    p.add_argument("--synth", metavar="ice40|xilinx", help="with --target verilog: also run "
                   "Yosys (ice40: and nextpnr-ice40 for the measured Fmax) and write "
                   "OUT/report.json and OUT/report.md (LUTs, FFs, block RAMs, cycles per step); "
                   "ice40,xilinx for both; an alias of --option synth=...")
    p.add_argument("--strict-hardware", action="store_true", help="with --target lava: "
                   "refuse a model whose layers need custom, CPU-simulation-only Lava models "
                   "(printed per layer with the reason and the fix); an alias of --option "
                   "strict_hardware=true")
    _chip_arg(p)
    _option_arg(p)
    p.set_defaults(func=cmd_compile)

    p = sub.add_parser("estimate", help="count synaptic ops and estimate energy per device",
                       description="Run MODEL on inputs and count, per layer, synaptic "
                       "operations (one per delivered spike and stored synapse; also on non-"
                       "zero weights only), neuron updates (active and idle), spikes and "
                       "weight/state memory; then price one inference on each device (energy "
                       "models: TOML files with their sources, see docs/estimation.md) next to "
                       "an ANN of the same topology. With --rates, no simulation: counts are "
                       "expected from firing rates.")
    _model_arg(p)
    p.add_argument("--input", metavar="SPIKES.npy", help="input spikes (T, batch, *shape)")
    _layout_arg(p)
    p.add_argument("--samples", type=_positive, default=32, metavar="N",
                   help="N test samples of the model's data set, else N seeded random inputs "
                   "(default 32); with --rates, the number of inferences")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="loihi", metavar="NAMES",
                   help="comma-separated device names or TOML files (default: loihi); "
                   "found now: " + ", ".join(_devices()))
    p.add_argument("--devices-dir", action="append", metavar="DIR",
                   help="also look for device TOML files here (repeatable)")
    p.add_argument("--backend", default=None,
                   help="run on this backend (default: emulator, or float for a float model)")
    p.add_argument("--rates", metavar="SPEC", help="analytic estimate, no simulation: one "
                   "firing rate (spikes per neuron per step) for every layer, or "
                   "LAYER=RATE,...,default=RATE")
    p.add_argument("--steps", type=int, metavar="T",
                   help="steps per inference for --rates (default: the model's encoding)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--plot", metavar="OUT.png",
                   help="write per-layer synaptic ops and a spike raster of the first sample")
    _force_arg(p, "an existing OUT.png is replaced only when nmcompile drew it")
    p.set_defaults(func=cmd_estimate)

    p = sub.add_parser("map", help="partition and place a quantised model on a chip's cores",
                       description="Cut every layer of QMODEL into pieces that fit one core of "
                       "the chip, place the pieces on its mesh, write the model with its "
                       "placement, and print per-core use of every limit and the messages, "
                       "mesh hops and per-step latency measured on the calibration samples "
                       "(docs/mapping.md).")
    _model_arg(p, "a quantised .nmc file")
    p.add_argument("-o", "--output", required=True, metavar="MAPPED.nmc")
    _force_arg(p, "an existing MAPPED.nmc (or --plot PNG) is replaced only when nmcompile "
                  "wrote it")
    p.add_argument("--chip", metavar="NAME|FILE", default="loihi2", help=_map_chip_help)
    p.add_argument("--strategy", choices=("traffic", "sequential"), default="traffic",
                   help="traffic (default): METIS over the measured spike traffic, then "
                   "placement by hops; sequential: consecutive pieces in mesh order, as "
                   "Lava's compiler does")
    p.add_argument("--cores", type=_positive, metavar="N",
                   help="use at least N cores, balancing synaptic events")
    p.add_argument("--objective", choices=("traffic", "latency"), default="traffic",
                   help="latency: balance the busiest core's synaptic events instead")
    p.add_argument("--host-layer", action="append", default=[], metavar="LAYER",
                   help="read LAYER out on the host instead of placing it (a readout whose "
                   "fan-in no core holds); repeatable")
    p.add_argument("--input", metavar="SPIKES.npy",
                   help="calibration spikes (default: --samples of the model's data set)")
    _layout_arg(p)
    p.add_argument("--samples", type=_positive, default=8, metavar="N",
                   help="calibration samples (default 8)")
    p.add_argument("--seed", type=int, default=0, help="seed of random calibration inputs")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--plot", metavar="OUT.png",
                   help="draw the mesh: per-core load and per-link packets as a heat map")
    p.set_defaults(func=cmd_map)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    from .procs import Terminated, signals_raise

    try:
        # SIGTERM/SIGHUP raise Terminated (a KeyboardInterrupt), so the clean-up that runs
        # for ^C (scratch folders, Lava workers, simulators, temporary outputs) runs for them.
        with signals_raise():
            return args.func(args)
    except Terminated as exc:
        print(f"nmcompile: {exc}", file=sys.stderr)
        return 128 + exc.signum
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
