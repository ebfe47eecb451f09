"""The `.nmc` file: a zip holding `graph.json` (structure and scalars, versioned) and
`arrays.npz` (every array parameter, one `.npy` member each, never pickled). Nothing in it
executes.

Format 2 (docs/ir.md): `arrays.npz` is stored uncompressed, and so are its members, each in its
array's own dtype (integer arrays of quantised nodes and sparse indices in the smallest integer
dtype that holds their values, the node's dtype recorded beside them). `save` streams every
array's bytes to its member in chunks, with no copy of the array or of the archive; `load`
opens `arrays.npz` in place and reads each member in chunks into its final array. Format 1
(`arrays.npz` deflated as one member) still loads. Format 3 adds an optional `placement`
(where `nmcompile.map` put each neuron: the chip's document, the strategy, one core index per
neuron of each layer as an array); files of formats 1 and 2 load as unplaced graphs.

Sizes are checked from the zip's directory before anything is decompressed, so a hostile file
cannot make `load` allocate more than `max_bytes`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .. import limits
from ..errors import FormatError, GraphError, LimitError
from . import npy
from .graph import Graph
from .node import NODE_TYPES, Owned
from .placement import Placement
from .projections import Sparse
from .quantized import QSparse
from .synapses import nondecreasing

FORMAT = "nmcompile-graph"
VERSION = 3
MAX_JSON = 64 << 20  # graph.json holds structure only; the arrays are in arrays.npz
ARRAYS = "arrays.npz"

#: Integer dtypes an array may be stored as, smallest first (unsigned before signed).
_INT_DTYPES = tuple(np.dtype(t) for t in ("u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8"))
_INT_NAMES = {dt.name: dt for dt in _INT_DTYPES}


def _narrows(node: Any, field: str) -> bool:
    """Parameters stored in the smallest integer dtype that holds them: a quantised node's
    integers (its constructor bounds them in Python ints, whatever their dtype) and a sparse
    node's indices."""
    return bool(node.quantized) or (isinstance(node, Sparse) and field in ("rows", "cols"))


def _narrowed(value: np.ndarray) -> np.dtype:
    """The smallest integer dtype that holds every value of `value`, if smaller than its own."""
    if value.dtype.kind not in "iu" or value.size == 0:
        return value.dtype
    return _fitting(int(value.min()), int(value.max()), value.dtype)  # Python ints: no overflow


def _fitting(lo: int, hi: int, dtype: np.dtype) -> np.dtype:
    """The smallest integer dtype narrower than `dtype` holding [lo, hi], else `dtype`."""
    for dt in _INT_DTYPES:
        if dt.itemsize >= dtype.itemsize:
            break
        info = np.iinfo(dt)
        if info.min <= lo and hi <= info.max:
            return dt
    return dtype


def _halves(value: np.ndarray, dtype: np.dtype) -> int:
    """1 when `value` holds even integers only and their halves fit a dtype narrower than
    `dtype`, the one it would be stored as (even weights in [-256, 254], as the quantiser
    wrote Loihi's mixed-sign matrices before it stored their 8-bit mantissas: int8 halves
    instead of int16), else 0. Checked block by block: no full-size temporary."""
    if value.dtype.kind != "i" or dtype.itemsize < 2 or value.size == 0:
        return 0
    flat = value.reshape(-1)
    step = 1 << 20
    if any((flat[k:k + step] & 1).any() for k in range(0, flat.size, step)):
        return 0
    lo, hi = int(value.min()) >> 1, int(value.max()) >> 1
    return int(_fitting(lo, hi, dtype).itemsize < dtype.itemsize)


def _encode(value: Any, arrays: dict[str, np.ndarray], where: str,
            stored: Stored | None = None) -> Any:
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise FormatError(f"{where}: arrays of dtype {value.dtype} cannot be saved")
        key = f"a{len(arrays)}"
        arrays[key] = value
        dtype = _narrowed(value) if stored is not None else value.dtype
        shift = _halves(value, dtype) if stored is not None else 0
        if shift:
            dtype = _fitting(int(value.min()) >> 1, int(value.max()) >> 1, dtype)
        if dtype == value.dtype:
            return {"array": key}
        stored[key] = (dtype, shift)
        out = {"array": key, "dtype": value.dtype.name}  # the node's dtype, restored on load
        return out | ({"step": 2} if shift else {})
    if isinstance(value, tuple):
        return {"tuple": [_encode(v, arrays, where) for v in value]}
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise FormatError(f"{where}: cannot save a value of type {type(value).__name__}")


