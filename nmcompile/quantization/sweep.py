"""`sweep_bits`: quantise one float graph at several weight widths and measure each on data.

For every width b the graph is quantised with `weight_bits=b` (calibrated on `calibration`)
and run on the emulator, the fixed-point reference core; `nmcompile.fidelity` compares
that run with the float graph's on the same `spikes`: per-layer spike agreement and rate
error, output agreement and, with labels, both accuracies. The float run is made once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from ..ir import Graph
from .profiles import Profile, get_profile


def sweep_bits(graph: Graph, bits: Iterable[int], spikes: Any, *,
               calibration: Any = None, labels: np.ndarray | None = None,
               profile: str | Profile = "loihi2",
               layer_bits: Mapping[str, int] | None = None,
               progress: Any = None) -> list[dict[str, Any]]:
    """One entry per width: `bits`, `fidelity` (as `nmcompile.fidelity.fidelity`, with
    `accuracy` when `labels` are given) and the quantisation report's JSON. `calibration`
    defaults to `spikes`; `progress` wraps the widths' iterable (e.g. a tqdm bar)."""
    from ..fidelity import fidelity
    from ..runtime import run
    from .quantizer import quantize

    prof = get_profile(profile)
    float_run = run(graph, spikes, backend="float", record=True)
    widths = list(bits)
    out = []
    for b in (progress(widths) if progress else widths):
        qgraph, report = quantize(graph, prof, spikes if calibration is None else calibration,
                                  report=True, weight_bits=b, layer_bits=layer_bits)
        q = run(qgraph, spikes, backend="emulator", record=True)
        out.append({"bits": b, "fidelity": fidelity(float_run, q, labels),
                    "report": report.to_json()})
    return out


def table(entries: list[dict[str, Any]]) -> str:
    """The sweep as text: one row per width, the worst layer named."""
    layers = list(entries[0]["fidelity"]["layers"]) if entries else []
    has_acc = bool(entries) and "accuracy" in entries[0]["fidelity"]
    head = ["bits", *(["float acc", "quant acc"] if has_acc else []), "output agree",
            *(f"{name} agree" for name in layers), "worst"]
    rows = [head]
    for e in entries:
        f = e["fidelity"]
        acc = [f"{f['accuracy']['float']:.2%}", f"{f['accuracy']['quantized']:.2%}"] \
            if has_acc else []
        out_agree = "-" if f["output_agreement"] is None else f"{f['output_agreement']:.2%}"
        rows.append([str(e["bits"]), *acc, out_agree,
                     *(f"{f['layers'][n]['agreement']:.2%}" for n in layers),
                     str(f["worst_layer"])])
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in rows)
