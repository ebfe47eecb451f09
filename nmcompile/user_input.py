"""The user's own input data for every CLI verb (`--input`): one reader, `read_input`.

`--input` takes one of (docs/inputs.md has an example of each):
- `FILE.npy`: one array of spikes (T, batch, *shape), for a model with one input;
- `FILE.npz` of arrays named by the model's inputs, plus optionally `labels` (batch,) of
  integer classes (verify then reports accuracy);
- `FILE.npz` of events: 1-D arrays `x`, `y`, `t`, `p` of every sample's events one after
  the other, with `offsets` (B + 1 indices: sample b is events offsets[b]:offsets[b + 1]) or
  `sample` (one sample index per event) to split them (neither: one sample), and optionally
  `labels` (B,), `sensor_size` ([W, H] or [W, H, P]; default: the model's input shape
  (P, H, W)), `num_steps` or `dt_us` (the binning, when the caller gives none). The events
  are binned by `nmcompile.events.bin_events` to the model's input shape;
- `tonic:NAME:FOLDER` or `tonic:NAME:SPLIT:FOLDER` (SPLIT `train` or `test`): the tonic data
  set NAME (`NMNIST`, ...) already on disk in FOLDER, binned the same way; never downloaded.

Arrays are read in bounded memory without pickle (`nmcompile.ir.npy`: headers checked before
anything is allocated, only numeric dtypes); `layout="BTC"` swaps batch-first arrays to
nmcompile's (T, batch, ...). The check that refuses a batch-first array against the model's
recorded `encoding.num_steps` is `nmcompile.ir.inputs.normalize_inputs`, run on these arrays
by every runner: it is not repeated here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import NmcompileError, ShapeError

#: Bytes of arrays an --input file may hold (checked from its headers before reading).
MAX_INPUT_BYTES = 4 << 30
LAYOUTS = ("TBC", "BTC")
TONIC_PREFIX = "tonic:"
#: The arrays an events `.npz` may hold.
EVENT_KEYS = frozenset({"x", "y", "t", "p", "offsets", "sample", "labels", "sensor_size",
                        "num_steps", "dt_us"})

Spikes = np.ndarray | dict[str, np.ndarray]
Shapes = Mapping[str, tuple[int, ...]]


@dataclass(frozen=True)
class UserInput:
    """What `--input` gave: spikes (T, batch, *shape), or a dict of them by input name;
    labels (batch,) int64 or None; `kind` ("arrays", "events" or "tonic") and `source`, a
    short description for the output and the JSON ("file x.npz (T=25, B=32)")."""

    spikes: Spikes
    labels: np.ndarray | None
    source: str
    kind: str

    def to_json(self) -> dict[str, object]:
        """The `input` entry of a verb's JSON (the keys `_input_source` writes)."""
        return {"kind": self.kind, "random": False, "description": self.source}


def read_input(path: str | os.PathLike, layout: str = "TBC", input_shapes: Shapes | None = None,
               num_steps: int | None = None, dt_us: float | None = None, *,
               default_steps: int | None = None, n: int | None = None, split: str = "test",
               allow_empty: bool = False, max_bytes: int = MAX_INPUT_BYTES) -> UserInput:
    """Read `--input PATH` (the formats of the module's docstring) for a model whose inputs
    have `input_shapes` ({name: shape}; needed for events, whose frames take the input's
    shape). `layout`: "TBC" (the default) or "BTC" for batch-first arrays.

    Events are binned by, first found: `num_steps` or `dt_us` (the caller's, exactly one),
    the `num_steps` or `dt_us` an events file stores, `default_steps` (the model's recorded
    `encoding.num_steps`); spike arrays take no binning (`num_steps`/`dt_us` are refused
    there). `n`: the first n samples only. `split`: a tonic data set's split when the spec
    names none."""
    if layout not in LAYOUTS:
        raise NmcompileError(f"layout {layout!r}: give TBC (T, batch, ...) or BTC (batch first)")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise NmcompileError(f"n = {n!r}: give the number of samples to read (>= 1)")
    text = os.fspath(path)
    if text.startswith(TONIC_PREFIX):
        _events_only(layout, text)
        if num_steps is None and dt_us is None:
            num_steps = default_steps
        return _tonic(text, input_shapes, num_steps, dt_us, n, split, allow_empty, max_bytes)
    from .ir import npy

    file = Path(text)
    if file.is_dir():
        raise NmcompileError(f"--input {text}: a folder; give a .npy or .npz file, or a tonic "
                             f"data set folder as tonic:NAME:FOLDER (e.g. tonic:NMNIST:{text})")
    if not file.is_file():
        raise NmcompileError(f"--input {text}: no such file")
    data = npy.load(file, max_bytes)
    if isinstance(data, dict) and _holds_events(data, input_shapes):
        _events_only(layout, text)
        return _events_file(data, text, input_shapes, num_steps, dt_us, default_steps, n,
                            allow_empty)
    if num_steps is not None or dt_us is not None:
        raise NmcompileError(f"--input {text} holds spike arrays, not events: num_steps and "
                             f"dt_us bin events only; drop them (the arrays' first axis is T)")
    return _arrays(data, text, layout, input_shapes, n)


