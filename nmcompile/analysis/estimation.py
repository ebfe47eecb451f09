"""`estimate`: count what a model does on an input (or expect it from firing rates) and price
it on devices."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import NmcompileError
from ..ir import Graph
from ..ir.inputs import normalize_inputs
from .counts import Counts, from_result
from .energy import Device, approximations, baselines, load_devices
from .rates import analytic, layer_rates
from .report import Estimate

Spikes = np.ndarray | Mapping[str, np.ndarray]


def hardware_view(graph: Graph) -> Graph:
    """The graph whose projections are the synapses: a float graph with its linear chains
    (conv -> pool -> flatten -> dense) folded into one projection per pair of layers, as the
    quantiser does; a quantised graph as it is."""
    from ..runtime import is_quantized

    if is_quantized(graph):
        return graph
    from ..passes.fold import fold_linear

    return fold_linear(graph)


def _steps(graph: Graph, spikes: Spikes | None, steps: int | None) -> int:
    if steps is not None:
        return int(steps)
    if spikes is not None:
        first = spikes if not isinstance(spikes, Mapping) else next(iter(spikes.values()))
        return int(np.shape(first)[0])
    encoding = graph.metadata.get("encoding", {})
    if "num_steps" in encoding:
        return int(encoding["num_steps"])
    raise NmcompileError("give the number of steps per inference (steps=...): the model's "
                         "metadata names no encoding")


def _noted(counts: Counts, devices: Sequence[Device]) -> Counts:
    """`counts` with a note for every term a device prices on its fallback count (the Loihi
    within-tile spike without a mapping), so that the report says so."""
    counts.notes.extend(approximations(devices, counts.per_inference()))
    return counts


def estimate(graph: Graph, spikes: Spikes | None = None,
             device: str | Sequence[str | Path | Device] = "loihi", *,
             backend: str | None = None, rates: float | Mapping[str, float] | None = None,
             steps: int | None = None, samples: int = 1,
             device_paths: Iterable[str | Path] = (), raster: bool = False,
             model: str | None = None,
             backend_options: Mapping[str, Any] | None = None) -> Estimate:
    """Count synaptic operations, neuron updates, spikes and memory of `graph` and estimate
    the energy per inference on `device` (a name, a TOML file, or a list of them; see
    `nmcompile.analysis.energy`), next to the ANN baselines.

    Measured: run `spikes` (T, batch, *shape) on `backend` (the emulator for a quantised
    graph, the float interpreter for a float one). Analytic: give `rates` instead (one rate
    for every layer, or a mapping by layer name with "default") and `steps`, `samples`.
    `raster=True` keeps the first sample's spikes for `Estimate.plot`; `backend_options` go
    to the backend's `run` (e.g. `{"simulator": "verilator"}` for verilog).
    """
    from ..runtime import is_quantized, run

    devices = load_devices(device, device_paths)
    base = baselines(device_paths)
    g = hardware_view(graph)
    name = model or str(graph.metadata.get("name", "model"))
    if rates is not None:
        counts = analytic(g, _steps(g, spikes, steps), rates, samples)
        return Estimate(name, _noted(counts, [*devices, *base]), devices, base,
                        rates=layer_rates(g, rates))
    if spikes is None:
        raise NmcompileError("estimate needs input spikes, or firing rates (rates=...) for an "
                             "analytic estimate")
    quantized = is_quantized(g)
    inputs, T, B = normalize_inputs(g, spikes, g.validate(), integers=quantized)
    backend = backend or ("emulator" if quantized else "float")
    options = dict(backend_options or {})
    result = run(g, inputs, backend=backend, record=backend != "emulator", **options)
    counts = _noted(from_result(g, inputs, result, T, B), [*devices, *base])
    est = Estimate(name, counts, devices, base,
                   dropped=dict(g.metadata.get("quantization", {}).get("dropped_synapses", {})))
    if raster:
        first = result if result.spikes else run(
            g, {k: v[:, :1] for k, v in inputs.items()}, backend=backend, record=True,
            **options)
        est.raster = {k: np.asarray(v)[:, 0].reshape(T, -1) for k, v in inputs.items()}
        est.raster |= {k: v[:, 0].reshape(T, -1) for k, v in first.spikes.items()}
    return est
