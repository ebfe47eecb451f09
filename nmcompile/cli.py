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

        log = (lambda text: print(text, file=sys.stderr)) if args.json else print
        summary = run_stdp_demo(args.out, neurons=args.neurons, seed=args.seed,
                                samples=args.samples,
                                epochs=4 if args.epochs is None else args.epochs,
                                frozen=not args.adaptive_thresholds, rule=args.rule,
                                force=args.force, log=log)
        if args.json:
            import json

            print(json.dumps({"out": str(args.out), "summary": summary}, default=float))
        else:
            print(f"next: nmcompile inspect {Path(args.out) / 'stdp_q.nmc'}")
        return 0
    from .demo import run_demo

    # with --json, stdout carries the one JSON object; the stages' log goes to stderr
    log = (lambda text: print(text, file=sys.stderr)) if args.json else print
    summary = run_demo(args.out, seed=args.seed, epochs=12 if args.epochs is None
                       else args.epochs, force=args.force, log=log)
    if args.json:
        import json

        print(json.dumps({"out": str(args.out), "summary": summary}, default=float))
    else:
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


def _inspect_json(args: argparse.Namespace, graph, rows: list[dict]) -> int:
    import json

    info: dict[str, object] = {
        "model": str(args.model), "dt": graph.dt, "edges": graph.nx.number_of_edges(),
        "nodes": [{**r, "shape": list(r["shape"])} for r in rows],
        "parameters": sum(r["params"] for r in rows),
        "synapses": sum(r["synapses"] for r in rows), "metadata": graph.metadata}
    if (placed := graph.placement) is not None:
        import numpy as np

        info["placement"] = {"chip": placed.chip.get("name"), "strategy": placed.strategy,
                             "cores": {k: np.unique(v).tolist() for k, v in placed.cores.items()}}
    print(json.dumps(info, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v)))
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from .ir.summary import summarize

    graph = _load(args)
    rows = summarize(graph)
    if args.json:
        return _inspect_json(args, graph, rows)
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


def _user_input(graph, args: argparse.Namespace, split: str = "test", n: int | None = None):
    """--input for this model (`user_input.read_input`, docs/inputs.md): a .npy, an .npz of
    arrays by input name (and `labels`), an .npz of events (x, y, t, p) binned to the input's
    frames, or a tonic data set on disk, tonic:NAME[:SPLIT]:FOLDER (`n` of its samples)."""
    from .user_input import read_input

    steps = graph.metadata.get("encoding", {}).get("num_steps") \
        if isinstance(graph.metadata.get("encoding"), dict) else None
    return read_input(args.input, args.layout,
                      input_shapes={name: graph[name].shape for name in graph.inputs},
                      num_steps=args.bin_steps, dt_us=args.bin_us,
                      default_steps=steps if type(steps) is int else None,
                      n=n if str(args.input).startswith("tonic:") else None, split=split)


def _layout_arg(p: argparse.ArgumentParser) -> None:
    """How --input is read: its axes, and the binning of events."""
    p.add_argument("--layout", choices=("TBC", "BTC"), default="TBC",
                   help="axes of --input: TBC (T, batch, ...; the default) or BTC (batch "
                   "first); an input whose first axis is not the model's recorded num_steps "
                   "while its second is, is refused as batch-first")
    p.add_argument("--bin-steps", type=_positive, metavar="T", help="events in --input (an "
                   ".npz of x, y, t, p, or tonic:NAME:FOLDER): bin each recording into T "
                   "steps (default: what the file stores, else the model's num_steps)")
    p.add_argument("--bin-us", type=float, metavar="MICROSECONDS", help="events: bins of "
                   "this width instead (T is then the longest recording's)")