def _runs(counts: np.ndarray, dtype: Any, where: str) -> np.ndarray:
    """Row indices from run lengths (row r repeated counts[r] times), in the node's dtype."""
    if not isinstance(dtype, str) or dtype not in _INT_NAMES or counts.ndim != 1 \
            or counts.dtype.kind not in "iu" or (counts.size and int(counts.min()) < 0):
        raise FormatError(f"{where}: malformed run lengths")
    total = int(counts.sum(dtype=np.int64))
    limits.check_bytes(total * _INT_NAMES[dtype].itemsize, f"{where}: {total:,} row indices")
    return np.repeat(np.arange(counts.size, dtype=_INT_NAMES[dtype]), counts)


def _doubled(array: np.ndarray, dtype: Any, where: str) -> np.ndarray:
    """2 * `array`, in the node's recorded integer dtype (one that holds the doubled values)."""
    if not isinstance(dtype, str) or dtype not in _INT_NAMES \
            or _INT_NAMES[dtype].itemsize < 2 * array.dtype.itemsize:
        raise FormatError(f"{where}: a halved array needs a wider dtype, got {str(dtype)[:20]!r}")
    out = array.astype(_INT_NAMES[dtype])
    out <<= 1
    return out


def _decode(value: Any, arrays: dict[str, np.ndarray], where: str) -> Any:
    if isinstance(value, dict):
        if "array" in value:
            try:
                array = arrays[value["array"]]
            except KeyError:
                raise FormatError(f"{where}: array {value['array']!r} is missing") from None
            if value.get("runs") is True:
                return _runs(array, value.get("dtype"), where)
            if "step" in value:  # halved on save: integers twice the stored ones
                if value["step"] != 2 or not isinstance(array, np.ndarray) \
                        or array.dtype.kind != "i":
                    raise FormatError(f"{where}: unknown array step {str(value['step'])[:20]!r}")
                return _doubled(array, value.get("dtype"), where)
            return array
        if "tuple" in value:
            return tuple(_decode(v, arrays, where) for v in value["tuple"])
        raise FormatError(f"{where}: unknown value {value!r}")
    return value


def _declared_dtype(value: Any, array: Any, where: str) -> np.dtype | None:
    """The node's dtype that a narrowed array parameter records (`{"array", "dtype"}`):
    an integer dtype that holds every value of the stored one."""
    if not isinstance(value, dict) or "dtype" not in value:
        return None
    name = value["dtype"]
    if not isinstance(name, str) or name not in _INT_NAMES:
        raise FormatError(f"{where}: unknown array dtype {str(name)[:40]!r}")
    dtype = _INT_NAMES[name]
    if not isinstance(array, np.ndarray) or not np.can_cast(array.dtype, dtype, "safe"):
        raise FormatError(f"{where}: an array stored as "
                          f"{getattr(array, 'dtype', type(array).__name__)} cannot be a {name} "
                          f"parameter")
    return dtype


