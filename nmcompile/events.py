"""Event-camera data (x, y, t, p) binned to spike frames, and `tonic` data sets read from disk.

An event is one pixel's brightness change: column `x`, row `y`, time `t` (any unit; tonic's
data sets use microseconds) and polarity `p` (0 off, 1 on; -1/1 and booleans are accepted).
`bin_events` turns a recording into frames (T, P, H, W), uint8, indexed
`frames[k, p, y, x]` (tonic's `ToFrame` layout), and a list of recordings into
(T, B, P, H, W): nmcompile's (T, batch, *shape). A frame bin is **binary**: 1 if at least one
event of that polarity hit that pixel in that time bin, else 0 (counts are clipped to 1,
because the targets take spikes, not graded inputs).

Time bins, either
- `num_steps=T`: each recording's own time range split evenly,
  `k = min(floor(T * (t - t[0]) / (t[-1] - t[0])), T - 1)` (all in bin 0 when
  `t[-1] == t[0]`), so the first event lies in bin 0 and the last in bin T - 1; or
- `dt_us=D`: bins of width D in t's unit from each recording's first event,
  `k = floor((t - t[0]) / D)`; T is the longest recording's `k[-1] + 1`, shorter ones end in
  empty bins.

Sizes are checked before anything is allocated (`nmcompile.datasets.check_size`): a huge
sensor, T or batch is a `LimitError`, not an out-of-memory crash.

`load_tonic(name, folder)` reads a tonic data set (`tonic.datasets.NMNIST`, or any class of
`tonic.datasets` whose samples are `(events, label)`) from a folder the user already holds:
nmcompile never downloads, and a folder without the data is an error saying what tonic
expects there.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import os
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import LimitError, NmcompileError, ShapeError

#: The fields of an event, in tonic's order.
FIELDS = ("x", "y", "t", "p")
#: Time bins (T) a recording may make; bounds a `dt_us` binning before its bins are counted
#: (T x B x P x H x W is bounded by `datasets.MAX_SPIKES` too).
MAX_BINS = 1 << 28
#: tonic releases this module is written and tested against (`load_tonic`).
TONIC_VERSION = "1.7.0"
#: Bytes of memory tonic's readers may hold per byte of a sample's file (N-MNIST: the file
#: as uint32, 4 bytes a byte, plus a structured array of 32 bytes per 5-byte event: ~11).
_READ_FACTOR = 16


class EventError(NmcompileError):
    """Event data that cannot be binned: a missing field, a bad coordinate, time or polarity."""


@dataclass(frozen=True)
class Sensor:
    """A sensor's size in tonic's order: width (the range of x), height (of y), polarities."""

    width: int
    height: int
    polarities: int = 2

    @property
    def frame(self) -> tuple[int, int, int]:
        """One time bin's shape: (P, H, W)."""
        return (self.polarities, self.height, self.width)

    def __str__(self) -> str:
        return f"{self.width}x{self.height}x{self.polarities}"


def sensor(size: Sensor | Sequence[int] | np.ndarray) -> Sensor:
    """`(W, H)` or `(W, H, P)` (tonic's `sensor_size`; P is 1 or 2, default 2) as a Sensor."""
    if isinstance(size, Sensor):
        return size
    dims = np.asarray(size, dtype=object).reshape(-1).tolist()
    if (len(dims) not in (2, 3)
            or not all(_is_int(d) and not isinstance(d, bool) and d >= 1 for d in dims)):
        raise EventError(f"sensor_size {size!r}: give (width, height) or (width, height, "
                         f"polarities) as positive integers, in tonic's order (x range first), "
                         f"e.g. (34, 34, 2) for N-MNIST")
    dims = [int(d) for d in dims]
    if len(dims) == 3 and dims[2] not in (1, 2):
        raise EventError(f"sensor_size {tuple(dims)}: polarities (its third entry) must be 1 "
                         f"(events of both polarities merged) or 2 (off and on)")
    return Sensor(*dims)


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) or (
        isinstance(value, float) and value.is_integer())


