"""`compile`: a self-contained Lava program for a quantised graph.

    OUT/
      README.md        what is inside, how to run it, stock vs custom processes
      network.py       generated, readable: builds and wires every process from params.npz
      run.py           feeds input.npy (or input.npz by input name), writes output.npz
      params.npz       every array (weights, per-neuron parameters, neuron orders)
      lowering.json    the lowering report: processes, IR nodes, depths, deployability
      input.npy        example input (T, batch, *shape); replace it with yours
      lava_compat.py   copy of backends/lava/compat.py (lava-nc 0.10 on Python 3.11)
      nmc_models.py    copy of backends/lava/models.py (custom processes), when needed

The folder imports only numpy, scipy and Lava. Names from the graph reach the generated code
only inside string literals written by `repr`, and in comments after `_comment` removed
anything but plain characters.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from nmcompile.ir import Graph

from .plan import Plan, ProcSpec

HERE = Path(__file__).resolve().parent
EXAMPLE_STEPS = 32
MODEL_CLASS = {"LIF": "PyLifModelBitAcc", "LIFReset": "PyLifResetModelBitAcc",
               "FixedNeuron": "PyFixedNeuronModel",
               "Dense": "PyDenseModelBitAcc", "DelayDense": "PyDelayDenseModelBitAcc",
               "Sparse": "PySparseModelBitAcc", "DelaySparse": "PyDelaySparseModelBitAcc",
               "Conv": "PyConvModelFixed"}
IMPORTS = {
    "LIF": ("lava.proc.lif", "LIF"), "LIFReset": ("lava.proc.lif", "LIFReset"),
    "Dense": ("lava.proc.dense", "Dense"),
    "DelayDense": ("lava.proc.dense", "DelayDense"), "Sparse": ("lava.proc.sparse", "Sparse"),
    "DelaySparse": ("lava.proc.sparse", "DelaySparse"), "Conv": ("lava.proc.conv", "Conv"),
}


def _comment(text: str) -> str:
    """Text safe inside a `#` comment or a docstring line: no newlines, quotes or escapes."""
    return re.sub(r"[^A-Za-z0-9_ .,:;()<>#+\-/*=\[\]]", "?", str(text))[:200]


def _key(proc: str, param: str) -> str:
    return f"{proc}/{param}"


def _value(spec: ProcSpec, param: str, arrays: dict[str, np.ndarray]) -> str:
    """Source text for one constructor argument; arrays go to params.npz."""
    value = spec.params[param]
    if isinstance(value, np.ndarray):
        arrays[_key(spec.name, param)] = value
        return f"p[{_key(spec.name, param)!r}]"
    if isinstance(value, tuple):
        return repr(tuple(int(v) for v in value))
    if isinstance(value, (bool, np.bool_)):
        return repr(bool(value))
    return repr(int(value))


def _constructor(spec: ProcSpec, arrays: dict[str, np.ndarray]) -> str:
    p = spec.params

    def v(param: str) -> str:
        return _value(spec, param, arrays)

    name = f"name={spec.name!r}"
    if spec.kind in ("LIF", "LIFReset"):
        args = [f"shape=({int(p['n'])},)", f"du={v('du')}", f"dv={v('dv')}", f"vth={v('vth')}",
                f"bias_mant={v('bias_mant')}", f"bias_exp={v('bias_exp')}"]
        if spec.kind == "LIFReset":
            args += [f"reset_interval={v('reset_interval')}", f"reset_offset={v('reset_offset')}"]
    elif spec.kind == "FixedNeuron":
        args = [f"{k}={v(k)}" for k in ("n", "du", "dv", "bias_mant", "bias_exp", "vth",
                                         "vth_step", "da", "spiking", "adaptive", "subtract",
                                         "start")]
    elif spec.kind == "Conv":
        args = [f"weight={v('weight')}"] + [f"{k}={v(k)}" for k in (
            "input_shape", "padding", "stride", "dilation", "groups", "num_message_bits")]
    else:
        if spec.kind in ("Dense", "DelayDense"):
            args = [f"weights={v('weights')}"]
        else:
            for part in ("rows", "cols", "values"):
                _value(spec, part, arrays)
            args = [f"weights=sparse(p, {spec.name!r}, {tuple(int(s) for s in p['shape'])!r})"]
        if spec.kind == "DelayDense":
            args.append(f"delays={v('delays')}")
        if spec.kind == "DelaySparse":
            d = int(p["delays"])
            args.append(f"delays=sparse(p, {spec.name!r}, "
                        f"{tuple(int(s) for s in p['shape'])!r}, delay={d})")
            args.append(f"max_delay={d}")
        args += [f"weight_exp={v('weight_exp')}", f"num_weight_bits={v('num_weight_bits')}",
                 f"sign_mode=SignMode.{str(p['sign_mode']).upper()}",
                 f"num_message_bits={v('num_message_bits')}"]
    head = f"procs[{spec.name!r}] = {spec.kind}("
    body = (",\n" + " " * 8).join([*args, name])
    return f"{head}\n        {body})"


def _port(spec: ProcSpec, direction: str) -> str:
    if direction == "out":
        return "s_out" if spec.is_neuron else "a_out"
    return "a_in" if spec.is_neuron else "s_in"


def network_source(plan: Plan, arrays: dict[str, np.ndarray], title: str) -> str:
    specs = {s.name: s for s in plan.procs}
    kinds = {s.kind for s in plan.procs}
    lines = [
        f'"""{_comment(title)}: Lava processes generated by nmcompile from a quantised graph.',
        "",
        "Generated code: regenerate it (nmcompile compile MODEL --target lava -o OUT) rather",
        "than editing it. Arrays come from params.npz next to this file. `build()` returns the",
        "processes, the in-ports each graph input feeds, and the bit-accurate CPU model of",
        "every process (for Loihi2SimCfg's exception_proc_model_map).",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "from pathlib import Path",
        "",
        "import numpy as np",
        "import scipy.sparse as sp",
        "",
        "import lava_compat  # makes lava-nc 0.10 importable on Python 3.11",
        "",
        "lava_compat.install()",
        "",
    ]
    for module in sorted({IMPORTS[k][0] for k in kinds if k in IMPORTS}):
        names = sorted({IMPORTS[k][1] for k in kinds if IMPORTS.get(k, ("",))[0] == module})
        models = sorted({MODEL_CLASS[k] for k in kinds if IMPORTS.get(k, ("",))[0] == module})
        lines.append(f"from {module}.models import {', '.join(models)}  # noqa: E402")
        lines.append(f"from {module}.process import {', '.join(names)}  # noqa: E402")
    lines.append("from lava.utils.weightutils import SignMode  # noqa: E402")
    if "FixedNeuron" in kinds:
        lines.append("from nmc_models import FixedNeuron, PyFixedNeuronModel  # noqa: E402")
    depths = {x.name: x.depth for x in plan.inputs + plan.layers}
    lines += [
        "",
        "HERE = Path(__file__).resolve().parent",
        "#: Graph inputs and neuron layers: IR shape (features only).",
        f"INPUTS = {({x.name: tuple(x.shape) for x in plan.inputs})!r}",
        f"LAYERS = {({x.name: tuple(x.shape) for x in plan.layers})!r}",
        "#: Layers that emit 0/1 spikes (the others emit their voltage).",
        f"SPIKING = {sorted(x.name for x in plan.layers if x.spiking)!r}",
        "#: Lava steps between IR step t and the Lava step (from 0) that emits it: each",
        "#: Dense/Sparse/Conv adds one.",
        f"DEPTHS = {depths!r}",
        "#: Output -> [(input or layer, IR delay)]: the sum of those, delayed.",
        f"OUTPUTS = {({o.name: [tuple(s) for s in o.sources] for o in plan.outputs})!r}",
        "",
        "",
        "def perm(name: str, p=None) -> np.ndarray:",
        '    """perm[i] is the IR flat index of Lava neuron i (Lava keeps images as (X, Y, C))."""',
        '    p = np.load(HERE / "params.npz") if p is None else p',
        '    return p[f"perm/{name}"]',
        "",
        "",
        "def sparse(p, key: str, shape: tuple[int, int], delay: int | None = None):",
        '    """A stored (rows, cols, values) matrix; with `delay`, its delay matrix."""',
        '    values = p[f"{key}/values"] if delay is None else \\',
        '        np.full(len(p[f"{key}/values"]), delay, dtype=int)',
        '    return sp.csr_matrix((values, (p[f"{key}/rows"], p[f"{key}/cols"])), shape=shape)',
        "",
        "",
        "def build(params=None):",
        '    """Create and wire the processes: (processes, input ports, models)."""',
        '    p = np.load(HERE / "params.npz") if params is None else params',
        "    procs = {}",
    ]
    for spec in plan.procs:
        what = "stock Lava" if spec.stock else "custom, CPU simulation only"
        lines.append(f"    # {_comment(spec.node or 'delay line')}: {what}"
                     + (f" ({_comment(spec.note)})" if spec.note else ""))
        lines.append("    " + _constructor(spec, arrays))
    lines.append("    # wiring: a port fed by several processes receives their sum")
    inputs: dict[str, list[str]] = {x.name: [] for x in plan.inputs}
    for spec in plan.procs:
        dst = f"procs[{spec.name!r}].{_port(spec, 'in')}"
        for src in spec.inputs:
            if src in inputs:
                inputs[src].append(dst)
                continue
            src_spec = specs[src]
            out = f"procs[{src!r}].{_port(src_spec, 'out')}"
            if tuple(src_spec.out_shape()) != tuple(spec.in_shape()):
                out += f".reshape({tuple(int(s) for s in spec.in_shape())!r})"
            lines.append(f"    {out}.connect({dst})")
    lines.append("    inputs = {")
    for name, ports in inputs.items():
        lines.append(f"        {name!r}: [{', '.join(ports)}],")
    lines.append("    }")
    lines.append("    models = {")
    for spec in plan.procs:
        lines.append(f"        procs[{spec.name!r}]: {MODEL_CLASS[spec.kind]},")
    lines += ["    }", "    return procs, inputs, models", ""]
    for x in plan.inputs + plan.layers:
        arrays[f"perm/{x.name}"] = x.perm
    return "\n".join(lines)