def to_dict(graph: Graph) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The JSON document and the arrays of a graph."""
    doc, arrays, _ = _document(graph)
    return doc, arrays


Stored = dict[str, tuple[np.dtype, int]]  # array key -> (dtype on file, right shift)


def _document(graph: Graph) -> tuple[dict[str, Any], dict[str, np.ndarray], Stored]:
    """`to_dict`, and the dtype and shift each narrowed array is stored with."""
    arrays: dict[str, np.ndarray] = {}
    stored: Stored = {}
    nodes = []
    for name, node in graph.nodes.items():
        params = {}
        for f in dataclasses.fields(node):
            where = f"node {name!r}, parameter {f.name!r}"
            value = getattr(node, f.name)
            if f.name == "rows" and isinstance(node, (Sparse, QSparse)) \
                    and nondecreasing(value):  # as run lengths: one count per row
                counts = np.bincount(value, minlength=node.shape[0])
                params[f.name] = {**_encode(counts, arrays, where, stored), "runs": True,
                                  "dtype": value.dtype.name}
                continue
            params[f.name] = _encode(value, arrays, where,
                                     stored if _narrows(node, f.name) else None)
        nodes.append({"name": name, "type": type(node).__name__, "params": params})
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "dt": graph.dt,
        "metadata": graph.metadata,
        "nodes": nodes,
        "edges": [{"src": u, "dst": v, "delay": d} for u, v, d in graph.edges()],
    }
    if graph.placement is not None:  # format 3
        p = graph.placement
        doc["placement"] = {"chip": p.chip, "strategy": p.strategy, "cores": {
            layer: _encode(cores, arrays, f"placement of {layer!r}", stored)
            for layer, cores in p.cores.items()}}
    return doc, arrays, stored


def digest(graph: Graph) -> str:
    """SHA-256 of a graph's content: its document (nodes, edges, dt, metadata, placement) and
    every array's key, dtype, shape and bytes. Equal for a graph and its saved-and-loaded
    copy: the quantiser records its source's, so that `verify --reference` can tell the float
    file a quantised one was made from."""
    doc, arrays, _ = _document(graph)
    h = hashlib.sha256(json.dumps(doc, sort_keys=True, allow_nan=True, default=str).encode())
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(f"{key}:{a.dtype.str}:{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def check_version(doc: Any) -> int:
    """The format version of a `graph.json` document that this nmcompile reads."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise FormatError("not an nmcompile graph (graph.json lacks the format tag)")
    version = doc.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise FormatError(f"graph.json has no valid format version (got {str(version)[:40]!r})")
    if version > VERSION:
        raise FormatError(f"graph.json has format version {version}: this file needs nmcompile "
                          f"that reads format version {version} (this one reads versions 1 to "
                          f"{VERSION}); upgrade nmcompile")
    return version


def from_dict(doc: dict[str, Any], arrays: dict[str, np.ndarray]) -> Graph:
    check_version(doc)
    try:
        graph = Graph(dt=doc.get("dt"), metadata=doc.get("metadata") or {})
        for entry in doc["nodes"]:
            name, type_name = entry["name"], entry["type"]
            cls = NODE_TYPES.get(type_name)
            if cls is None:
                raise FormatError(f"node {name!r} has unknown type {type_name!r}")
            params, declared = {}, {}
            for k, v in entry["params"].items():
                params[k] = _decode(v, arrays, f"node {name!r}")
                if (dtype := _declared_dtype(v, params[k], f"node {name!r}, {k!r}")) is not None:
                    declared[k] = dtype
            known = {f.name for f in dataclasses.fields(cls)}
            if set(params) - known:
                raise FormatError(f"node {name!r} ({type_name}) has unknown parameters "
                                  f"{sorted(set(params) - known)}")
            # the arrays just read belong to no one: the node keeps them without a copy
            owned = {k: Owned(v) if isinstance(v, np.ndarray) else v for k, v in params.items()}
            try:
                node = cls(**owned)
            except GraphError as exc:  # name the node: its constructor does not know it
                raise type(exc)(f"node {name!r} ({type_name}): {exc}") from None
            for k, dtype in declared.items():  # narrowed on save: the node's own dtype back,
                value = getattr(node, k)       # unless its constructor already converted it
                if isinstance(value, np.ndarray) and value.dtype != dtype:
                    wide = value.astype(dtype)  # lossless: checked by _declared_dtype
                    wide.flags.writeable = value.flags.writeable
                    setattr(node, k, wide)
            graph.add_node(name, node)
        for edge in doc["edges"]:
            graph.add_edge(edge["src"], edge["dst"], edge["delay"])
        if (placed := doc.get("placement")) is not None:
            graph.placement = _placement(placed, arrays, graph)
    except (KeyError, TypeError, AttributeError, ValueError, OverflowError,
            RecursionError) as exc:  # a value of the wrong type somewhere in the document
        raise FormatError(f"graph.json is malformed: {type(exc).__name__}: "
                          f"{str(exc)[:200]}") from None
    return graph


def _placement(doc: Any, arrays: dict[str, np.ndarray], graph: Graph) -> Placement:
    """A stored placement, each layer's cores checked against the layer's size."""
    if not isinstance(doc, dict) or not isinstance(doc.get("chip"), dict) \
            or not isinstance(doc.get("strategy"), str) or not isinstance(doc.get("cores"), dict):
        raise FormatError("graph.json: malformed placement")
    shapes = graph.shapes()
    cores = {}
    for layer, value in doc["cores"].items():
        if layer not in shapes:
            raise FormatError(f"graph.json: the placement names layer {layer!r}, not in the graph")
        where = f"placement of {layer!r}"
        arr = _decode(value, arrays, where)
        if (dtype := _declared_dtype(value, arr, where)) is not None:
            arr = arr.astype(dtype)
        if not isinstance(arr, np.ndarray) or arr.size != math.prod(shapes[layer]):
            raise FormatError(f"graph.json: {where} does not hold one core per neuron")
        cores[layer] = arr
    try:
        return Placement(doc["chip"], doc["strategy"], cores)
    except GraphError as exc:
        raise FormatError(f"graph.json: {exc}") from None


