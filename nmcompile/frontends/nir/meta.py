"""What nmcompile writes into a NIR file's metadata, and reads back.

NIR has no time step, no reset-by-subtraction and no scalar parameters, and its time constants
are not the IR's per-step factors: `1 - dt / (dt / (1 - beta))` is not always `beta` in
floating point. So `to_nir` also stores, under the key "nmcompile":

- on the graph: {"format": 1, "dt": seconds, "reset": "zero" | "subtract" | "mixed" | "none",
  "graph_metadata": the IR graph's metadata as a JSON string} (nir.write treats any key
  named "metadata" as a group, so not that name);
- on each node: {"type": IR type name, "params": its non-array parameters as JSON (floats
  round-trip exactly through Python's JSON), "arrays": its neuron/scale arrays (float64)}.

Weights are not duplicated: NIR stores them exactly. Any NIR reader ignores these keys; a
reader of the NIR parameters alone gets the same network up to float rounding.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from ...errors import FormatError
from ...ir import Node, Scale
from ...ir.neurons import Neuron

KEY = "nmcompile"
FORMAT_VERSION = 1


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    return value


def node_meta(node: Node) -> dict[str, Any]:
    """The metadata entry for one IR node."""
    params = node.params()
    keep_arrays = isinstance(node, (Neuron, Scale))
    scalars = {k: _plain(v) for k, v in params.items() if not isinstance(v, np.ndarray)}
    arrays = {k: np.array(v, dtype=np.float64) for k, v in params.items()
              if isinstance(v, np.ndarray) and keep_arrays}
    return {KEY: {"type": type(node).__name__, "params": json.dumps(scalars),
                  "arrays": arrays}}


def graph_meta(dt: float, reset: str, metadata: dict[str, Any]) -> dict[str, Any]:
    try:
        text = json.dumps(metadata)
    except (TypeError, ValueError) as exc:
        raise FormatError(f"the graph's metadata is not JSON data ({exc}); NIR export stores "
                          f"it as JSON") from None
    return {KEY: {"format": FORMAT_VERSION, "dt": float(dt), "reset": reset,
                  "graph_metadata": text}}


def graph_info(metadata: Any) -> dict[str, Any] | None:
    """{"dt", "reset", "metadata"} from a NIR graph written by nmcompile, else None."""
    entry = metadata.get(KEY) if isinstance(metadata, dict) else None
    if not isinstance(entry, dict) or "dt" not in entry:
        return None
    try:
        version = int(np.asarray(entry.get("format", FORMAT_VERSION)))
        if version > FORMAT_VERSION:
            raise FormatError(f"NIR file written by a newer nmcompile (format {version}); "
                              f"update nmcompile")
        inner = json.loads(str(entry.get("graph_metadata", "{}")))
        return {"dt": float(np.asarray(entry["dt"])), "reset": str(entry.get("reset", "")),
                "metadata": inner if isinstance(inner, dict) else {}}
    except (TypeError, ValueError):
        return None


def stored_params(meta: Any) -> dict[str, Any] | None:
    """The JSON parameters `node_meta` stored, or None when absent or malformed."""
    try:
        values = json.loads(str(meta.get("params", "{}")))
    except (ValueError, AttributeError):  # AttributeError: no metadata dict at all
        return None
    return values if isinstance(values, dict) else None


def exact_params(meta: Any) -> tuple[str, dict[str, Any]] | None:
    """(IR type name, parameters) stored by `node_meta`, or None when absent or malformed."""
    if not isinstance(meta, dict) or "type" not in meta:
        return None
    values = stored_params(meta)
    if values is None:
        return None
    arrays = meta.get("arrays", {})
    if isinstance(arrays, dict):
        values.update({k: np.array(v, dtype=np.float64) for k, v in arrays.items()})
    return str(meta["type"]), values