def _events_only(layout: str, text: str) -> None:
    if layout != "TBC":
        raise NmcompileError(f"--input {text}: event data has no axes to swap; it is binned to "
                             f"(T, batch, ...) directly: drop --layout {layout}")


# ---- arrays -----------------------------------------------------------------------------------


def _holds_events(data: dict[str, np.ndarray], shapes: Shapes | None) -> bool:
    """An `.npz` of events: x and t, only EVENT_KEYS, and not exactly the model's inputs."""
    keys = set(data)
    if shapes is not None and keys - {"labels"} == set(shapes):
        return False
    return {"x", "t"} <= keys <= EVENT_KEYS


def _arrays(data: np.ndarray | dict[str, np.ndarray], text: str, layout: str,
            shapes: Shapes | None, n: int | None) -> UserInput:
    """A `.npy` array or an `.npz` of arrays by input name (and `labels`), as (T, batch, ...)."""
    arrays = dict(data) if isinstance(data, dict) else {"": data}
    label_key = "labels" if shapes is None or "labels" not in shapes else None
    labels = arrays.pop(label_key, None) if label_key else None
    if not arrays:
        raise NmcompileError(f"--input {text}: holds no spike arrays, only labels; store the "
                             f"spikes by input name next to them")
    for name, arr in arrays.items():
        if arr.ndim < 2:
            what = f"array {name!r}" if name else "the array"
            raise ShapeError(f"--input {text}: {what} has shape {arr.shape}; spikes are "
                             f"(T, batch, *shape) (or batch first with --layout BTC)")
    if layout == "BTC":
        arrays = {k: v.swapaxes(0, 1) for k, v in arrays.items()}
    if labels is not None:  # checked against the whole batch, then cut with it
        labels = _labels(labels, next(iter(arrays.values())).shape[1], text)[:n]
    if n is not None:
        arrays = {k: v[:, :n] for k, v in arrays.items()}
    T, B = next(iter(arrays.values())).shape[:2]
    spikes: Spikes = arrays.get("", arrays)
    return UserInput(spikes, labels, f"file {text} (T={T}, B={B}"
                     + (", labels)" if labels is not None else ")"), "arrays")


def _labels(labels: np.ndarray, batch: int, text: str) -> np.ndarray:
    """`labels`: 1-D integers, one per sample."""
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise NmcompileError(f"--input {text}: labels has dtype {labels.dtype} and shape "
                             f"{labels.shape}; store one integer class per sample (shape "
                             f"(batch,))")
    if len(labels) != batch:
        raise ShapeError(f"--input {text}: {len(labels)} labels for {batch} samples; store one "
                         f"label per sample (with --layout BTC batch is the first axis)")
    return labels.astype(np.int64)


# ---- events -----------------------------------------------------------------------------------


def _scalar(data: dict[str, np.ndarray], key: str, text: str) -> float | None:
    if key not in data:
        return None
    arr = data[key]
    if arr.size != 1:
        raise NmcompileError(f"--input {text}: {key} holds {arr.size} values; store one number")
    value = arr.reshape(-1)[0].item()
    return int(value) if key == "num_steps" and float(value).is_integer() else value


def _split(data: dict[str, np.ndarray], text: str) -> list[dict[str, np.ndarray]]:
    """The events of each sample: by `offsets` (B + 1 non-decreasing indices from 0 to the
    number of events), by `sample` (one index per event, samples 0..B-1), or one sample."""
    fields = {k: data[k] for k in ("x", "y", "t", "p") if k in data}
    count = len(data["t"])
    if "offsets" in data and "sample" in data:
        raise NmcompileError(f"--input {text}: holds both offsets and sample; store one")
    if "offsets" in data:
        off = data["offsets"]
        if (off.ndim != 1 or off.dtype.kind not in "iu" or len(off) < 2 or off[0] != 0
                or off[-1] != count or (np.diff(off.astype(np.int64)) < 0).any()):
            raise NmcompileError(f"--input {text}: offsets must be B + 1 non-decreasing "
                                 f"integers from 0 to the number of events ({count}): sample "
                                 f"b is events offsets[b]:offsets[b + 1]")
        return [{k: v[a:b] for k, v in fields.items()}
                for a, b in zip(off[:-1].tolist(), off[1:].tolist(), strict=True)]
    if "sample" in data:
        idx = data["sample"]
        if idx.ndim != 1 or idx.dtype.kind not in "iu" or len(idx) != count or (
                count and idx.min() < 0):
            raise NmcompileError(f"--input {text}: sample must hold one integer sample index "
                                 f">= 0 per event ({count} events)")
        batch = int(idx.max()) + 1 if count else 1
        order = np.argsort(idx, kind="stable")  # keeps each sample's events in time order
        bounds = np.searchsorted(idx[order], np.arange(batch + 1))
        return [{k: v[order[a:b]] for k, v in fields.items()}
                for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True)]
    return [fields]