RUN_SOURCE = '''"""Run network.py on Lava's bit-accurate CPU simulation, sample by sample.

    python run.py [--input input.npy] [--output output.npz]

input: (T, batch, *shape) for the single graph input, or an .npz with one such array per
input name. output.npz: `output/<name>` (T, batch, n) per graph output and `spikes/<layer>`
(T, batch, n) per neuron layer, aligned to IR time (Lava's per-hop latency removed).
To run on a Loihi 2 chip instead, replace Loihi2SimCfg by Lava's Loihi2HwCfg (lava-loihi);
only the stock processes have chip models (see README.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import network
from lava.magma.core.run_conditions import RunSteps
from lava.magma.core.run_configs import Loihi2SimCfg
from lava.proc.io.extractor import Extractor, PyLoihiExtractorModel
from lava.proc.io.source import PySendModelFixed, RingBuffer

HERE = Path(__file__).resolve().parent


def load_inputs(path: Path) -> dict[str, np.ndarray]:
    data = np.load(path, allow_pickle=False)
    if isinstance(data, np.ndarray):
        (name,) = network.INPUTS
        return {name: data}
    return {k: data[k] for k in data.files}


def run_sample(inputs: dict[str, np.ndarray], p) -> dict[str, np.ndarray]:
    """One sample: inputs (T, *shape) by name -> each layer's outputs (T, n), IR order."""
    T = len(next(iter(inputs.values())))
    steps = T + max(network.DEPTHS.values())
    procs, ports, models = network.build(p)
    for name, x in inputs.items():
        perm, depth = network.perm(name, p), network.DEPTHS[name]
        data = np.zeros((steps, perm.size), np.int32)
        data[depth:depth + T] = x.reshape(T, -1)[:, perm]
        ring = RingBuffer(data=data.T)
        models[ring] = PySendModelFixed
        for port in ports[name]:
            out = ring.s_out if port.shape == ring.s_out.shape else \\
                ring.s_out.reshape(port.shape)
            out.connect(port)
    recorders = {}
    for name in network.LAYERS:
        recorders[name] = Extractor(shape=procs[name].s_out.shape, buffer_size=steps + 1)
        procs[name].s_out.connect(recorders[name].in_port)
        models[recorders[name]] = PyLoihiExtractorModel
    top = procs[next(iter(network.LAYERS))]
    cfg = Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map=models)
    try:
        top.run(condition=RunSteps(num_steps=steps), run_cfg=cfg)
        got = {n: np.stack([ex.receive() for _ in range(steps)]) for n, ex in recorders.items()}
    finally:
        top.stop()
    out = {}
    for name, rec in got.items():
        depth, perm = network.DEPTHS[name], network.perm(name, p)
        lava = np.rint(rec[depth:depth + T]).astype(np.int64)
        ir = np.empty_like(lava)
        ir[:, perm] = lava
        out[name] = ir
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = HERE / "input.npy" if (HERE / "input.npy").exists() else HERE / "input.npz"
    parser.add_argument("--input", type=Path, default=default)
    parser.add_argument("--output", type=Path, default=HERE / "output.npz")
    args = parser.parse_args()
    inputs = load_inputs(args.input)
    T, B = next(iter(inputs.values())).shape[:2]
    p = dict(np.load(HERE / "params.npz", allow_pickle=False))
    samples = [run_sample({k: v[:, b] for k, v in inputs.items()}, p) for b in range(B)]
    layers = {n: np.stack([s[n] for s in samples], axis=1) for n in network.LAYERS}
    flat = {**{k: v.reshape(T, B, -1).astype(np.int64) for k, v in inputs.items()}, **layers}
    arrays = {}
    for name, sources in network.OUTPUTS.items():
        total = 0
        for src, delay in sources:
            shifted = np.zeros_like(flat[src])
            if delay < T:
                shifted[delay:] = flat[src][:T - delay]
            total = total + shifted
        spiking = all(src in network.SPIKING for src, _ in sources)
        arrays[f"output/{name}"] = total.astype(np.uint8 if spiking else np.int64)
    for name in network.SPIKING:
        arrays[f"spikes/{name}"] = layers[name].astype(np.uint8)
    np.savez_compressed(args.output, **arrays)
    print(f"wrote {args.output}: " + ", ".join(
        f"{k} {v.shape} total {v.sum()}" for k, v in arrays.items() if k.startswith("output/")))


if __name__ == "__main__":
    main()
'''


