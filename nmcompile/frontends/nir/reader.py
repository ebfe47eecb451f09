"""`from_nir`: a NIR graph (file or `nir.NIRGraph`) -> the float IR.

Steps, each exact:
1. nested `NIRGraph` nodes are flattened; their `Input`/`Output` nodes, NIR's `Identity` and
   `Delay` nodes become pass-throughs, so every edge joins two real nodes, with a delay of
   `delay / dt` steps (an integer, the same for every neuron, or an error naming the node);
2. every other node becomes one IR node (neurons: `neurons.py`), with a `Scale` ahead of a
   neuron whose input gain is not 1 (`NAME.gain`);
3. NIR says nothing about when a recurrent edge delivers; every framework reads the previous
   step, so each cycle without delay gets one step on one edge (see `_delay_cycles`);
4. optionally, a bias that would enter a synaptic current becomes a constant source (see
   `passes.bias.bias_sources`), which the fixed-point targets can run.
Nodes written by nmcompile's own `to_nir` carry their exact IR parameters in their metadata;
they come back unchanged when they still agree with the NIR parameters, so a round trip
nmcompile -> NIR -> nmcompile gives an equal graph.
"""

from __future__ import annotations

import re
import warnings
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

from ...errors import FormatError, GraphError, NmcompileError, UnsupportedError
from ...ir import (
    NODE_TYPES,
    AvgPool2d,
    Conv2d,
    Dense,
    Flatten,
    Graph,
    Input,
    Neuron,
    Node,
    Output,
    Scale,
    SumPool2d,
)
from ...ir.names import unique_name
from ...limits import check_bytes
from ...passes.bias import bias_sources, recorded
from . import neurons
from .meta import KEY, exact_params, graph_info, stored_params

DT_HINT = ("NIR graphs carry no time step: pass dt in seconds (--dt on the command line; "
           "snnTorch's exporter assumes 1e-4, Norse's examples 1e-3; Sinabs and Speck count "
           "in steps: dt=1)")

_THROUGH = "through"  # marker: a node that passes its input on (nested Input/Output, Identity)


@dataclass
class _Mapped:
    entry: str          # the IR node that receives the NIR node's input
    exits: list[str]    # the IR nodes whose outputs sum to the NIR node's output




#: A dataset may declare at most this many times the bytes it stores (deflate's limit is
#: about 1032:1), except small ones: a larger claim is filled by HDF5's fill value from
#: nothing, which only a hostile file does.
MAX_RATIO = 1100
_SMALL = 1 << 16


