"""The `.nmc` file: a zip holding `graph.json` (structure and scalars, versioned) and
`arrays.npz` (every array parameter, loaded with `allow_pickle=False`). Nothing in it executes.

Sizes are checked from the zip's directory before anything is decompressed, so a hostile file
cannot make `load` allocate more than `max_bytes`.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .. import limits
from ..errors import FormatError, GraphError, LimitError
from . import npy
from .graph import Graph
from .node import NODE_TYPES

FORMAT = "nmcompile-graph"
VERSION = 1
MAX_JSON = 64 << 20  # graph.json holds structure only; the arrays are in arrays.npz


def _encode(value: Any, arrays: dict[str, np.ndarray], where: str) -> Any:
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise FormatError(f"{where}: arrays of dtype {value.dtype} cannot be saved")
        key = f"a{len(arrays)}"
        arrays[key] = value
        return {"array": key}
    if isinstance(value, tuple):
        return {"tuple": [_encode(v, arrays, where) for v in value]}
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise FormatError(f"{where}: cannot save a value of type {type(value).__name__}")


def _decode(value: Any, arrays: dict[str, np.ndarray], where: str) -> Any:
    if isinstance(value, dict):
        if "array" in value:
            try:
                return arrays[value["array"]]
            except KeyError:
                raise FormatError(f"{where}: array {value['array']!r} is missing") from None
        if "tuple" in value:
            return tuple(_decode(v, arrays, where) for v in value["tuple"])
        raise FormatError(f"{where}: unknown value {value!r}")
    return value


def to_dict(graph: Graph) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The JSON document and the arrays of a graph."""
    arrays: dict[str, np.ndarray] = {}
    nodes = []
    for name, node in graph.nodes.items():
        params = {k: _encode(v, arrays, f"node {name!r}, parameter {k!r}")
                  for k, v in node.params().items()}
        nodes.append({"name": name, "type": type(node).__name__, "params": params})
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "dt": graph.dt,
        "metadata": graph.metadata,
        "nodes": nodes,
        "edges": [{"src": u, "dst": v, "delay": d} for u, v, d in graph.edges()],
    }
    return doc, arrays


def from_dict(doc: dict[str, Any], arrays: dict[str, np.ndarray]) -> Graph:
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise FormatError("not an nmcompile graph (graph.json lacks the format tag)")
    version = doc.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise FormatError(f"graph.json has format version {version!r}; this nmcompile reads "
                          f"versions up to {VERSION}: upgrade nmcompile")
    try:
        graph = Graph(dt=doc.get("dt"), metadata=doc.get("metadata") or {})
        for entry in doc["nodes"]:
            name, type_name = entry["name"], entry["type"]
            cls = NODE_TYPES.get(type_name)
            if cls is None:
                raise FormatError(f"node {name!r} has unknown type {type_name!r}")
            params = {k: _decode(v, arrays, f"node {name!r}")
                      for k, v in entry["params"].items()}
            known = {f.name for f in dataclasses.fields(cls)}
            if set(params) - known:
                raise FormatError(f"node {name!r} ({type_name}) has unknown parameters "
                                  f"{sorted(set(params) - known)}")
            try:
                node = cls(**params)
            except GraphError as exc:  # name the node: its constructor does not know it
                raise type(exc)(f"node {name!r} ({type_name}): {exc}") from None
            graph.add_node(name, node)
        for edge in doc["edges"]:
            graph.add_edge(edge["src"], edge["dst"], edge["delay"])
    except (KeyError, TypeError, AttributeError, ValueError, OverflowError,
            RecursionError) as exc:  # a value of the wrong type somewhere in the document
        raise FormatError(f"graph.json is malformed: {type(exc).__name__}: "
                          f"{str(exc)[:200]}") from None
    return graph


def save(graph: Graph, path: str | os.PathLike, *, force: bool = False) -> Path:
    """Write `graph` to a `.nmc` file atomically (a temporary file renamed into place).

    An existing `path` is replaced only when it is an `.nmc` file (nmcompile's format tag);
    any other file needs `force=True` (`nmcompile.outputs`)."""
    from ..outputs import replace_file

    graph.validate()
    doc, arrays = to_dict(graph)
    try:
        text = json.dumps(doc, indent=1, allow_nan=True)
    except (TypeError, ValueError) as exc:
        raise FormatError(f"graph metadata is not JSON-serialisable: {exc}") from None
    buf = io.BytesIO()
    np.savez(buf, **arrays)

    def write(f) -> None:
        with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("graph.json", text)
            z.writestr("arrays.npz", buf.getvalue())

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
            if not {"graph.json", "arrays.npz"} <= names:
                raise FormatError(f"{path}: not an .nmc file (needs graph.json and arrays.npz)")
            npy.check_members(z, budget, str(path))
            if z.getinfo("graph.json").file_size > MAX_JSON:
                raise LimitError(f"{path}: graph.json declares "
                                 f"{z.getinfo('graph.json').file_size:,} bytes, more than "
                                 f"{MAX_JSON:,}; this is not a graph nmcompile wrote")
            doc = json.loads(npy.read_member(z, "graph.json", str(path)))
            with npy.spool_member(z, "arrays.npz", str(path)) as spool, \
                    zipfile.ZipFile(spool) as inner:
                arrays = dict(npy.read_npz(inner, budget, f"{path}:arrays.npz"))
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
