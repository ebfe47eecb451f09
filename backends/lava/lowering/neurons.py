"""Neuron layers: stock Lava `LIF` where it computes the IR node exactly, else `FixedNeuron`.

Lava 0.10's `LIF` (`PyLifModelBitAcc`) is the IR's `QLIF` with reset to zero, but it takes
`du`, `dv` and `vth` as one scalar per process. Everything else gets this backend's
bit-accurate `FixedNeuron` (see `backends/lava/models.py`), which reuses Lava's own fixed-point
sub-threshold update and differs only where the IR does:
- per-neuron `du`, `dv` or `vth`;
- reset by subtraction (Lava has no such LIF);
- `QALIF`: Lava's `ATRLIF` is not the IR's adaptive threshold (it spikes on `>=`, never resets
  v, and its threshold adaptation has its own dynamics), so it cannot stand in for it;
- `QLI`: a non-spiking readout that emits v every step.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nmcompile.ir.quantized import QALIF, QLI, QLIF

from ..plan import ProcSpec

#: LIFReset clears u and v when `time_step % reset_interval == reset_offset`: one reset per
#: run as long as runs are shorter than this.
RESET_INTERVAL = 1 << 30


def per_neuron(value: Any, shape: tuple[int, ...], perm: np.ndarray) -> np.ndarray:
    """A scalar or per-neuron IR parameter as one int64 per neuron, in Lava order."""
    full = np.broadcast_to(np.asarray(value, dtype=np.int64), shape).reshape(-1)
    return np.ascontiguousarray(full[perm])


def _uniform(values: np.ndarray) -> bool:
    return values.size == 0 or bool(np.all(values == values.flat[0]))


def _compact(values: np.ndarray) -> int | np.ndarray:
    """An int when every neuron has the same value (readable generated code), else the array."""
    return int(values.flat[0]) if values.size and _uniform(values) else values


def custom_reasons(node: Any, params: dict[str, np.ndarray]) -> list[str]:
    """Why a neuron node needs `FixedNeuron` rather than stock `LIF` (empty: stock)."""
    if isinstance(node, QLI):
        return ["non-spiking LI readout (emits v)"]
    if isinstance(node, QALIF):
        return ["adaptive threshold (Lava's ATRLIF spikes on >=, never resets v)"]
    reasons = []
    if node.reset == "subtract":
        reasons.append("reset by subtraction")
    varying = [k for k in ("du", "dv", "vth") if not _uniform(params[k])]
    if varying:
        reasons.append(f"per-neuron {', '.join(varying)} (Lava's LIF takes scalars)")
    return reasons


def neuron_params(node: Any, shape: tuple[int, ...], perm: np.ndarray) -> dict[str, np.ndarray]:
    fields = ["du", "dv", "bias_mant", "bias_exp"]
    if isinstance(node, (QLIF, QALIF)):
        fields.append("vth")
    if isinstance(node, QALIF):
        fields += ["vth_step", "da"]
    return {k: per_neuron(getattr(node, k), shape, perm) for k in fields}


def neuron_spec(name: str, node: Any, shape: tuple[int, ...], perm: np.ndarray,
                inputs: list[str], mode: str, depth: int, layer: str | None = None
                ) -> ProcSpec:
    """The process of the neurons `perm` (IR flat indices, in Lava order) of a layer of
    `shape`: all of them, or one piece (`layer` names the IR node; default `name`). `mode`
    is the layer's warm-up mode (see `warmup.py`): "plain" -> `LIF`, "reset" -> `LIFReset`
    cleared on its first IR step, "gated" -> `FixedNeuron` started then."""
    n = int(perm.size)
    layer = layer or name
    params = neuron_params(node, shape, perm)
    reasons = custom_reasons(node, params)
    if not reasons and mode != "gated":
        stock = {"n": n, "du": int(params["du"].flat[0]) if n else 0,
                 "dv": int(params["dv"].flat[0]) if n else 0,
                 "vth": int(params["vth"].flat[0]) if n else 0,
                 "bias_mant": _compact(params["bias_mant"]),
                 "bias_exp": _compact(params["bias_exp"])}
        if mode == "plain":
            return ProcSpec(name, "LIF", layer, stock, inputs)
        return ProcSpec(name, "LIFReset", layer, {
            **stock, "reset_interval": RESET_INTERVAL, "reset_offset": depth + 1}, inputs,
            note=f"state cleared on Lava step {depth + 1}, its first IR step (pipeline fill)")
    if not reasons:
        reasons = ["driven before its first IR step while a delayed edge leaves it: it must "
                   "stay silent until then"]
    full = {"n": n, "vth": 0, "vth_step": 0, "da": 0,
            **{k: _compact(v) for k, v in params.items()},
            "spiking": not isinstance(node, QLI), "adaptive": isinstance(node, QALIF),
            "subtract": getattr(node, "reset", "zero") == "subtract", "start": depth}
    return ProcSpec(name, "FixedNeuron", layer, full, inputs, note="; ".join(reasons))
