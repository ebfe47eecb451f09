"""The caller's input arrays, checked against a graph's Input nodes (shared by every runner)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..errors import LimitError, NmcompileError, ShapeError
from ..limits import check_bytes
from .graph import Graph
from .node import Shape


def normalize_inputs(graph: Graph, inputs: np.ndarray | Mapping[str, np.ndarray],
                     shapes: Mapping[str, Shape], *, integers: bool = False
                     ) -> tuple[dict[str, np.ndarray], int, int]:
    """Check inputs (T, batch, *shape), or a dict of them by input name; return them by name
    with T and batch. `integers`: refuse non-integral values (the fixed-point targets)."""
    names = graph.inputs
    if not isinstance(inputs, Mapping):
        if len(names) != 1:
            raise NmcompileError(f"the graph has inputs {names}: pass a dict by input name")
        inputs = {names[0]: inputs}
    if set(inputs) != set(names):
        raise NmcompileError(f"inputs given for {sorted(inputs)}, the graph's inputs are {names}")
    out, dims = {}, set()
    for name in names:
        arr = _checked_values(name, inputs[name], integers)
        want = tuple(shapes[name])
        if arr.ndim != len(want) + 2 or tuple(arr.shape[2:]) != want:
            raise ShapeError(f"input {name!r}: expected an array (T, batch, "
                             f"{', '.join(map(str, want))}), got shape {arr.shape}")
        if arr.shape[0] < 1 or arr.shape[1] < 1:
            raise ShapeError(f"input {name!r}: T and batch must be at least 1, got {arr.shape[:2]}")
        out[name] = arr
        dims.add(arr.shape[:2])
    if len(dims) != 1:
        raise ShapeError(f"inputs disagree on (T, batch): {sorted(dims)}")
    T, batch = dims.pop()
    steps = graph.metadata.get("encoding", {}).get("num_steps")
    if isinstance(steps, int) and steps != T and batch == steps:
        raise ShapeError(f"the input looks batch-first: shape (T, batch) = ({T}, {batch}), and "
                         f"the model was trained on {steps} steps; nmcompile takes (T, batch, "
                         f"...): transpose it (np.swapaxes(x, 0, 1)), or on the CLI pass "
                         f"--layout BTC")
    return out, T, batch


#: Largest |value| an input may carry to a fixed-point target: integers exact in float64
#: (the emulator's BLAS route) and in int64. Spikes are 0/1; graded inputs are small integers.
MAX_GRADED = 2**53


def _checked_values(name: str, value: object, integers: bool) -> np.ndarray:
    """One input as a numeric array of finite values (integers within `MAX_GRADED` for the
    fixed-point targets), or an error naming the input: never a silent cast (inf would
    become -2^63, a uint64 2^63 would wrap)."""
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise NmcompileError(f"input {name!r}: not a numeric array ({exc})") from None
    if arr.dtype.kind not in "biuf":  # complex, datetime, timedelta, str, bytes, object, void
        raise NmcompileError(f"input {name!r}: expected a numeric array (bool, int, uint or "
                             f"float), got dtype {arr.dtype}")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise NmcompileError(f"input {name!r}: holds non-finite values (nan or inf); spikes "
                             f"and inputs must be finite numbers")
    if not integers:
        return arr
    if arr.dtype.kind == "f" and not np.array_equal(arr, np.rint(arr)):
        raise NmcompileError(f"input {name!r}: fixed-point targets take integer spikes or "
                             f"graded integers, got non-integer values")
    if arr.size and arr.dtype.kind != "b":
        lo, hi = int(arr.min()), int(arr.max())  # Python ints: np.abs(-2^63) overflows
        if max(-lo, hi) > MAX_GRADED:
            raise LimitError(f"input {name!r}: values in [{lo}, {hi}] exceed what the "
                             f"fixed-point targets take (|x| <= 2^53); spikes are 0/1, "
                             f"graded inputs small integers")
    return arr


def check_activity(T: int, batch: int, shapes: Mapping[str, Shape], record: bool,
                   max_bytes: int | None = None) -> None:
    """Refuse, before allocating, a run whose per-step activity (8 bytes a value, three
    times over when traces are recorded) would exceed the memory budget (`nmcompile.limits`)."""
    planned = 8 * T * batch * sum(int(np.prod(s)) for s in shapes.values()) * (3 if record else 1)
    check_bytes(planned, f"running {T} steps of batch {batch} ({'with' if record else 'no'} "
                f"traces)", max_bytes, fix="run a smaller batch or fewer steps")


def delayed(x: np.ndarray, d: int) -> np.ndarray:
    """x (T, ...) seen through an edge of delay d: step t holds x[t - d], zeros before."""
    if d == 0:
        return x
    out = np.zeros_like(x)
    if d < len(x):
        out[d:] = x[:len(x) - d]
    return out