def _bits_list(text: str) -> list[int]:
    """--sweep-bits 8,6,4: weight widths, each at least 2."""
    try:
        bits = [int(b) for b in text.split(",") if b.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give widths like 8,6,4") from None
    if not bits or min(bits) < 2:
        raise argparse.ArgumentTypeError(f"{text!r}: give widths of at least 2 bits, like 8,6,4")
    return bits


def _layer_bits(pairs: Sequence[str]) -> dict[str, int]:
    """--layer-bits LAYER=BITS pairs (a neuron layer or a projection of the folded graph)."""
    out = {}
    for pair in pairs:
        name, sep, bits = pair.partition("=")
        if not sep or not name or not bits.strip().isdigit():
            raise NmcompileError(f"--layer-bits {pair!r}: give LAYER=BITS, e.g. lif1=4")
        out[name] = int(bits)
    return out


def _labels_file(path: str | None):
    """--labels LABELS.npy: one integer class per sample."""
    if path is None:
        return None
    from .ir import npy
    from .user_input import MAX_INPUT_BYTES

    labels = npy.load(path, MAX_INPUT_BYTES)
    if isinstance(labels, dict) or labels.ndim != 1:
        raise NmcompileError(f"--labels {path}: give a .npy of one integer label per sample")
    return labels


def cmd_quantize(args: argparse.Namespace) -> int:
    """Write one quantised model, or with --sweep-bits measure several widths (no output)."""
    import json

    from .ir import save
    from .quantization.quantizer import quantize

    if not args.sweep_bits and not args.output:
        print("nmcompile quantize: error: give -o QMODEL.nmc (or --sweep-bits to measure "
              "widths without writing a model)", file=sys.stderr)
        return 2
    graph = _load(args)
    calibration = got = None
    if args.input:
        got = _user_input(graph, args, "train", args.calibrate or args.samples)
        calibration = got.spikes
    elif args.calibrate:  # the training split: accuracy is reported on the test split
        calibration, _ = _samples(graph, args.calibrate, split="train")
    layer_bits = _layer_bits(args.layer_bits)
    if args.sweep_bits:
        return _sweep(args, graph, calibration, layer_bits, got)
    qgraph, report = quantize(graph, args.profile, calibration, report=True,
                              weight_bits=args.weight_bits, layer_bits=layer_bits)
    qgraph.metadata["quantization"]["source"]["file"] = Path(args.model).name
    save(qgraph, args.output, force=args.force)
    if args.json:
        print(json.dumps({"output": str(args.output), "report": report.to_json(),
                          "calibration": _calibration_source(graph, args, got)},
                         default=float))
    else:
        print(report.table())
        print(f"wrote {args.output}")
    return 0


def _sweep(args: argparse.Namespace, graph, calibration, layer_bits: dict[str, int],
           got=None) -> int:
    """quantize --sweep-bits: accuracy and agreement per width on --input (with --labels), or
    on the model's test split, calibrated as a plain quantize with the same options is."""
    import json

    from .progress import bar
    from .quantization.sweep import sweep_bits, table

    if got is not None:
        spikes = calibration
        labels = got.labels if args.labels is None else _labels_file(args.labels)
    else:
        spikes, labels = _samples(graph, args.samples, args.seed)
    entries = sweep_bits(graph, args.sweep_bits, spikes, calibration=calibration,
                         labels=labels, profile=args.profile, layer_bits=layer_bits,
                         progress=lambda widths: bar(widths, "quantise", unit="width"))
    source, calibrated = _input_source(graph, args, got=got), _calibration_source(graph, args, got)
    if args.json:
        print(json.dumps({"sweep": entries, "input": source, "calibration": calibrated},
                         default=float))
        return 0
    print(f"measured on {source['description']}, calibrated on {calibrated['description']}; "
          f"agreement: equal spike bins of the float model and the quantised one (emulator)")
    print(table(entries))
    return 0


def _input_source(graph, args: argparse.Namespace, split: str = "test", got=None
                  ) -> dict[str, object]:
    """Where a verb's input came from, for its JSON: --input (`got`, its `UserInput`), the
    model's data set, or random spikes (then `random` is true, as stderr says)."""
    if got is not None:
        return got.to_json()
    if "dataset" in graph.metadata and "encoding" in graph.metadata:
        spec = graph.metadata["dataset"]
        name = spec.get("name") if isinstance(spec, dict) else spec
        return {"kind": "dataset", "random": False, "split": split,
                "description": f"{_printable(name)} ({split} split)"}
    return {"kind": "random", "random": True,
            "description": "seeded random spikes (20 % activity, 25 steps): not your data"}


def _calibration_source(graph, args: argparse.Namespace, got=None) -> dict[str, object]:
    """quantize's calibration: --input, --calibrate N samples, or none (a worst-case bound)."""
    if got is None and not args.calibrate:
        return {"kind": "bound", "random": False, "description": "no data (a worst-case bound "
                "on each layer's peak state; --calibrate N or --input measure it)"}
    source = _input_source(graph, args, "train", got)
    if got is None:
        source["samples"] = args.calibrate
        source["description"] = f"{args.calibrate} samples of {source['description']}"
    return source


def cmd_run(args: argparse.Namespace) -> int:
    import numpy as np

    from .api import is_quantized, run

    graph = _load(args)
    got = _user_input(graph, args, n=args.samples)
    spikes = got.spikes
    backend = args.backend or ("emulator" if is_quantized(graph) else "float")
    alias = [f"simulator={args.simulator}"] if args.simulator else []
    alias += [f"chip={args.chip}"] if args.chip else []
    options = _backend_options([*alias, *args.option], [backend], "run")[backend]
    from .progress import busy

    with busy(f"nmcompile run on {backend}"):
        result = run(graph, spikes, backend=backend, record=args.record, **options)
    outputs = {name: {"kind": "spikes" if out.dtype == np.uint8 else "values",
                      "shape": list(out.shape), "total": float(out.sum())}
               for name, out in result.outputs.items()}
    if not args.json:
        for name, o in outputs.items():
            print(f"{name}: {o['kind']} {tuple(o['shape'])}, total {o['total']:g}")
        for counter, per_node in result.counters.items():
            print(f"{counter}: " + ", ".join(f"{k}={v:,}" for k, v in per_node.items()))
    if args.output:
        from .outputs import NPZ_MARKER, is_run_npz, replace_file

        arrays = {f"output/{k}": v for k, v in result.outputs.items()}
        arrays |= {f"spikes/{k}": v for k, v in result.spikes.items()}
        arrays[NPZ_MARKER] = np.array(f"nmcompile {__version__} run, backend {result.backend}")
        replace_file(args.output, lambda f: np.savez_compressed(f, **arrays), is_run_npz,
                     force=args.force)
        if not args.json:
            print(f"wrote {args.output} (backend {result.backend})")
    if args.json:
        import json

        print(json.dumps({"backend": result.backend, "input": got.to_json(),
                          "outputs": outputs, "counters": result.counters,
                          "output": args.output}, default=int))
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
    got = None
    if args.input:
        got = _user_input(graph, args, n=args.samples)
        spikes, labels = got.spikes, got.labels
    else:
        spikes, labels = _samples(graph, args.samples, args.seed)
    backends = [b for b in args.backends.split(",") if b]
    problem = usage_problem(is_quantized(graph), backends, labels is not None,
                            args.min_agreement, args.max_accuracy_drop, bool(args.reference))
    if args.plot and is_quantized(graph) and not args.reference:
        problem = ("--plot draws float vs quantised spikes: give the float MODEL, or "
                   "--reference FLOAT.nmc")
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
    if args.plot:  # drawn whatever the verdict: a failed check is when it is looked at
        from .plots import save, verify_figure
        from .verification import MIN_AGREEMENT

        bound = args.min_agreement if args.min_agreement is not None or not reference \
            else MIN_AGREEMENT
        save(verify_figure(report, bound), args.plot, force=args.force)
    if args.json:
        print(json.dumps(report.to_json() | {"input": _input_source(graph, args, got=got)},
                         default=float))
    else:
        _print_verify(report)
        if args.plot:
            print(f"wrote {args.plot}")
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
    info: dict[str, object] = {"target": args.target}
    if not is_quantized(graph):
        graph, report = quantize(graph, args.profile, report=True)
        info["quantization"] = report.to_json()
        if not args.json:
            print(report.table())
    alias = [f"synth={args.synth}"] if args.synth else []
    alias += [f"chip={args.chip}"] if args.chip else []
    alias += ["strict_hardware=true"] if args.strict_hardware else []
    options = _backend_options([*alias, *args.option], [args.target], "compile")[args.target]
    from .progress import busy

    with busy(f"nmcompile compile --target {args.target}"):
        out = compile_graph(graph, args.output, args.target, force=args.force,
                            inputs=[args.model], **options)
    if args.json:
        import json

        info["output"] = str(out)
        if args.target == "lava":
            info["hardware"] = json.loads((out / "lowering.json").read_text()).get("hardware")
        if options.get("synth"):
            info["synth_report"] = str(out / "report.md")
        print(json.dumps(info, default=float))
        return 0
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


def _quantized(graph) -> bool:
    from .api import is_quantized

    return is_quantized(graph)


def cmd_estimate(args: argparse.Namespace) -> int:
    import json

    from .analysis import estimate

    graph = _load(args)
    spikes = got = None
    if args.rates is None and args.input:
        got = _user_input(graph, args, n=args.samples)
        spikes = got.spikes
    elif args.rates is None:
        spikes = _samples(graph, args.samples, args.seed)[0]
    backend = args.backend or ("emulator" if _quantized(graph) else "float")
    options = _backend_options(args.option, [backend], "run")[backend]
    from .progress import busy

    with busy("nmcompile estimate"):
        est = estimate(graph, spikes, args.device, backend=args.backend,
                       backend_options=options,
                       rates=None if args.rates is None else _rates(args.rates),
                       steps=args.steps, samples=args.samples,
                       device_paths=args.devices_dir or (), raster=bool(args.plot),
                       model=Path(args.model).name)
    if args.plot:
        est.plot(args.plot, force=args.force)
    if args.json:
        source = {"kind": "rates", "random": False, "description": f"rates {args.rates}"} \
            if args.rates is not None else _input_source(graph, args, got=got)
        print(json.dumps(est.to_json() | {"input": source}, default=float))
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
    got = _user_input(graph, args, n=args.samples) if args.input else None
    spikes = got.spikes if got else _samples(graph, args.samples, args.seed)[0]
    from .progress import busy

    with busy("nmcompile map"):
        mapped = map_graph(graph, args.chip, strategy=args.strategy, inputs=spikes,
                           cores=args.cores, objective=args.objective,
                           host_layers=args.host_layer)
        save(mapped, args.output, force=args.force)
        first = next(iter(spikes.values())) if isinstance(spikes, dict) else spikes
        info = report.summary(mapped, run(mapped, spikes),
                              steps=first.shape[0] * first.shape[1])
    if args.plot:
        report.plot(info, args.plot, force=args.force)
    if args.json:
        print(json.dumps(info | {"input": _input_source(graph, args, got=got)}, default=float))
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
    p.add_argument("-o", "--output", metavar="QMODEL.nmc",
                   help="the quantised model to write (not with --sweep-bits)")
    _force_arg(p, "an existing QMODEL.nmc is replaced only when it is an .nmc file")
    p.add_argument("--profile", default="loihi2", help="loihi2 (default) or fpga16")
    p.add_argument("--weight-bits", type=int, metavar="BITS", help="round every projection's "
                   "weights to BITS-bit mantissas (sign included; 2 up to the profile's 8 or "
                   "16)")
    p.add_argument("--layer-bits", action="append", default=[], metavar="LAYER=BITS",
                   help="narrow one layer's input projections (a neuron layer or a projection "
                   "name of the folded graph, as the report lists them); repeatable")
    p.add_argument("--sweep-bits", type=_bits_list, metavar="8,6,4", help="write nothing: "
                   "quantise at each width and print accuracy and per-layer agreement with the "
                   "float model on the emulator, on --input (with --labels) or on --samples "
                   "of the model's test split")
    p.add_argument("--labels", metavar="LABELS.npy", help="with --sweep-bits --input: one "
                   "integer label per sample, for accuracies")
    p.add_argument("--samples", type=_positive, default=256, metavar="N",
                   help="with --sweep-bits and no --input: test samples to measure on "
                   "(default: 256)")
    p.add_argument("--seed", type=int, default=0, help="seed of random inputs, when the "
                   "model names no data")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--calibrate", type=_positive, default=0, metavar="N",
                   help="pick scales from activity on N samples of the training split of the "
                   "model's data set (never the test split verify reports accuracy on); "
                   "without a data set, N random inputs (said on stderr)")
    p.add_argument("--input", metavar="FILE", help="calibrate on this data instead (your "
                   "training data: .npy/.npz spikes (T, batch, ...), an .npz of events, or "
                   "tonic:NAME:FOLDER; docs/inputs.md)")
    _layout_arg(p)
    p.set_defaults(func=cmd_quantize)

    p = sub.add_parser("run", help="run a model on input spikes",
                       description="Run MODEL on spikes (T, batch, *input_shape) from a .npy "
                       "file (or an .npz by input name). A float model runs on the float "
                       "interpreter, a quantised one on the emulator, unless --backend says.",
                       epilog=lambda: _options_help("run"),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    _model_arg(p)
    p.add_argument("--input", required=True, metavar="FILE", help=".npy/.npz spikes (T, "
                   "batch, ...), an .npz of events, or tonic:NAME:FOLDER (docs/inputs.md)")
    _layout_arg(p)
    p.add_argument("--samples", type=_positive, metavar="N",
                   help="with --input tonic:NAME:FOLDER: its first N samples")
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
    p.add_argument("--plot", metavar="OUT.png", help="a float MODEL or --reference: write the "
                   "first sample's float and quantised spike rasters per layer (differing bins "
                   "marked) and each layer's agreement")
    _force_arg(p, "an existing OUT.png is replaced only when nmcompile drew it")
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
                       "expected from firing rates.",
                       epilog=lambda: _options_help("run"),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    _model_arg(p)
    p.add_argument("--input", metavar="FILE", help="input spikes (T, batch, *shape) in a "
                   ".npy/.npz, an .npz of events, or tonic:NAME:FOLDER (docs/inputs.md)")
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
    _option_arg(p)
    p.add_argument("--rates", metavar="SPEC", help="analytic estimate, no simulation: one "
                   "firing rate (spikes per neuron per step) for every layer, or "
                   "LAYER=RATE,...,default=RATE")
    p.add_argument("--steps", type=int, metavar="T",
                   help="steps per inference for --rates (default: the model's encoding)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--plot", metavar="OUT.png",
                   help="write per-layer synaptic ops, energy per layer and device stacked by "
                   "term, and the first sample's spike raster (with --rates: the rates assumed)")
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
    p.add_argument("--input", metavar="FILE",
                   help="calibration data (default: --samples of the model's data set): "
                   ".npy/.npz spikes, an .npz of events, or tonic:NAME:FOLDER")
    _layout_arg(p)
    p.add_argument("--samples", type=_positive, default=8, metavar="N",
                   help="calibration samples (default 8)")
    p.add_argument("--seed", type=int, default=0, help="seed of random calibration inputs")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--plot", metavar="OUT.png",
                   help="draw the mesh: per-core load and per-link packets as a heat map")
    p.set_defaults(func=cmd_map)
    _common_args(sub)
    return parser


def _common_args(sub: argparse._SubParsersAction) -> None:
    """--json and --quiet on every verb (a verb that added --json itself keeps its own)."""
    for p in sub.choices.values():
        if not any("--json" in a.option_strings for a in p._actions):
            p.add_argument("--json", action="store_true", help="print one JSON object")
        p.add_argument("--quiet", action="store_true", help="no progress bars (they are also "
                       "off when stderr is not a terminal)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    from .progress import set_quiet

    set_quiet(args.quiet)
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