def _check_size(steps: int, batch: int, s: Sensor, what: str) -> None:
    """`datasets.check_size` (imported here: `nmcompile.datasets` loads PyTorch)."""
    from .datasets import check_size

    check_size(steps, batch, s.frame, what)


# ---- one recording: fields, checks, bins ------------------------------------------------------


def event_fields(events: Any, s: Sensor, where: str = "events") -> dict[str, np.ndarray]:
    """The 1-D arrays x, y, t, p of one recording: a numpy structured array with those fields
    (tonic's layout) or a mapping of four arrays (a dict, an `.npz`'s arrays). `y` may be
    missing when the sensor is one row high, `p` when it has one polarity (audio data sets:
    SHD is (700, 1, 1))."""
    if isinstance(events, np.ndarray) and events.dtype.names is not None:
        names, get = events.dtype.names, (lambda k: events[k])
    elif isinstance(events, Mapping):
        names, get = tuple(events), (lambda k: events[k])
    else:
        raise EventError(f"{where}: expected a structured array with fields x, y, t, p "
                         f"(tonic's layout) or a dict of four 1-D arrays named x, y, t, p, got "
                         f"{type(events).__name__}"
                         + (f" of dtype {events.dtype} and shape {events.shape}"
                            if isinstance(events, np.ndarray) else ""))
    optional = {"y": s.height == 1, "p": s.polarities == 1}
    missing = [k for k in FIELDS if k not in names and not optional.get(k, False)]
    if missing:
        raise EventError(f"{where}: no field {', '.join(missing)} (it has "
                         f"{', '.join(names) or 'none'}); events need x, y, t and p (columns, "
                         f"rows, times, polarities): rename the fields or arrays to those")
    out = {}
    for k in FIELDS:
        if k not in names:
            continue
        arr = np.asarray(get(k))
        if arr.ndim != 1:
            raise EventError(f"{where}: field {k} has shape {arr.shape}; each field is a 1-D "
                             f"array of one value per event")
        if arr.dtype.kind not in "biuf":
            raise EventError(f"{where}: field {k} has dtype {arr.dtype}; give numbers")
        out[k] = arr
    sizes = {k: len(v) for k, v in out.items()}
    if len(set(sizes.values())) > 1:
        raise EventError(f"{where}: the fields have different lengths {sizes}; each holds one "
                         f"value per event")
    return out


def _coordinate(values: np.ndarray, size: int, field: str, entry: str, where: str
                ) -> np.ndarray:
    """A column or row index array, checked to be integers in [0, size)."""
    if values.dtype.kind == "f":
        bad = ~np.isfinite(values) | (values != np.floor(values))
        if bad.any():
            i = int(np.argmax(bad))
            raise EventError(f"{where}: {field} = {values[i]!r} at event {i} is not an integer "
                             f"pixel index; round the coordinates first "
                             f"(np.floor({field}).astype(int))")
    if values.size:
        lo, hi = values.min(), values.max()
        if lo < 0 or hi >= size:
            i = int(np.argmax((values < 0) | (values >= size)))
            raise EventError(f"{where}: {field} = {values[i]} at event {i} is outside "
                             f"[0, {size}), the sensor's {entry}; pass the sensor's real size "
                             f"(sensor_size) or drop those events "
                             f"(events[(events['{field}'] >= 0) & (events['{field}'] < {size})])")
    return values.astype(np.int64)


