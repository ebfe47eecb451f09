"""Fold every chain of linear nodes between two neuron layers into one projection.

After this pass a graph is Input/neuron -> projection -> neuron/Output, with one projection
per (source, target, path delay). A chain is composed operator by operator, at a cost in
proportion to its result, never to the square of its input:

- convolutions and poolings (a pooling is a depthwise convolution, average pooling's 1/k^2
  in its weights) with scalar or per-channel `Scale`s become one `Conv2d` where an exact
  closed form exists (`_compose`: pooling then convolution is one strided convolution);
- one `Dense` with only flattening and scalar scales around it is that matrix, scaled; one
  `Sparse` so placed stays a `Sparse` (its values scaled: no dense matrix is built);
- any other chain becomes a `Dense` holding its matrix, computed from a matrix of the chain:
  its rows pushed back through the operators before it (their adjoints: transposed
  convolutions, the matrix transposed), its columns forward through those after it. Only a
  chain without a matrix (or without a closed form) pushes an identity through, of the
  smaller of its two sides.

Parallel paths with equal delay are summed. Every array the pass plans (results and
intermediates) is checked against the memory budget (`nmcompile.limits`) before it is
allocated, so a fold that would need terabytes is a `LimitError` naming its layers.

Biases met on the way become the target neuron's bias, which is exact when the neuron has no
synaptic current (alpha = 0): a bias in the current would be filtered by it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UnsupportedError
from ..ir import Conv2d, Dense, Flatten, Graph, Input, Output, Scale, Sparse
from ..ir.interpret import DTYPE, _projection
from ..ir.neurons import Neuron
from ..ir.node import Owned
from ..ir.projections import AvgPool2d, _Pool2d
from ..ir.synapses import conv_output_size
from ..limits import check_bytes

_FIX = "make these layers smaller, or put a neuron layer between them"


@dataclass
class _Path:
    source: str
    delay: int
    chain: list[str]  # projection nodes, source side first


def _paths(graph: Graph, target: str) -> list[_Path]:
    """Every path of projections from a neuron or input into `target`."""
    found: list[_Path] = []

    def walk(node: str, chain: list[str], delay: int) -> None:
        for src, d in graph.predecessors(node):
            if isinstance(graph[src], (Input, Neuron)):
                found.append(_Path(src, delay + d, chain[::-1]))
            else:
                if src in chain:
                    raise UnsupportedError(f"cycle through projections only at {src!r}; a "
                                           f"cycle must pass through a neuron layer")
                walk(src, [*chain, src], delay + d)

    walk(target, [], 0)
    return found


@dataclass
class _Conv:
    """A convolution's linear part; `div` is set while it is an untouched pooling (weights
    1/div), so that it is rebuilt exactly as `scale / div`."""

    weight: np.ndarray  # (C_out, C_in / groups, kH, kW)
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int
    div: int | None = None


@dataclass
class _Op:
    """One operator of a chain, without its bias: kind "conv" (`data` a _Conv), "dense" (the
    (out, in) matrix), "sparse" (the Sparse node) or "scale" (an elementwise array)."""

    name: str
    kind: str
    data: object
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]


def _ops(graph: Graph, chain: list[str], in_shape: tuple[int, ...], shapes: dict
         ) -> tuple[list[_Op], float, bool]:
    """The chain's operators (flattening and scalar scales taken out), the product of its
    scalar scales, and whether a flattening changes the shape."""
    ops: list[_Op] = []
    scalars: list[float] = []
    reshaped = False
    shape = tuple(in_shape)
    for name in chain:
        node, out = graph[name], tuple(shapes[name])
        if isinstance(node, Scale):
            if isinstance(node.scale, float):
                scalars.append(node.scale)
            else:
                ops.append(_Op(name, "scale", node.scale, shape, out))
        elif isinstance(node, Flatten):
            reshaped |= out != shape
        elif isinstance(node, Dense):
            ops.append(_Op(name, "dense", node.weight, shape, out))
        elif isinstance(node, Sparse):
            ops.append(_Op(name, "sparse", node, shape, out))
        elif isinstance(node, Conv2d):
            ops.append(_Op(name, "conv", _Conv(node.weight, node.stride, node.padding,
                                               node.dilation, node.groups), shape, out))
        elif isinstance(node, _Pool2d):
            (kh, kw), c = node.kernel_size, shape[0]
            div = kh * kw if isinstance(node, AvgPool2d) else 1
            ops.append(_Op(name, "conv", _Conv(np.full((c, 1, kh, kw), 1.0 / div),
                                               node.stride, node.padding, (1, 1), c, div),
                           shape, out))
        else:
            raise UnsupportedError(f"cannot fold {type(node).__name__} node {name!r} into a "
                                   f"projection")
        shape = out
    return ops, float(np.prod(scalars)), reshaped


# ---- closed forms: one convolution ---------------------------------------------------------

def _channels(scale: np.ndarray, shape: tuple[int, ...]) -> np.ndarray | None:
    """A Scale array as one factor per channel of a (C, H, W) input, or None."""
    if len(shape) != 3:
        return None
    s = np.asarray(scale)
    s3 = s.reshape((1,) * (3 - s.ndim) + s.shape)
    if s3.shape[1:] != (1, 1):
        return None
    return np.broadcast_to(s3[:, 0, 0], (shape[0],)).astype(np.float64)


def _in_channel(conv: _Conv) -> np.ndarray:
    """(C_out, C_in / groups): the input channel each kernel slice reads."""
    co, cg = conv.weight.shape[:2]
    return (np.arange(co)[:, None] // (co // conv.groups)) * cg + np.arange(cg)


def _scaled(conv: _Conv, *, out: np.ndarray | None = None, inp: np.ndarray | None = None
            ) -> _Conv:
    """The convolution followed by (out) or preceded by (inp) a per-channel scale."""
    w = conv.weight
    if out is not None:
        w = w * out[:, None, None, None]
    if inp is not None:
        w = w * inp[_in_channel(conv)][:, :, None, None]
    return replace(conv, weight=w, div=None)


def _ungroup(conv: _Conv, c_in: int) -> np.ndarray:
    """The weight as a groups=1 kernel (zeros between groups)."""
    co = conv.weight.shape[0]
    full = np.zeros((co, c_in, *conv.weight.shape[2:]))
    rows = np.arange(co)
    full[rows[:, None], _in_channel(conv)] = conv.weight[rows]
    return full


def _compose(a: _Conv, b: _Conv, in_shape: tuple[int, ...], what: str,
             max_bytes: int | str | None) -> _Conv | None:
    """`b` after `a` as one convolution of the (C, H, W) input, or None where none is exact.

    Per axis, output o of b reads a's output q = o*sb - pb + m*db, which reads input
    q*sa - pa + n*da = o*(sa*sb) - (pb*sa + pa) + (m*db*sa + n*da): one convolution of stride
    sa*sb, padding pb*sa + pa, taps at the offsets m*db*sa + n*da (their gcd the dilation).
    It is exact when every q in b's padding (zeros of a's output) reads only the input's
    padding, and when it gives b's number of outputs (the padding is symmetric).
    """
    geometry = []
    for ax in range(2):
        ka, kb = a.weight.shape[2 + ax], b.weight.shape[2 + ax]
        sa, pa, da = a.stride[ax], a.padding[ax], a.dilation[ax]
        sb, pb, db = b.stride[ax], b.padding[ax], b.dilation[ax]
        size = in_shape[1 + ax]
        mid = conv_output_size(size, ka, sa, pa, da)
        out = conv_output_size(mid, kb, sb, pb, db)
        q = (np.arange(out)[:, None] * sb - pb + np.arange(kb) * db).ravel()
        q = q[(q < 0) | (q >= mid)]
        x = q[:, None] * sa - pa + np.arange(ka) * da
        if np.any((x >= 0) & (x < size)):
            return None
        step_b, step_a = db * sa, da
        g = math.gcd(step_b if kb > 1 else 0, step_a if ka > 1 else 0) or 1
        k = ((kb - 1) * step_b + (ka - 1) * step_a) // g + 1
        stride, pad = sa * sb, pb * sa + pa
        if conv_output_size(size, k, stride, pad, g) != out:
            return None
        geometry.append((k, stride, pad, g, step_b // g if kb > 1 else 0,
                         step_a // g if ka > 1 else 1))
    (kh, sh, ph, gh, bh, ah), (kw, sw, pw, gw, bw, aw) = geometry
    wa, wb = a.weight, b.weight
    co, cz, c_in = wb.shape[0], wa.shape[0], a.groups * wa.shape[1]
    kah, kaw = wa.shape[2:]
    if wa.shape[1] == 1 and a.groups == cz:  # a depthwise: b's channel structure
        case, groups, cin = "a", b.groups, wb.shape[1]
        extra = co * cin * kah * kaw
    elif wb.shape[1] == 1 and b.groups == co:  # b depthwise: a's channel structure
        case, groups, cin, extra = "b", a.groups, wa.shape[1], 0
    else:
        case, groups, cin = "full", 1, c_in
        extra = (co * cz + cz * c_in) * (kh * kw + kah * kaw)
    check_bytes(8 * (co * cin * (kh * kw + kah * kaw) + extra),
                f"{what} into a {co} x {cin} x {kh} x {kw} convolution kernel", max_bytes, _FIX)
    if case == "a":
        wa_sel = wa[_in_channel(b), 0]  # (co, cin, kah, kaw): a's kernel under each slice

        def term(m: int, p: int) -> np.ndarray:
            return wb[:, :, m, p, None, None] * wa_sel
    elif case == "b":
        def term(m: int, p: int) -> np.ndarray:
            return wb[:, 0, m, p, None, None, None] * wa
    else:
        full_a = _ungroup(a, c_in) if a.groups > 1 else wa
        full_b = _ungroup(b, cz) if b.groups > 1 else wb

        def term(m: int, p: int) -> np.ndarray:
            return np.tensordot(full_b[:, :, m, p], full_a, axes=1)
    weight = np.zeros((co, cin, kh, kw))
    for m in range(wb.shape[2]):
        for p in range(wb.shape[3]):
            weight[:, :, m * bh:m * bh + (kah - 1) * ah + 1:ah,
                   p * bw:p * bw + (kaw - 1) * aw + 1:aw] += term(m, p)
    return _Conv(weight, (sh, sw), (ph, pw), (gh, gw), groups)


def _conv_form(ops: list[_Op], scale: float, reshaped: bool, in_shape: tuple[int, ...],
               out_shape: tuple[int, ...], what: str, max_bytes: int | str | None
               ) -> Conv2d | None:
    """The chain as one convolution, if it is one: convolutions and poolings with scalar or
    per-channel scales, composed where exact."""
    kinds = {op.kind for op in ops}
    if reshaped or "conv" not in kinds or kinds - {"conv", "scale"}:
        return None
    convs: list[_Conv] = []
    before: np.ndarray | None = None
    for op in ops:
        if op.kind == "scale":
            ch = _channels(op.data, op.in_shape)
            if ch is None:
                return None
            if convs:
                convs[-1] = _scaled(convs[-1], out=ch)
            else:
                before = ch if before is None else before * ch
        else:
            convs.append(op.data if before is None else _scaled(op.data, inp=before))
            before = None
    conv = convs[0]
    for nxt in convs[1:]:
        conv = _compose(conv, nxt, in_shape, what, max_bytes)
        if conv is None:
            return None
    check_bytes(8 * conv.weight.size, f"{what} into a "
                f"{' x '.join(map(str, conv.weight.shape))} convolution kernel", max_bytes, _FIX)
    weight = (np.full(conv.weight.shape, scale / conv.div) if conv.div is not None
              else conv.weight * scale)
    proj = Conv2d(weight, None, conv.stride, conv.padding, conv.dilation, conv.groups)
    if proj.output_shape(tuple(in_shape), what) != tuple(out_shape):
        return None
    return proj


# ---- matrices ------------------------------------------------------------------------------

def _apply(op: _Op, x: torch.Tensor, adjoint: bool) -> torch.Tensor:
    """The operator (or its adjoint) on a batch of vectors (B, ...)."""
    b = x.shape[0]
    x = x.reshape(b, *(op.out_shape if adjoint else op.in_shape))
    if op.kind == "scale":
        return x * torch.as_tensor(np.asarray(op.data), dtype=DTYPE)
    if op.kind == "dense":
        w = torch.as_tensor(op.data, dtype=DTYPE)
        return x.reshape(b, -1) @ (w if adjoint else w.T)
    if op.kind == "sparse":
        node = op.data
        w = torch.sparse_coo_tensor(torch.as_tensor(np.stack([node.rows, node.cols])),
                                    torch.as_tensor(node.values, dtype=DTYPE),
                                    node.shape, check_invariants=True).coalesce()
        return torch.sparse.mm(w.t() if adjoint else w, x.reshape(b, -1).T).T
    c = op.data
    w = torch.as_tensor(c.weight, dtype=DTYPE)
    if not adjoint:
        return F.conv2d(x, w, None, c.stride, c.padding, c.dilation, c.groups)
    extra = tuple(op.in_shape[1 + i] - ((op.out_shape[1 + i] - 1) * c.stride[i]
                                        - 2 * c.padding[i] + c.dilation[i] * (w.shape[2 + i] - 1)
                                        + 1) for i in range(2))
    return F.conv_transpose2d(x, w, None, c.stride, c.padding, extra, c.groups, c.dilation)


def _push(ops: list[_Op], x: torch.Tensor, adjoint: bool) -> torch.Tensor:
    for op in (reversed(ops) if adjoint else ops):
        x = _apply(op, x, adjoint)
    return x.reshape(x.shape[0], -1)


def _matrix(ops: list[_Op], scale: float, n_in: int, n_out: int, what: str,
            max_bytes: int | str | None, held: int = 0) -> np.ndarray:
    """The chain's matrix (n_out, n_in), by the cheapest plan whose size fits the budget:
    from one of its matrices (rows back through the operators before it, columns forward
    through those after it), else an identity of the smaller side pushed through. `what`
    names the matrix in the error when it does not fit."""
    result = n_out * n_in
    if not ops or (len(ops) == 1 and ops[0].kind in ("dense", "sparse")):
        check_bytes(8 * 2 * result + held, what, max_bytes, _FIX)  # the matrix and its copy
        if not ops:
            return np.eye(n_in) * scale
        if ops[0].kind == "dense":
            # unscaled, the graph's own matrix: shared with the folded graph, not copied
            return ops[0].data if scale == 1.0 else ops[0].data * scale
        node, out = ops[0].data, np.zeros((n_out, n_in))
        np.add.at(out, (node.rows, node.cols), node.values)
        out *= scale
        return out
    sizes = [n_in] + [int(np.prod(op.out_shape)) for op in ops]
    m = len(ops)

    def stage(batch: int, lo: int, hi: int) -> int:  # `batch` vectors through ops[lo:hi]
        if lo == hi:
            return 2 * batch * sizes[lo]
        return batch * max(sizes[j] + sizes[j + 1] for j in range(lo, hi))

    plans = [(stage(n_out, 0, m), "adjoint", -1), (stage(n_in, 0, m), "forward", -1)]
    for k, op in enumerate(ops):
        if op.kind == "dense":
            plans.append((max(stage(sizes[k], k + 1, m), stage(n_out, 0, k)), "columns", k))
            plans.append((max(stage(sizes[k + 1], 0, k), stage(n_in, k + 1, m)), "rows", k))
    cost, how, k = min(plans, key=lambda p: p[0])
    check_bytes(8 * (cost + 2 * result) + held, what, max_bytes, _FIX)
    with torch.no_grad():
        if how == "adjoint":
            r = _push(ops, torch.eye(n_out, dtype=DTYPE), True)
        elif how == "forward":
            r = _push(ops, torch.eye(n_in, dtype=DTYPE), False).T
        else:
            w = torch.as_tensor(ops[k].data, dtype=DTYPE)
            if how == "columns":
                r = _push(ops[:k], _push(ops[k + 1:], w.T, False).T, True)
            else:
                r = _push(ops[k + 1:], _push(ops[:k], w, True).T, False).T
        out = np.array(r.numpy(), order="C")  # a copy: never the graph's own weights
    if scale != 1.0:
        out *= scale
    return out


def _constant(graph: Graph, target: str, shapes: dict) -> np.ndarray | None:
    """What the projections feeding `target` add when every source is silent: their biases,
    carried through the rest of the chain. None when that is zero."""
    memo: dict[str, torch.Tensor | None] = {}

    def value(name: str) -> torch.Tensor | None:
        if name not in memo:
            parts = []
            for src, d in graph.predecessors(name):
                if isinstance(graph[src], (Input, Neuron)) or (v := value(src)) is None:
                    continue
                if d > 0:
                    raise UnsupportedError(f"a bias reaches {name!r} through a delayed edge "
                                           f"from {src!r}; it cannot be folded exactly")
                parts.append(v)
            node = graph[name]
            if parts or getattr(node, "bias", None) is not None:
                x = sum(parts) if parts else torch.zeros(
                    (1, *shapes[graph.predecessors(name)[0][0]]), dtype=DTYPE)
                memo[name] = _projection(node)(x)
            else:
                memo[name] = None
        return memo[name]

    parts = [v for src, _ in graph.predecessors(target)
             if not isinstance(graph[src], (Input, Neuron)) and (v := value(src)) is not None]
    return sum(parts)[0].numpy() if parts else None


def _with_bias(node: Neuron, extra: np.ndarray, name: str) -> Neuron:
    if np.any(np.asarray(getattr(node, "alpha", 0.0)) != 0):
        raise UnsupportedError(
            f"a projection bias feeds {name!r}, whose synaptic current (alpha > 0) would "
            f"filter it; no exact neuron bias exists. Rewrite it as a constant spiking "
            f"source (nmcompile.passes.bias.bias_sources; from_torch does, and from_nir with "
            f"current_bias='source'), or give that layer's input projection bias=False")
    return type(node)(**{**node.params(), "bias": node.bias + extra})


def _fold(graph: Graph, source: str, target: str, paths: list[_Path], shapes: dict,
          max_bytes: int | str | None) -> Conv2d | Dense | Sparse:
    """One projection for the paths from `source` into `target` (equal delays)."""
    in_shape, out_shape = tuple(shapes[source]), tuple(shapes[target])
    n_in, n_out = int(np.prod(in_shape)), int(np.prod(out_shape))
    built = []
    for p in paths:
        if p.chain:
            ops, scale, reshaped = _ops(graph, p.chain, in_shape, shapes)
            built.append((f"folding {' -> '.join(map(repr, p.chain))}", ops, scale, reshaped))
        else:
            built.append((None, [], 1.0, False))
    if len(built) == 1 and paths[0].chain:
        proj = _conv_form(built[0][1], built[0][2], built[0][3], in_shape, out_shape,
                          built[0][0], max_bytes)
        if proj is not None:
            return proj
        ops, scale = built[0][1], built[0][2]
        if len(ops) == 1 and ops[0].kind == "sparse":  # a lone Sparse stays sparse
            node = ops[0].data
            values = node.values if scale == 1.0 else node.values * scale
            return Sparse(Owned(node.rows), Owned(node.cols), Owned(values), node.shape,
                          out_shape=out_shape if len(out_shape) > 1 else None)
    weight = None
    for prefix, ops, scale, _ in built:
        what = (f"{prefix} into a {n_out} x {n_in} matrix" if prefix else
                f"the identity projection from {source!r} into {target!r} ({n_in} x {n_in})")
        part = _matrix(ops, scale, n_in, n_out, what, max_bytes,
                       held=0 if weight is None else 8 * n_out * n_in)
        if weight is None:  # a copy before summing: `part` may be the graph's own matrix
            weight = part.copy() if len(built) > 1 else part
        else:
            weight += part
    return Dense(Owned(weight), out_shape=out_shape if len(out_shape) > 1 else None)


def fold_linear(graph: Graph, *, max_bytes: int | str | None = None) -> Graph:
    """Return an equivalent graph in which neurons are joined by single projections.

    `max_bytes` is the memory budget for the arrays the fold builds (`nmcompile.limits`);
    a chain that would need more raises `LimitError` naming its layers. A projection that
    needs no folding (a lone, unscaled `Dense` or `Sparse`) shares its arrays with `graph`
    instead of copying them: do not write into one graph's arrays while using the other."""
    shapes = graph.validate()
    out = Graph(dt=graph.dt, metadata=graph.metadata)
    keep = [n for n in graph.schedule() if isinstance(graph[n], (Input, Neuron, Output))]
    for name in keep:
        out.add_node(name, graph[name])
    for target in keep:
        if isinstance(graph[target], Input):
            continue
        groups: dict[tuple[str, int], list[_Path]] = {}
        for path in _paths(graph, target):
            groups.setdefault((path.source, path.delay), []).append(path)
        for (source, delay), paths in sorted(groups.items()):
            if isinstance(graph[target], Output) and all(not p.chain for p in paths):
                out.add_edge(source, target, delay)  # outputs record a layer directly
                continue
            proj = _fold(graph, source, target, paths, shapes, max_bytes)
            pname = f"{target}.from_{source}" + (f".d{delay}" if delay else "")
            out.add_node(pname, proj)
            out.add_edge(source, pname, delay)
            out.add_edge(pname, target, 0)
        constant = _constant(graph, target, shapes)
        if constant is not None and np.any(constant != 0):
            node = graph[target]
            if isinstance(node, Output):
                raise UnsupportedError(f"output {target!r} is fed by a projection with a bias; "
                                       f"add a neuron layer (an LI readout) before it")
            out.nx.nodes[target]["node"] = _with_bias(node, constant.reshape(shapes[target]),
                                                      target)
    out.validate()
    return out