def readme(plan: Plan, title: str, example: bool) -> str:
    rows = "\n".join(
        f"| `{_comment(r['process'])}` | {r['kind']} | `{_comment(r['node'] or '-')}` | "
        f"{'yes' if r['deployable'] else 'no (simulation only)'} | {_comment(r['note'])} |"
        for r in plan.report())
    depths = ", ".join(f"`{_comment(x.name)}` {x.depth}" for x in plan.layers)
    custom = any(not p.stock for p in plan.procs)
    example_note = " The one here is an example (seeded random spikes)." if example else ""
    models_line = ("- `nmc_models.py`: the custom `FixedNeuron` process and its bit-accurate "
                   "model." if custom else "")
    return f"""# {_comment(title)}: a Lava program generated by nmcompile

Run it with the project's virtual environment (lava-nc 0.10.0, numpy, scipy):

    python run.py                      # input.npy -> output.npz
    python run.py --input my.npy --output my.npz

`input.npy` holds (T, batch, *input shape) integer spikes; an `.npz` with one array per
input name works for several inputs.{example_note} `output.npz` holds `output/<name>`
(T, batch, n) for every graph output and `spikes/<layer>` for every spiking layer, aligned to
the IR's time steps: equal, spike for spike, to `nmcompile run MODEL --backend emulator`.

## Files

- `network.py`: generated, builds every process from `params.npz` and wires them
  (`build()` returns processes, input ports and models: embed them in your own Lava program).
- `run.py`: runs each sample on `Loihi2SimCfg(select_tag="fixed_pt")`, Lava's bit-accurate
  CPU simulation, with the models named per process.
- `lowering.json`: the process table below, the depths and notes, as data.
- `lava_compat.py`: lava-nc 0.10.0 declares Python < 3.11; this import hook freezes one
  dataclass (`ByteEncoder`) so Lava imports on 3.11 without editing site-packages.
{models_line}

## Processes

| process | Lava kind | IR node | on a Loihi chip | note |
|---|---|---|---|---|
{rows}

Latency: each Dense/Sparse/Conv adds one Lava step, so layer L emits IR step t on Lava step
t + depth(L): {depths}. Unequal paths are balanced with DelayDense/DelaySparse or identity
delay lines; `run.py` removes the depths again.

## On a chip

Stock processes run on Loihi 2 through Lava's `Loihi2HwCfg` (from Intel's lava-loihi, not
open source): replace the run config in `run.py`. Custom processes (`FixedNeuron`) have CPU
models only; a chip needs a microcode neuron model for them.
"""