def _stored_bytes(path: Path) -> int:
    """What reading every dataset of an HDF5 file would allocate, from its headers alone.

    Refuses (FormatError) what would make the reader touch anything but this file's own
    bytes (external links, external raw storage, virtual datasets) and datasets that declare
    far more than they store, naming the dataset."""
    import h5py

    total = 0
    seen: set[tuple[int, int]] = set()

    def refuse(where: str, why: str) -> FormatError:
        return FormatError(f"{path}: {where} {why}; nmcompile reads only data stored in the "
                           f"file itself")

    def walk(group: Any, prefix: str) -> None:
        nonlocal total
        for name in group:
            where = f"{prefix}/{name}"
            link = group.get(name, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                raise refuse(where, f"is an external link to {link.filename}")
            if isinstance(link, h5py.SoftLink):
                raise refuse(where, "is a soft link")
            obj = group[name]
            key = (obj.id.fileno, h5py.h5o.get_info(obj.id).addr)
            if key in seen:  # a second hard link to an object already counted
                continue
            seen.add(key)
            if isinstance(obj, h5py.Group):
                walk(obj, where)
            elif isinstance(obj, h5py.Dataset):
                if obj.is_virtual:
                    raise refuse(where, "is a virtual dataset")
                if obj.external:
                    raise refuse(where, f"keeps its data in external storage "
                                        f"({obj.external[0][0]})")
                declared = int(obj.size) * max(int(obj.dtype.itemsize), 1)
                stored = int(obj.id.get_storage_size())
                if declared > _SMALL and declared > MAX_RATIO * max(stored, 1):
                    raise FormatError(f"{path}: dataset {where} declares {declared:,} bytes "
                                      f"but stores {stored:,}: the file is corrupt or hostile")
                total += declared

    with h5py.File(path, "r") as f:
        walk(f, "")
    return total


def _open(source: Any, max_bytes: int | str | None) -> tuple[Any, str | None]:
    import nir

    if isinstance(source, nir.NIRGraph):
        return source, None
    path = Path(source)
    if not path.is_file():
        raise FormatError(f"no NIR file at {path}")
    try:
        size = _stored_bytes(path)
    except FormatError:
        raise
    except Exception as exc:  # h5py raises OSError and others on a file that is not HDF5
        raise FormatError(f"cannot read {path} as NIR (HDF5): {type(exc).__name__}: {exc}"
                          ) from None
    check_bytes(size, f"reading the arrays of {path}", max_bytes,
                fix="read a smaller file")
    try:
        # type_check=False: some exporters (Rockpool) write inconsistent port types; the IR
        # checks every shape itself after import.
        return nir.read(path, type_check=False), path.name
    except Exception as exc:  # h5py and nir raise many types; all mean "not a NIR file"
        detail = str(exc) or _unknown_types(path) or "malformed"
        raise FormatError(f"cannot read {path} as NIR: {type(exc).__name__}: {detail}"
                          ) from None


def _unknown_types(path: Path) -> str:
    """The node types in a NIR file that the installed `nir` does not know (`nir.read` fails
    on them with an empty AssertionError)."""
    import h5py
    import nir

    def subclasses(cls: type) -> set[type]:
        return {cls} | {s for c in cls.__subclasses__() for s in subclasses(c)}

    known = {c.__name__ for c in subclasses(nir.NIRNode)}
    found: list[str] = []

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset) and name.rsplit("/", 1)[-1] == "type" and obj.shape == ():
            value = obj[()]
            value = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
            if value not in known:
                found.append(f"{name.rsplit('/', 1)[0]} has unknown type {value[:64]!r}")

    try:
        with h5py.File(path, "r") as f:
            f.visititems(visit)
    except Exception:  # the file was already unreadable; keep the first error's text
        return ""
    return "; ".join(found[:5])


def _ints(value: Any, n: int, field: str, name: str) -> tuple[int, ...]:
    arr = np.asarray(value).ravel()
    if arr.size == 1:
        arr = np.repeat(arr, n)
    if (arr.dtype.kind not in "iuf" or arr.size != n or not np.all(np.isfinite(arr))
            or np.any(arr != np.round(arr.astype(np.float64)))):
        raise UnsupportedError(f"NIR node {name!r}: {field}={value!r} is not {n} integers")
    return tuple(int(v) for v in arr)


def _flatten(graph: Any, prefix: str, nodes: dict[str, Any], edges: list[tuple[str, str]],
             top: bool) -> tuple[list[str], list[str]]:
    """Flatten nested graphs into `nodes` (flat name -> NIR node or _THROUGH) and `edges`.
    Returns the flat names of this graph's Input and Output nodes."""
    import nir

    subgraphs: dict[str, tuple[list[str], list[str]]] = {}
    for key, node in graph.nodes.items():
        flat = f"{prefix}{key}"
        if isinstance(node, nir.NIRGraph):
            subgraphs[key] = _flatten(node, f"{flat}.", nodes, edges, top=False)
        elif not top and isinstance(node, (nir.Input, nir.Output)):
            nodes[flat] = _THROUGH
        else:
            nodes[flat] = node

    def end(ref: str, source: bool) -> str:
        if ref in subgraphs:
            ins, outs = subgraphs[ref]
            ports = outs if source else ins
            if len(ports) != 1:
                raise UnsupportedError(
                    f"edge to nested graph {prefix}{ref!r}, which has {len(ports)} "
                    f"{'outputs' if source else 'inputs'}; name one as '{ref}.<node>'")
            return ports[0]
        if ref in graph.nodes or f"{prefix}{ref}" in nodes:
            return f"{prefix}{ref}"
        raise FormatError(f"NIR edge names {prefix}{ref!r}, which is no node of the graph")

    for src, dst in graph.edges:
        edges.append((end(str(src), True), end(str(dst), False)))
    return ([f"{prefix}{k}" for k, n in graph.nodes.items() if isinstance(n, nir.Input)],
            [f"{prefix}{k}" for k, n in graph.nodes.items() if isinstance(n, nir.Output)])


_ELEMENTWISE = ("Delay", "Identity", "Scale", "Output", *neurons.NEURONS)