def _only_input(shapes: Shapes | None, text: str) -> tuple[str, tuple[int, ...]] | None:
    if shapes is None:
        return None
    if len(shapes) != 1:
        raise NmcompileError(f"--input {text}: event data feeds one input, the model has "
                             f"{sorted(shapes)}; give an .npz of spike arrays by input name")
    name = next(iter(shapes))
    return name, tuple(int(d) for d in shapes[name])


def _sensor_of(data: dict[str, np.ndarray], target: tuple[str, tuple[int, ...]] | None,
               text: str):
    from .events import sensor

    if "sensor_size" in data:
        return sensor(data["sensor_size"])
    if target is not None and len(target[1]) == 3:
        P, H, W = target[1]
        return sensor((W, H, P))
    shape = f"the model's input shape {target[1]} is not" if target else "no input shape is"
    raise NmcompileError(f"--input {text}: no sensor_size stored and {shape} (P, H, W): store "
                         f"sensor_size=[W, H, P] (e.g. [34, 34, 2]) in the file")


def _events_file(data: dict[str, np.ndarray], text: str, shapes: Shapes | None,
                 num_steps: int | None, dt_us: float | None, default_steps: int | None,
                 n: int | None, allow_empty: bool) -> UserInput:
    from .events import bin_events, fit_frames

    if num_steps is None and dt_us is None:
        num_steps, dt_us = _scalar(data, "num_steps", text), _scalar(data, "dt_us", text)
    if num_steps is None and dt_us is None:
        num_steps = default_steps
    target = _only_input(shapes, text)
    s = _sensor_of(data, target, text)
    samples = _split(data, text)
    labels = data.get("labels")
    if labels is not None:
        labels = _labels(labels, len(samples), text)
    if n is not None:
        samples, labels = samples[:n], None if labels is None else labels[:n]
    frames = bin_events(samples, s, num_steps, dt_us, allow_empty=allow_empty,
                        what=f"--input {text}")
    T, B = frames.shape[:2]
    spikes = fit_frames(frames, s, target[1], target[0]) if target else frames
    return UserInput(spikes, labels, f"events {text} binned to T={T} steps (B={B}, sensor "
                     f"{s}" + (", labels)" if labels is not None else ")"), "events")


# ---- tonic ------------------------------------------------------------------------------------


def parse_tonic(spec: str) -> tuple[str, str | None, str]:
    """`tonic:NAME:FOLDER` or `tonic:NAME:SPLIT:FOLDER` -> (NAME, SPLIT or None, FOLDER)."""
    name, _, rest = spec[len(TONIC_PREFIX):].partition(":")
    head, sep, tail = rest.partition(":")
    split, folder = (head, tail) if sep and head in ("train", "test") else (None, rest)
    if not name or not folder:
        raise NmcompileError(f"--input {spec}: give a tonic data set as tonic:NAME:FOLDER or "
                             f"tonic:NAME:SPLIT:FOLDER (e.g. tonic:NMNIST:test:data)")
    return name, split, folder


def _tonic(spec: str, shapes: Shapes | None, num_steps: int | None, dt_us: float | None,
           n: int | None, split: str, allow_empty: bool, max_bytes: int) -> UserInput:
    from .events import fit_frames, read_tonic

    name, named, folder = parse_tonic(spec)
    split = named or split
    if split not in ("train", "test"):
        raise NmcompileError(f"split {split!r}: give train or test")
    target = _only_input(shapes, spec)
    data = read_tonic(name, folder, split == "train", n, num_steps, dt_us,
                      allow_empty=allow_empty, max_bytes=max_bytes)
    T, B = data.spikes.shape[:2]
    spikes = fit_frames(data.spikes, data.sensor, target[1], target[0]) if target else \
        data.spikes
    return UserInput(spikes, data.labels, f"tonic {name} {split} split in {data.location} "
                     f"(first {B} of {data.count} samples, T={T}, sensor {data.sensor})",
                     "tonic")