def write(graph: Graph, out: Path, spikes: np.ndarray | Mapping[str, np.ndarray] | None = None,
          *, max_processes: int | None = None) -> Path:
    from .lowering import MAX_PROCESSES, lower

    plan = lower(graph, max_processes=max_processes or MAX_PROCESSES)
    title = str(graph.metadata.get("source") or "network")
    arrays: dict[str, np.ndarray] = {}
    source = network_source(plan, arrays, title)
    out.mkdir(parents=True, exist_ok=True)
    (out / "network.py").write_text(source + "\n" if not source.endswith("\n") else source)
    (out / "run.py").write_text(RUN_SOURCE)
    np.savez(out / "params.npz", **arrays)
    shutil.copyfile(HERE / "compat.py", out / "lava_compat.py")
    if any(p.kind == "FixedNeuron" for p in plan.procs):
        shutil.copyfile(HERE / "models.py", out / "nmc_models.py")
    example = spikes is None
    if spikes is None:
        rng = np.random.default_rng(0)
        data = {x.name: (rng.random((EXAMPLE_STEPS, 1, *x.shape)) < 0.2).astype(np.int8)
                for x in plan.inputs}
    else:
        data = dict(spikes) if isinstance(spikes, Mapping) else {plan.inputs[0].name: spikes}
    if len(data) == 1:
        np.save(out / "input.npy", np.asarray(next(iter(data.values()))))
    else:
        np.savez(out / "input.npz", **{k: np.asarray(v) for k, v in data.items()})
    report: dict[str, Any] = {
        "processes": plan.report(),
        "depths": {x.name: x.depth for x in plan.inputs + plan.layers},
        "notes": plan.notes,
    }
    (out / "lowering.json").write_text(json.dumps(report, indent=1))
    (out / "README.md").write_text(readme(plan, title, example))
    return out