def _height_one(nodes: dict[str, Any], preds: dict[str, list[str]]) -> set[str]:
    """Flat names whose output is a 1-D signal (C, N), which the IR holds as (C, 1, N)."""
    flagged = set()
    for name, node in nodes.items():
        kind = type(node).__name__
        if kind == "Conv1d" or (kind == "Input" and len(_input_shape(node, name)) == 2):
            flagged.add(name)
    changed = True
    while changed:
        changed = False
        for name, node in nodes.items():
            if name in flagged or not any(p in flagged for p in preds[name]):
                continue
            kind = "Identity" if node is _THROUGH else type(node).__name__
            keeps = kind in _ELEMENTWISE or (kind == "Flatten" and
                                             node.start_dim % 2 == node.end_dim % 2)
            if keeps:
                flagged.add(name)
                changed = True
    return flagged


def _input_shape(node: Any, name: str = "") -> tuple[int, ...]:
    shape = (getattr(node, "input_type", None) or {}).get("input")
    what = f"NIR Input node {name!r}" if name else "a NIR Input node"
    if shape is None:
        raise FormatError(f"{what} has no shape")
    arr = np.asarray(shape).ravel()
    # the shape is data from the file: text, NaN or fractions would fail in int() unnamed
    if (arr.dtype.kind not in "iuf" or not np.all(np.isfinite(arr)) or np.any(arr < 0)
            or np.any(arr != np.round(arr))):
        raise FormatError(f"{what} has shape {shape!r}; it must be non-negative integers")
    return tuple(int(s) for s in arr)


def _ir_name(flat: str, taken: set[str]) -> str:
    name = re.sub(r"[^A-Za-z0-9_.\-]", "_", flat)[:120] or "node"
    if not re.match(r"[A-Za-z_]", name):
        name = f"n{name}"
    name = unique_name(name, taken, sep="_", first=1)
    taken.add(name)
    return name


def _steps(node: Any, dt: float, name: str) -> int:
    delay = np.asarray(node.delay, dtype=np.float64)
    if delay.size == 0 or np.any(delay != delay.flat[0]):
        raise UnsupportedError(f"NIR Delay {name!r} has different delays per neuron "
                               f"({delay.min():g}..{delay.max():g} s); an IR edge delays every "
                               f"neuron by the same number of steps")
    steps = float(delay.flat[0]) / dt
    k = round(steps)
    if k < 0 or abs(steps - k) > 1e-6 * max(1.0, abs(steps)):
        raise UnsupportedError(f"NIR Delay {name!r} of {delay.flat[0]:g} s is not a whole "
                               f"number of steps of dt={dt:g} s ({steps:g}); choose dt to "
                               f"divide it")
    return int(k)