def save(graph: Graph, path: str | os.PathLike, *, force: bool = False) -> Path:
    """Write `graph` to a `.nmc` file atomically (a temporary file renamed into place).

    An existing `path` is replaced only when it is an `.nmc` file (nmcompile's format tag);
    any other file needs `force=True` (`nmcompile.outputs`)."""
    from ..outputs import replace_file

    graph.validate()
    doc, arrays, stored = _document(graph)
    try:
        text = json.dumps(doc, indent=1, allow_nan=True)
    except (TypeError, ValueError) as exc:
        raise FormatError(f"graph metadata is not JSON-serialisable: {exc}") from None

    def write(f) -> None:
        # format 2: arrays.npz stored, holding one stored .npy member per array, each streamed
        # from the array's memory (zipfile writes the inner archive to the outer member as it
        # goes, with data descriptors; the outer member's sizes are patched in place)
        with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as z:
            z.writestr("graph.json", text, compress_type=zipfile.ZIP_DEFLATED)
            with z.open(ARRAYS, "w", force_zip64=True) as member, \
                    zipfile.ZipFile(member, "w", zipfile.ZIP_STORED) as inner:
                for key, array in arrays.items():
                    npy.write_array(inner, f"{key}.npy", array, *stored.get(key, (None, 0)))

    return replace_file(path, write, is_nmc, force=force)


def is_nmc(path: Path) -> bool:
    """An `.nmc` file that nmcompile wrote: a zip whose small graph.json has the format tag
    (what `save` may replace without `force`)."""
    try:
        with zipfile.ZipFile(path) as z:
            info = z.getinfo("graph.json")
            if info.file_size > MAX_JSON:
                return False
            with z.open(info) as f:
                # the tag is among the first keys that `save` writes
                return f'"format": "{FORMAT}"' in f.read(4096).decode("utf-8", "replace")
    except (OSError, KeyError, zipfile.BadZipFile, RuntimeError):
        return False


def load(path: str | os.PathLike, max_bytes: int | str | None = None) -> Graph:
    """Read a `.nmc` file. No code runs; every size is checked before it is allocated and
    members are read in bounded chunks (`nmcompile.ir.npy`), so a file cannot make `load`
    allocate more than `max_bytes` (default: the memory budget, `nmcompile.limits`) for its
    arrays, whatever its headers say."""
    path = Path(path)
    budget = npy.Budget(limits.budget(max_bytes), str(path))
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            if not {"graph.json", ARRAYS} <= names:
                raise FormatError(f"{path}: not an .nmc file (needs graph.json and arrays.npz)")
            npy.check_members(z, budget, str(path))
            if z.getinfo("graph.json").file_size > MAX_JSON:
                raise LimitError(f"{path}: graph.json declares "
                                 f"{z.getinfo('graph.json').file_size:,} bytes, more than "
                                 f"{MAX_JSON:,}; this is not a graph nmcompile wrote")
            doc = json.loads(npy.read_member(z, "graph.json", str(path)))
            try:
                check_version(doc)  # before the arrays: a newer format may lay them out anew
            except FormatError as exc:
                raise FormatError(f"{path}: {exc}") from None
            # stored (format 2): read in place; deflated (format 1): through a temporary file
            with npy.open_archive(z, ARRAYS, str(path)) as inner:
                arrays = dict(npy.read_npz(inner, budget, f"{path}:{ARRAYS}"))
    except FileNotFoundError:
        raise FormatError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise FormatError(f"{path}: is a folder, not an .nmc file") from None
    except RecursionError:
        raise FormatError(f"{path}: graph.json is nested too deeply") from None
    except (zipfile.BadZipFile, json.JSONDecodeError, UnicodeDecodeError, OSError,
            EOFError, ValueError) as exc:
        raise FormatError(f"{path}: not a valid .nmc file ({exc})") from None
    graph = from_dict(doc, arrays)
    graph.validate()
    return graph