def _polarity(values: np.ndarray | None, n: int, where: str) -> np.ndarray:
    """Polarities as 0 (off) / 1 (on), from {0, 1}, {-1, 1} or booleans."""
    if values is None:
        return np.zeros(n, np.int64)
    on = values == 1
    if values.dtype.kind == "b" or (on | (values == 0)).all() or (on | (values == -1)).all():
        return on.astype(np.int64)
    bad = ~(on | (values == 0) | (values == -1))
    i = int(np.argmax(bad)) if bad.any() else int(np.argmax(values == -1))
    raise EventError(f"{where}: p = {values[i]!r} at event {i}; polarities are 0/1, -1/1 or "
                     f"booleans (off/on), not other values nor a mix of 0 and -1: map them "
                     f"first (p = (p > 0).astype(int))")


def _times(t: np.ndarray, where: str) -> np.ndarray:
    """Times, checked finite and non-decreasing (tonic's recordings are sorted by t)."""
    if t.dtype.kind == "f" and not np.isfinite(t).all():
        i = int(np.argmax(~np.isfinite(t)))
        raise EventError(f"{where}: t = {t[i]} at event {i}; times must be finite numbers")
    if t.dtype.kind == "u" and t.size and t.max() > np.iinfo(np.int64).max:
        raise EventError(f"{where}: t holds values above 2^63 - 1; subtract the first time")
    if t.dtype.kind in "bu":
        t = t.astype(np.int64)
    if t.size > 1 and (back := np.diff(t) < 0).any():
        i = int(np.argmax(back)) + 1
        raise EventError(f"{where}: t goes back from {t[i - 1]} to {t[i]} at event {i}; events "
                         f"must be sorted by time: sort them first "
                         f"(events[np.argsort(events['t'], kind='stable')])")
    return t


def _even_bins(t: np.ndarray, num_steps: int) -> np.ndarray:
    """`k = min(floor(T (t - t0) / (t1 - t0)), T - 1)`: exact in integers when it fits."""
    t0, span = t[0], t[-1] - t[0]
    if span == 0:
        return np.zeros(len(t), np.int64)
    if t.dtype.kind == "i" and int(span) * num_steps < 2**62:
        k = (t - t0) * num_steps // span  # exact integer floor
    else:
        k = np.floor((t.astype(np.float64) - float(t0)) * num_steps / float(span))
    return np.minimum(k.astype(np.int64), num_steps - 1)


def _width_bins(t: np.ndarray, dt_us: float) -> np.ndarray:
    """`k = floor((t - t0) / D)`: exact in integers when t and D are integers."""
    if t.dtype.kind == "i" and float(dt_us).is_integer():
        return (t - t[0]) // int(dt_us)
    return np.floor((t.astype(np.float64) - float(t[0])) / float(dt_us)).astype(np.int64)


def _binning(num_steps: object, dt_us: object) -> tuple[int | None, float | None]:
    """Exactly one of num_steps (an integer >= 1) and dt_us (a number > 0)."""
    if (num_steps is None) == (dt_us is None):
        raise EventError("events are binned by a number of steps or by a bin width: pass "
                         "exactly one of num_steps (e.g. the model's encoding.num_steps) and "
                         "dt_us (a bin width in the unit of t, microseconds for tonic)")
    if num_steps is not None:
        if isinstance(num_steps, bool) or not _is_int(num_steps) or int(num_steps) < 1:
            raise EventError(f"num_steps = {num_steps!r}: give an integer of at least 1")
        return int(num_steps), None
    if (isinstance(dt_us, bool) or not isinstance(dt_us, (int, float, np.number))
            or not math.isfinite(float(dt_us)) or float(dt_us) <= 0):
        raise EventError(f"dt_us = {dt_us!r}: give a bin width > 0 in the unit of t")
    return None, float(dt_us)


@dataclass(frozen=True)
class _Binned:
    """One recording's active bins: flat indices `k * P*H*W + p * H*W + y * W + x`."""

    flat: np.ndarray
    steps: int  # its own T: k[-1] + 1 (0 for an empty recording)