class _Reader:
    def __init__(self, dt: float, reset: str | None, exact: bool, default_reset: str) -> None:
        self.g = Graph(dt=dt)
        self.dt, self.reset, self.exact = dt, reset, exact
        self.default_reset = default_reset
        self.taken: set[str] = set()

    def add(self, flat: str, node: Node, suffix: str = "") -> str:
        name = _ir_name(f"{flat}{suffix}", self.taken)
        self.g.add_node(name, node)
        return name

    # -- one NIR node ------------------------------------------------------------------
    def node(self, flat: str, node: Any, height1: bool) -> _Mapped | int:
        """The IR nodes for one NIR node, or the steps of delay of a pass-through."""
        kind = type(node).__name__
        where = f"NIR node {flat!r} ({kind})"
        meta = node.metadata.get(KEY) if isinstance(getattr(node, "metadata", None), dict) \
            else None
        if kind == "Input":
            shape = _input_shape(node, flat)
            if height1:
                shape = (shape[0], 1, shape[1])
            return self.one(flat, Input(shape))
        if kind == "Output":
            return self.one(flat, Output())
        if kind == "Identity":
            return 0
        if kind == "Delay":
            return _steps(node, self.dt, flat)
        if kind in ("Affine", "Linear"):
            weight = np.asarray(node.weight, dtype=np.float64)
            if weight.ndim != 2:
                raise UnsupportedError(f"{where}: weight of shape {weight.shape}; only a matrix "
                                       f"(out, in) is supported")
            bias = np.asarray(node.bias, dtype=np.float64) if kind == "Affine" else None
            return self.one(flat, Dense(weight, bias))
        if kind in ("Conv1d", "Conv2d"):
            return self.one(flat, self.conv(node, kind, where, meta))
        if kind in ("SumPool2d", "AvgPool2d"):
            cls = SumPool2d if kind == "SumPool2d" else AvgPool2d
            return self.one(flat, cls(_ints(node.kernel_size, 2, "kernel_size", flat),
                                      _ints(node.stride, 2, "stride", flat),
                                      _ints(node.padding, 2, "padding", flat)))
        if kind == "Flatten":
            if (stored_params(meta) or {}).get("implicit"):
                return 0  # written by to_nir ahead of a Dense, which reads flattened anyway
            start, end = int(node.start_dim), int(node.end_dim)
            if height1:  # NIR dims of (C, N) -> IR dims of (C, 1, N)
                start, end = (0 if start % 2 == 0 else 2), (0 if end % 2 == 0 else 2)
            return self.one(flat, Flatten(start, end))
        fix = _fixer(height1)
        if kind == "Scale":
            restored = self.restored(meta, ("Scale",), node, flat)
            return self.one(flat, restored or Scale(neurons.collapse(
                fix(np.asarray(node.scale, dtype=np.float64)))))
        if kind in neurons.NEURONS:
            return self.neuron(flat, node, meta, fix)
        raise UnsupportedError(f"{where} has no IR mapping; supported: Input, Output, Affine, "
                               f"Linear, Conv1d, Conv2d, SumPool2d, AvgPool2d, Flatten, Scale, "
                               f"Delay, Identity, {', '.join(neurons.NEURONS)}, nested NIRGraph")

    def one(self, flat: str, node: Node) -> _Mapped:
        name = self.add(flat, node)
        return _Mapped(name, [name])

    def conv(self, node: Any, kind: str, where: str, meta: Any) -> Conv2d:
        weight = np.asarray(node.weight, dtype=np.float64)
        one_d = kind == "Conv1d"
        if weight.ndim != (3 if one_d else 4):
            raise UnsupportedError(f"{where}: weight of shape {weight.shape}")
        if one_d:
            weight = weight[:, :, None, :]
        n = 1 if one_d else 2
        stride = _ints(node.stride, n, "stride", where)
        dilation = _ints(node.dilation, n, "dilation", where)
        if isinstance(node.padding, str):
            if node.padding == "valid":
                padding = (0,) * n
            else:  # "same": PyTorch pads (k - 1) * d, the odd one on the far side
                total = [d * (k - 1) for d, k in zip(dilation, weight.shape[4 - n:], strict=True)]
                if any(t % 2 for t in total) or any(s != 1 for s in stride):
                    raise UnsupportedError(f"{where}: padding 'same' here pads unequally on the "
                                           f"two sides; the IR pads symmetrically")
                padding = tuple(t // 2 for t in total)
        else:
            padding = _ints(node.padding, n, "padding", where)
        if one_d:
            stride, padding, dilation = (1, *stride), (0, *padding), (1, *dilation)
        bias = None if node.bias is None else np.asarray(node.bias, dtype=np.float64)
        stored = stored_params(meta) or {}
        if self.exact and "bias" in stored and stored["bias"] is None and not np.any(bias):
            bias = None  # to_nir wrote zeros for an IR Conv2d without bias
        return Conv2d(weight, bias, stride, padding, dilation,
                      int(np.asarray(node.groups).ravel()[0]))

    def restored(self, meta: Any, kinds: tuple[str, ...], node: Any, flat: str
                 ) -> Node | None:
        """The exact IR node to_nir wrote in the metadata, if it still fits the NIR node."""
        params = exact_params(meta) if self.exact else None
        if params is None or params[0] not in kinds:
            return None
        try:
            ir_node = NODE_TYPES[params[0]](**params[1])
        except (TypeError, NmcompileError):
            return None
        if self.reset is not None and hasattr(ir_node, "reset"):
            ir_node.reset = self.reset
        if isinstance(ir_node, Scale):
            again = {"scale": np.broadcast_to(np.asarray(ir_node.scale), np.shape(node.scale))}
        else:
            first = next((v for k, v in vars(node).items() if k in _NIR_FIELDS and np.ndim(v)),
                         None)
            try:
                other = neurons.to_nir(ir_node, self.dt, np.shape(first), flat)
            except NmcompileError:
                return None
            if type(other).__name__ != type(node).__name__:
                return None
            again = vars(other)
        for field, value in again.items():
            if field not in _NIR_FIELDS:
                continue
            have = np.asarray(getattr(node, field), dtype=np.float64)
            want = np.asarray(value, dtype=np.float64)
            if have.shape != want.shape or not np.allclose(have, want, rtol=1e-6, atol=0):
                warnings.warn(f"NIR node {flat!r}: its parameters no longer match the exact "
                              f"values nmcompile stored with it; using the NIR parameters",
                              stacklevel=4)
                return None
        return ir_node

    def neuron(self, flat: str, node: Any, meta: Any, fix) -> _Mapped:
        restored = self.restored(meta, ("LIF", "IF", "LI"), node, flat)
        if restored is not None:
            return self.one(flat, restored)
        ir_node, gain = neurons.from_nir(node, self.dt, self.reset or self.default_reset,
                                         flat, fix)
        name = self.add(flat, ir_node)
        if isinstance(gain, float) and gain == 1.0:
            return _Mapped(name, [name])
        scale = self.add(flat, Scale(gain), ".gain")
        self.g.add_edge(scale, name, 0)
        return _Mapped(scale, [name])

    # -- edges -------------------------------------------------------------------------
    def connect(self, src: str, dst: str, delay: int) -> None:
        if self.g.nx.has_edge(src, dst):  # a second path between the same two nodes
            via = self.add(src, Scale(1.0), f".to.{dst}")
            self.g.add_edge(src, via, delay)
            self.g.add_edge(via, dst, 0)
        else:
            self.g.add_edge(src, dst, delay)


_NIR_FIELDS = ("tau", "r", "v_leak", "v_threshold", "tau_syn", "tau_mem", "w_in", "threshold",
               "scale")


def _fixer(height1: bool) -> Callable[[np.ndarray], np.ndarray]:
    def fix(arr: np.ndarray) -> np.ndarray:
        return arr.reshape(arr.shape[0], 1, arr.shape[1]) if height1 and arr.ndim == 2 else arr
    return fix


def _wire(reader: _Reader, mapped: dict[str, _Mapped | int], edges: list[tuple[str, str]]
          ) -> None:
    """IR edges between real nodes, through pass-throughs, with their summed delays."""
    succ: dict[str, list[str]] = defaultdict(list)
    for src, dst in edges:
        succ[src].append(dst)
    for src, m in mapped.items():
        if not isinstance(m, _Mapped):
            continue
        stack = [(dst, 0, (src,)) for dst in succ[src]]
        while stack:
            node, delay, path = stack.pop()
            target = mapped[node]
            if isinstance(target, _Mapped):
                for exit_ in m.exits:
                    reader.connect(exit_, target.entry, delay)
                continue
            if node in path:
                raise GraphError(f"NIR nodes {' -> '.join(path)} form a cycle of delays and "
                                 f"pass-throughs only")
            stack += [(nxt, delay + target, (*path, node)) for nxt in succ[node]]


def _delay_cycles(g: Graph, entries: dict[str, str]) -> list[list[str]]:
    """Give every cycle without delay one step, the previous-step read every framework does.

    Each such cycle runs through a neuron n (the one nearest the inputs), entered through
    `entries[n]` (its gain `Scale`, or n itself). When the nodes after n on the cycle feed only
    the cycle (snnTorch's recurrent weight), the edge leaving n gets the step: the recurrent
    projection then reads n's spikes of the previous step, as RLeaky does (a recurrent bias
    arrives from step 0). Otherwise the cycle's edge into n's entry gets it, so neither the
    paths leaving the cycle nor n's other inputs are delayed. A cycle without a neuron is an
    error.
    """
    dist: dict[str, int] = {}
    queue = deque((n, 0) for n in g.inputs)
    while queue:
        node, d = queue.popleft()
        if node in dist:
            continue
        dist[node] = d
        queue.extend((v, d + 1) for v, _ in g.successors(node))
    delayed = []
    while True:
        instant = nx.DiGraph()
        instant.add_edges_from((u, v) for u, v, d in g.edges() if d == 0)
        try:
            cycle = [u for u, _ in nx.find_cycle(instant)]
        except nx.NetworkXNoCycle:
            return delayed
        spiking = [k for k, n in enumerate(cycle) if isinstance(g[n], Neuron)]
        if not spiking:
            raise GraphError(f"cycle without delay and without a neuron: "
                             f"{' -> '.join([*cycle, cycle[0]])}; it has no meaning in "
                             f"discrete time")
        k = min(spiking, key=lambda j: (dist.get(cycle[j], len(g)), cycle[j]))
        ring = cycle[k:] + cycle[:k]  # ring[0] is the neuron, ring[-1] feeds it
        if len(ring) > 1 and ring[-1] == entries.get(ring[0]) != ring[0]:
            ring = [ring[-1], *ring[:-1]]  # the neuron's gain belongs to it: start there
            n_block = 2
        else:
            n_block = 1
        chain = ring[n_block:]
        if all(g.nx.out_degree(n) == 1 for n in chain):
            u, v = ring[n_block - 1], ring[n_block % len(ring)]
        else:
            u, v = ring[-1], ring[0]
        g.nx.edges[u, v]["delay"] = 1
        delayed.append([u, v])


def from_nir(source: Any, dt: float | None = None, reset: str | None = None, *,
             current_bias: str = "source", max_bytes: int | str | None = None) -> Graph:
    """Read a NIR graph (a `.nir` path or a `nir.NIRGraph`) into a float IR `Graph`.

    `dt` (seconds per step) is required: NIR has none, and exporters disagree. A file written
    by `nmcompile.to_nir` carries its dt, which is then used when `dt` is not given. `reset`
    ("zero" or "subtract") applies to every spiking neuron; by default NIR's own meaning (reset
    to v_reset, which must be 0) or, for nmcompile's files, each neuron's stored mode.
    `current_bias="source"` turns a projection bias that feeds a synaptic current into a
    constant spike source (exact, and runnable in fixed point); `"keep"` leaves it in the
    projection. Unmappable nodes raise an error naming them. A file whose arrays exceed
    `max_bytes` is refused before anything is read.
    """
    if reset not in (None, "zero", "subtract"):
        raise NmcompileError(f"reset must be 'zero' or 'subtract', got {reset!r}")
    if current_bias not in ("source", "keep"):
        raise NmcompileError(f"current_bias must be 'source' or 'keep', got {current_bias!r}")
    nir_graph, filename = _open(source, max_bytes)
    info = graph_info(getattr(nir_graph, "metadata", None))
    if dt is None:
        if info is None:
            raise NmcompileError(DT_HINT)
        dt = info["dt"]
    dt = float(dt)
    if not np.isfinite(dt) or dt <= 0:
        raise NmcompileError(f"dt must be a positive number of seconds, got {dt!r}")
    exact = info is not None and info["dt"] == dt
    default_reset = info["reset"] if info is not None and info["reset"] in ("zero", "subtract") \
        else "zero"

    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    _flatten(nir_graph, "", nodes, edges, top=True)
    preds: dict[str, list[str]] = defaultdict(list)
    for src, dst in edges:
        preds[dst].append(src)
    height1 = _height_one(nodes, preds)
    reader = _Reader(dt, reset, exact, default_reset)
    mapped: dict[str, _Mapped | int] = {}
    for flat, node in nodes.items():
        mapped[flat] = 0 if node is _THROUGH else reader.node(
            flat, node, flat in height1 or any(p in height1 for p in preds[flat]))
    for flat, node in nodes.items():
        if type(node).__name__ == "Conv1d" and not all(p in height1 for p in preds[flat]):
            raise UnsupportedError(f"NIR Conv1d {flat!r} reads a signal that is not a (C, N) "
                                   f"input or Conv1d output; the IR holds 1-D signals as "
                                   f"height-1 images and cannot reshape others")
    _wire(reader, mapped, edges)
    g = reader.g
    delayed = _delay_cycles(g, {m.exits[0]: m.entry for m in mapped.values()
                                if isinstance(m, _Mapped)})
    sources = bias_sources(g) if current_bias == "source" and not exact else []
    if exact:
        g.metadata = dict(info["metadata"])
        if recorded(g.metadata):  # the writer put those biases back on their layers
            bias_sources(g)
    else:
        g.metadata = {"nir": {"file": filename, "reset": reset or default_reset,
                              "delayed_cycle_edges": delayed, "bias_sources": sources}}
    g.validate()
    return g


__all__ = ["DT_HINT", "from_nir"]