def _bin_one(events: Any, s: Sensor, num_steps: int | None, dt_us: float | None,
             batch: int, where: str, allow_empty: bool) -> _Binned:
    fields = event_fields(events, s, where)
    t = _times(fields["t"], where)
    if t.size == 0:
        if not allow_empty:
            raise EventError(f"{where}: no events (t is empty), nothing to bin; drop the "
                             f"recording, or pass allow_empty=True for all-zero frames")
        return _Binned(np.zeros(0, np.int64), 0)
    x = _coordinate(fields["x"], s.width, "x", "width (sensor_size[0])", where)
    y = (_coordinate(fields["y"], s.height, "y", "height (sensor_size[1])", where)
         if "y" in fields else np.zeros(t.size, np.int64))
    p = _polarity(fields.get("p"), t.size, where)
    if s.polarities == 1:
        p = np.zeros_like(p)  # one channel: events of both polarities land in it
    if dt_us is not None:  # T follows from the data: bounded before anything is built on it
        span = float(t[-1]) - float(t[0])
        if span / dt_us >= MAX_BINS:
            raise LimitError(f"{where}: {span:g} time units in bins of dt_us={dt_us:g} are "
                             f"{span / dt_us:.3g} time bins, more than {MAX_BINS:,}; pass a "
                             f"wider dt_us or num_steps")
        _check_size(math.floor(span / dt_us) + 1, batch, s, f"{where}: {span:g} time units "
                    f"in bins of dt_us={dt_us:g}")
    k = _even_bins(t, num_steps) if num_steps is not None else _width_bins(t, dt_us)
    steps = int(k[-1]) + 1
    flat = ((k * s.polarities + p) * s.height + y) * s.width + x
    return _Binned(np.unique(flat), steps)


def _frames(binned: Sequence[_Binned], s: Sensor, steps: int) -> np.ndarray:
    """(T, B, P, H, W) uint8, 1 at every active bin."""
    frame = s.polarities * s.height * s.width
    out = np.zeros((steps, len(binned), frame), np.uint8)
    for b, one in enumerate(binned):
        out[one.flat // frame, b, one.flat % frame] = 1
    return out.reshape(steps, len(binned), *s.frame)


def _bin_many(samples: Iterable[Any], count: int, s: Sensor, num_steps: int | None,
              dt_us: float | None, allow_empty: bool, what: str) -> np.ndarray:
    """`count` recordings, binned one at a time to (T, count, P, H, W)."""
    _check_size(num_steps or 1, count, s, f"{what} (sensor_size {s}, {count} samples)")
    binned: list[_Binned] = []
    for b, events in enumerate(samples):
        where = f"{what}, sample {b}" if count > 1 else what
        binned.append(_bin_one(events, s, num_steps, dt_us, count, where, allow_empty))
    if len(binned) != count:
        raise EventError(f"{what}: {len(binned)} samples read, {count} expected")
    steps = num_steps or max(one.steps for one in binned)
    if steps == 0:
        raise EventError(f"{what}: every sample is empty: with dt_us there is no time range "
                         f"to bin; pass num_steps")
    _check_size(steps, count, s, f"{what} (sensor_size {s}, {count} samples)")
    return _frames(binned, s, steps)


def bin_events(events: Any, sensor_size: Sensor | Sequence[int], num_steps: int | None = None,
               dt_us: float | None = None, *, allow_empty: bool = False,
               what: str = "events") -> np.ndarray:
    """Bin one recording to frames (T, P, H, W), or a list of them to (T, B, P, H, W), uint8.

    `events`: a numpy structured array with fields x, y, t, p (tonic's layout), a mapping of
    four 1-D arrays named so (a dict, an `.npz`'s arrays), or a list or tuple of those (one
    per sample; all share T). `sensor_size`: (W, H) or (W, H, P), tonic's order. Exactly one
    of `num_steps` (each recording's time range split evenly into T bins) and `dt_us` (bins
    of that width in t's unit; T is the longest recording's) — the equations are in the
    module's docstring. `frames[k, p, y, x] = 1` iff at least one event of polarity p hit
    pixel (x, y) in bin k: counts are clipped to 1. With one polarity (P = 1) both
    polarities land in channel 0.

    Raises `EventError` naming the field and the fix for a missing field, a coordinate
    outside the sensor or not an integer, unsorted or non-finite t, a polarity other than
    0/1, -1/1 or bool, or an empty recording (unless `allow_empty`); `LimitError` before
    allocating when T x B x P x H x W exceeds `datasets.MAX_SPIKES`.
    """
    s = sensor(sensor_size)
    steps, width = _binning(num_steps, dt_us)
    if isinstance(events, (list, tuple)):
        if not events:
            raise EventError(f"{what}: an empty list of samples; give at least one recording")
        return _bin_many(events, len(events), s, steps, width, allow_empty, what)
    return _bin_many([events], 1, s, steps, width, allow_empty, what)[:, 0]


# ---- tonic data sets on disk ------------------------------------------------------------------


#: What tonic's reader of a data set expects in its folder, for the error when it is missing.
_EXPECTS = {
    "NMNIST": "{loc}/{zip} (the downloaded archive; tonic checks only that it exists) and the "
              "{split} folder extracted from it, {loc}/{folder}/<digit>/<id>.bin (tonic "
              "looks for at least 10,000 .bin files: the whole split)",
}


def _refuse_download(location: str, name: str, expects: str):
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise NmcompileError(f"tonic's {name} found no data in {location} and would download "
                             f"it; nmcompile never downloads: put the data set there as "
                             f"tonic's own download leaves it ({expects}), or give the folder "
                             f"that holds it")
    return refuse


@contextlib.contextmanager
def _no_downloads(cls: type, refuse: Any) -> Iterator[None]:
    """Every download helper that the data set's module and `tonic.download_utils` hold
    refuses while the block runs (a class may call them from `_check_exists`, not only from
    `download`): the class's own download methods are overridden by the caller."""
    import tonic.download_utils as utils

    modules = {utils, *(sys.modules[c.__module__] for c in cls.__mro__
                        if c.__module__.split(".")[0] == "tonic")}
    saved = [(m, k, getattr(m, k)) for m in modules for k in dir(m)
             if ("download" in k.lower() or k == "_urlretrieve") and callable(getattr(m, k))
             and not isinstance(getattr(m, k), type)]
    try:
        for m, k, _ in saved:
            setattr(m, k, refuse)
        yield
    finally:
        for m, k, v in saved:
            setattr(m, k, v)


def _tonic_class(name: str) -> type:
    try:
        import tonic
    except ImportError:
        raise NmcompileError(f"reading tonic data sets needs the tonic package: pip install "
                             f"tonic=={TONIC_VERSION} (scripts/setup.sh installs it)") from None
    def readable(c: object) -> bool:
        return isinstance(c, type) and issubclass(c, tonic.Dataset)

    cls = getattr(tonic.datasets, name, None)
    if not readable(cls):
        known = sorted(k for k in tonic.datasets.__all__ if readable(getattr(tonic.datasets, k)))
        raise NmcompileError(f"tonic {tonic.__version__} has no data set {name!r} that "
                             f"nmcompile reads; its data sets are {', '.join(known)}")
    return cls


def _expects(cls: type, location: str, train: bool) -> str:
    split = "train" if train else "test"
    attrs = {"loc": location, "split": split,
             "zip": getattr(cls, f"{split}_filename", getattr(cls, "filename", "?")),
             "folder": getattr(cls, f"{split}_folder", getattr(cls, "folder_name", "?"))}
    if cls.__name__ in _EXPECTS:
        return _EXPECTS[cls.__name__].format(**attrs)
    files = [getattr(cls, a) for a in ("filename", "train_filename", "test_filename")
             if isinstance(getattr(cls, a, None), str)]
    return (f"{location}/ holding " + (", ".join(files) if files else "its files")
            + " and what tonic extracts from them")


@dataclass(frozen=True)
class TonicData:
    """What `read_tonic` read: frames (T, B, P, H, W), labels (B,), and where from."""

    spikes: np.ndarray
    labels: np.ndarray
    sensor: Sensor
    count: int  # samples in the split (B of them read)
    location: str


def _open(cls: type, folder: str | os.PathLike, train: bool, options: dict[str, Any]):
    """An instance of tonic's data set `cls` on `folder` that cannot download."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise NmcompileError(f"tonic data folder {root}: no such folder; give the folder that "
                             f"holds {cls.__name__}/ (tonic's save_to)")
    if root.name == cls.__name__ and not (root / cls.__name__).is_dir():
        root = root.parent  # the user named tonic's own folder, not its parent (save_to)
    location = str(root / cls.__name__)
    kwargs = dict(options)
    params = inspect.signature(cls.__init__).parameters
    if "train" in params:
        kwargs["train"] = train
    elif train:
        raise NmcompileError(f"tonic's {cls.__name__} has no train/test split (no train "
                             f"parameter): read it without train=True")
    refuse = _refuse_download(location, cls.__name__, _expects(cls, location, train))
    methods = {k: refuse for k in dir(cls) if "download" in k.lower()
               and callable(getattr(cls, k))}
    guarded = type(cls.__name__, (cls,), {**methods, "__module__": cls.__module__})
    # tonic prints progress to stdout: sent to stderr, so that a verb's --json stays JSON
    with _no_downloads(cls, refuse), contextlib.redirect_stdout(sys.stderr):
        try:  # the subclass keeps the name: tonic's folder is named after the class
            return guarded(save_to=str(root), **kwargs), location
        except NmcompileError:
            raise
        except SystemExit:  # DVSLip calls exit() when its archive is missing
            raise NmcompileError(f"tonic's {cls.__name__} found no data in {location}; "
                                 f"expected {_expects(cls, location, train)}") from None
        except TypeError as exc:
            raise NmcompileError(f"tonic's {cls.__name__}: {exc}; pass its arguments as "
                                 f"options of nmcompile.events.load_tonic (given: "
                                 f"{sorted(options) or 'none'})") from None
        except (OSError, ValueError, KeyError, IndexError) as exc:
            raise NmcompileError(f"tonic's {cls.__name__} cannot read {location}: {exc}; "
                                 f"expected {_expects(cls, location, train)}") from None


def _sample(ds: Any, i: int, name: str, max_bytes: int) -> tuple[Any, int]:
    """Sample i of a tonic data set as (events, integer label), its file's size bounded."""
    paths = getattr(ds, "data", None)
    path = paths[i] if isinstance(paths, list) and i < len(paths) else None
    if isinstance(path, (str, os.PathLike)) and os.path.isfile(path):
        size = os.path.getsize(path)
        if size * _READ_FACTOR > max_bytes:
            raise LimitError(f"tonic's {name} sample {i} ({path}) is {size:,} bytes: reading "
                             f"it would hold about {size * _READ_FACTOR:,}, more than "
                             f"{max_bytes:,}; pass a larger max_bytes if you trust it")
    try:
        item = ds[i]
    except (OSError, ValueError, KeyError, IndexError, EOFError) as exc:
        raise NmcompileError(f"tonic's {name} cannot read sample {i}"
                             + (f" ({path})" if path else "") + f": {exc}") from None
    if not (isinstance(item, tuple) and len(item) == 2 and _is_int(item[1])):
        raise NmcompileError(f"tonic's {name} sample {i} is not (events, integer label); "
                             f"nmcompile reads data sets of labelled event recordings")
    return item[0], int(item[1])


def read_tonic(name: str, folder: str | os.PathLike, train: bool = False, n: int | None = None,
               num_steps: int | None = None, dt_us: float | None = None, *,
               sensor_size: Sensor | Sequence[int] | None = None, allow_empty: bool = False,
               max_bytes: int = 4 << 30, **options: Any) -> TonicData:
    """`load_tonic`, with the sensor, the split's size and the folder read (for messages)."""
    cls = _tonic_class(name)
    steps, width = _binning(num_steps, dt_us)
    if n is not None and (isinstance(n, bool) or not _is_int(n) or int(n) < 1):
        raise NmcompileError(f"n = {n!r}: give the number of samples to read (>= 1)")
    ds, location = _open(cls, folder, train, options)
    count = len(ds)
    if count == 0:
        raise NmcompileError(f"tonic's {name} found no samples in {location}; expected "
                             f"{_expects(cls, location, train)}")
    size = sensor_size if sensor_size is not None else getattr(ds, "sensor_size", None)
    if size is None:
        raise NmcompileError(f"tonic's {name} has recordings of different sizes (no "
                             f"sensor_size): pass sensor_size=(W, H, P)")
    s = sensor(size)
    batch = count if n is None else min(int(n), count)
    labels = np.zeros(batch, np.int64)

    def events() -> Iterator[Any]:
        for i in range(batch):
            ev, labels[i] = _sample(ds, i, name, max_bytes)
            yield ev

    what = f"tonic {name} ({'train' if train else 'test'} split)"
    frames = _bin_many(events(), batch, s, steps, width, allow_empty, what)
    return TonicData(frames, labels, s, count, location)


def load_tonic(name: str, folder: str | os.PathLike, train: bool = False, n: int | None = None,
               num_steps: int | None = None, dt_us: float | None = None, *,
               sensor_size: Sensor | Sequence[int] | None = None, allow_empty: bool = False,
               max_bytes: int = 4 << 30, **options: Any) -> tuple[np.ndarray, np.ndarray]:
    """The first `n` samples (all by default) of tonic's data set `name` (a class of
    `tonic.datasets`: "NMNIST", "DVSGesture", "POKERDVS", ...) in `folder`, binned by
    `bin_events`: spikes (T, n, P, H, W) uint8 and labels (n,) int64.

    `folder` is tonic's `save_to` (the folder holding `NMNIST/`) or that data set folder
    itself. Nothing is downloaded: tonic's download functions refuse while the data set is
    opened, and a folder without the data raises `NmcompileError` naming it and what tonic
    expects there (N-MNIST: `NMNIST/test.zip` and its extracted `NMNIST/Test/<digit>/*.bin`).
    `train` picks the training split; `options` go to the class (`first_saccade_only=True`);
    `sensor_size` overrides the class's; each sample's file may take `max_bytes` to read.
    """
    data = read_tonic(name, folder, train, n, num_steps, dt_us, sensor_size=sensor_size,
                      allow_empty=allow_empty, max_bytes=max_bytes, **options)
    return data.spikes, data.labels


def fit_frames(frames: np.ndarray, s: Sensor, shape: Sequence[int], name: str) -> np.ndarray:
    """Frames (T, B, P, H, W) as the model input `name` of `shape` takes them: (P, H, W) as
    they are, (P*H*W,) flattened in C order (`p*H*W + y*W + x`, what `x.flatten(2)` of tonic's
    frames in PyTorch gives), or (H, W) with one polarity."""
    shape = tuple(int(d) for d in shape)
    T, B = frames.shape[:2]
    if shape == s.frame:
        return frames
    if shape == (math.prod(s.frame),) or (s.polarities == 1 and shape == s.frame[1:]):
        return frames.reshape(T, B, *shape)
    raise ShapeError(f"input {name!r} has shape {shape}; the events bin to frames "
                     f"(polarity, y, x) = {s.frame} of a {s} sensor, which fit an input of "
                     f"shape {s.frame} or ({math.prod(s.frame)},): pass the sensor_size the "
                     f"model was trained on")
