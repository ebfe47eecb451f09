"""PyTorch frontend: trace one step of a model with `torch.fx` and build the float IR.

The model is a `nmcompile.nn.TimeLoop` (its per-step body is traced) or a per-step module
itself. A value in the traced program becomes a list of IR nodes whose outputs it sums: a
`+` of two paths just joins the lists, and every consumer gets one edge per contribution. This
is exact because every IR node sums its incoming edges.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.fx as fx
from torch import nn

from .. import nn as snn
from ..errors import UnsupportedError
from ..ir import AvgPool2d, Conv2d, Dense, Flatten, Graph, Input, Output, Scale
from ..ir.names import unique_name
from ..passes.bias import bias_sources
from . import snntorch as snntorch_layers

SUPPORTED = ("nn.Linear, nn.Conv2d, nn.AvgPool2d, nn.Flatten, nn.Dropout, nn.Identity, "
             "nn.BatchNorm1d/2d (after Linear/Conv2d), nmcompile.nn.LIF/CubaLIF/ALIF/LI/"
             "Recurrent, snntorch.Leaky/Synaptic/RLeaky/RSynaptic, '+', '-', multiplication "
             "by a number, torch.flatten")

ONE_STEP = ("nmcompile traces one time step: write the per-step body as a module (a Python "
            "loop over time or data-dependent control flow cannot be followed) and wrap it in "
            "nmcompile.nn.TimeLoop, or use an nn.Sequential of layers and snnTorch neurons "
            "with init_hidden=True, as snnTorch's NIR export does, and call it once per step")

_PASS_THROUGH = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout)


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return (isinstance(m, snn.SpikingModule) or snntorch_layers.is_neuron(m)
                or super().is_leaf_module(m, qualname))


def _np(t: torch.Tensor | None) -> np.ndarray | None:
    return None if t is None else t.detach().cpu().to(torch.float64).numpy().copy()


class _Builder:
    def __init__(self, gm: fx.GraphModule, graph: Graph) -> None:
        self.gm, self.g = gm, graph
        self.values: dict[fx.Node, list[str]] = {}
        self.calls: dict[str, int] = {}
        self.tuples: set[fx.Node] = set()  # snnTorch layers returning (spikes, states...)

    def value(self, arg: Any, where: str, whole: bool = False) -> list[str]:
        if not isinstance(arg, fx.Node):
            raise UnsupportedError(f"{where}: constant operand {arg!r} is not supported; "
                                   f"use a layer's bias instead")
        if arg in self.tuples and not whole:
            raise UnsupportedError(f"{where} receives the (spikes, states) tuple of snnTorch "
                                   f"layer {arg.target!r}; give it init_hidden=True "
                                   f"(and output=False) or take [0]")
        return self.values[arg]

    def add(self, name: str, node: Any, sources: list[str]) -> list[str]:
        name = unique_name(name, self.g, sep="_", first=1)
        self.g.add_node(name, node)
        for src in sources:
            self.g.add_edge(src, name, 0)
        return [name]

    def module(self, n: fx.Node) -> list[str]:
        m = self.gm.get_submodule(n.target)
        where = f"module {n.target!r} ({type(m).__name__})"
        # IR names follow the module path; a bare index ("0" in a Sequential) gets the type.
        name = n.target if not n.target[0].isdigit() else f"{type(m).__name__.lower()}{n.target}"
        snntorch = snntorch_layers.is_neuron(m)
        if isinstance(m, snn.SpikingModule) or snntorch:
            self.calls[n.target] = self.calls.get(n.target, 0) + 1
            if self.calls[n.target] > 1:
                raise UnsupportedError(
                    f"{where} is called more than once per step: a Python loop over time was "
                    f"unrolled by tracing. {ONE_STEP}")
        if len(n.args) != 1 or n.kwargs:
            hint = (" (snnTorch: keep the states inside the layer with init_hidden=True)"
                    if snntorch else "")
            raise UnsupportedError(f"{where} must be called with exactly one tensor{hint}")
        src = self.value(n.args[0], where)
        if isinstance(m, _PASS_THROUGH):
            return src
        if isinstance(m, nn.Linear):
            return self.add(name, Dense(_np(m.weight), _np(m.bias)), src)
        if isinstance(m, nn.Conv2d):
            if m.padding_mode != "zeros" or (isinstance(m.padding, str) and m.padding != "valid"):
                raise UnsupportedError(f"{where}: only zero padding given as numbers is supported "
                                       f"(got padding={m.padding!r}, mode {m.padding_mode!r})")
            padding = (0, 0) if isinstance(m.padding, str) else m.padding
            return self.add(name, Conv2d(_np(m.weight), _np(m.bias), m.stride, padding,
                                           m.dilation, m.groups), src)
        if isinstance(m, nn.AvgPool2d):
            if m.ceil_mode or not m.count_include_pad or m.divisor_override is not None:
                raise UnsupportedError(f"{where}: only ceil_mode=False, count_include_pad=True "
                                       f"and no divisor_override are supported")
            return self.add(name, AvgPool2d(m.kernel_size, m.stride, m.padding), src)
        if isinstance(m, nn.Flatten):
            return self.flatten(name, src, m.start_dim, m.end_dim, where)
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            return self.batchnorm(n, m, src, where)
        if isinstance(m, snn.Recurrent):
            (name,) = self.add(name, m.to_ir(), src)
            rec = self.g.add_node(f"{name}_rec", m.recurrent_ir())
            self.g.add_edge(name, rec, 1)
            self.g.add_edge(rec, name, 0)
            return [name]
        if isinstance(m, snn.SpikingModule):
            return self.add(name, m.to_ir(), src)
        if snntorch:
            if snntorch_layers.returns_tuple(m):
                self.tuples.add(n)
            return snntorch_layers.to_ir(self, name, m, src, where)
        raise UnsupportedError(f"{where} is not supported. Supported: {SUPPORTED}")

    def flatten(self, name: str, src: list[str], start: int, end: int, where: str) -> list[str]:
        if start == 0 or (end >= 0 and end < start):
            raise UnsupportedError(f"{where}: flattening the batch axis (start_dim=0) is not "
                                   f"supported; use start_dim=1")
        return self.add(name, Flatten(start - 1 if start > 0 else start,
                                        end - 1 if end > 0 else end), src)

    def batchnorm(self, n: fx.Node, m: nn.Module, src: list[str], where: str) -> list[str]:
        prev = n.args[0]
        proj = self.g[src[0]] if len(src) == 1 else None
        if (not isinstance(proj, (Dense, Conv2d)) or len(prev.users) != 1
                or self.g.nx.out_degree(src[0])):
            raise UnsupportedError(f"{where}: BatchNorm is folded into the Linear or Conv2d just "
                                   f"before it; put it directly after one (used nowhere else)")
        if m.running_mean is None:
            raise UnsupportedError(f"{where}: needs track_running_stats=True to be folded")
        scale = 1.0 / np.sqrt(_np(m.running_var) + m.eps)
        if m.weight is not None:
            scale = scale * _np(m.weight)
        shift = -_np(m.running_mean) * scale
        if m.bias is not None:
            shift = shift + _np(m.bias)
        bias = shift if proj.bias is None else proj.bias * scale + shift
        w = proj.weight * scale.reshape((-1,) + (1,) * (proj.weight.ndim - 1))
        proj.weight, proj.bias = w, bias
        return src

    def function(self, n: fx.Node) -> list[str]:
        f, args = n.target, n.args
        where = f"operation {getattr(f, '__name__', f)!r} at {n.name!r}"
        if f is operator.getitem and args and args[0] in self.tuples:
            if args[1] != 0:
                raise UnsupportedError(f"{where}: only the spikes ([0]) of snnTorch layer "
                                       f"{args[0].target!r} can be used; the IR does not expose "
                                       f"a spiking layer's states")
            return self.value(args[0], where, whole=True)
        if f is operator.getitem:
            raise UnsupportedError(f"{where}: indexing a tensor is not supported (x[t] in a "
                                   f"loop over time?). {ONE_STEP}")
        if f in (operator.add, torch.add) and len(args) == 2 and not n.kwargs:
            a, b = self.value(args[0], where), self.value(args[1], where)
            if set(a) & set(b):
                raise UnsupportedError(f"{where} adds a value to itself; multiply by 2 instead")
            return a + b
        if f in (operator.sub, torch.sub) and len(args) == 2 and not n.kwargs:
            a, b = self.value(args[0], where), self.value(args[1], where)
            return a + self.add(f"{n.name}_neg", Scale(-1.0), b)
        if f in (operator.mul, torch.mul) and len(args) == 2:
            const = [a for a in args if isinstance(a, (int, float)) and not isinstance(a, bool)]
            tensors = [a for a in args if isinstance(a, fx.Node)]
            if len(const) == 1 and len(tensors) == 1:
                return self.add(n.name, Scale(float(const[0])), self.value(tensors[0], where))
        if f is torch.flatten:
            start = args[1] if len(args) > 1 else n.kwargs.get("start_dim", 0)
            end = args[2] if len(args) > 2 else n.kwargs.get("end_dim", -1)
            return self.flatten(n.name, self.value(args[0], where), start, end, where)
        if f in (torch.nn.functional.dropout,):
            return self.value(args[0], where)
        raise UnsupportedError(f"{where} is not supported. Supported: {SUPPORTED}")

    def method(self, n: fx.Node) -> list[str]:
        where = f"method {n.target!r} at {n.name!r}"
        if n.target == "flatten":
            start = n.args[1] if len(n.args) > 1 else n.kwargs.get("start_dim", 0)
            end = n.args[2] if len(n.args) > 2 else n.kwargs.get("end_dim", -1)
            return self.flatten(n.name, self.value(n.args[0], where), start, end, where)
        raise UnsupportedError(f"{where} is not supported. Supported: {SUPPORTED}")


def from_torch(model: nn.Module, example_input: torch.Tensor | Sequence[torch.Tensor], *,
               dt: float | None = None, metadata: dict[str, Any] | None = None) -> Graph:
    """Build the float IR of `model`.

    `model` is a `nmcompile.nn.TimeLoop` or a module computing one step; `example_input` is
    time-major (T, batch, *features), or a tuple of such for several inputs; only its feature
    shapes are used. BatchNorm is folded with its running statistics (the model's eval-mode
    meaning). Unsupported modules and operations raise `UnsupportedError` naming them.
    """
    step = model.step if isinstance(model, snn.TimeLoop) else model
    many = isinstance(example_input, (tuple, list))
    examples = tuple(example_input) if many else (example_input,)
    try:
        traced = _Tracer().trace(step)
    except Exception as exc:  # tracing runs user code: any failure means "cannot follow"
        raise UnsupportedError(
            f"cannot trace {type(step).__name__}.forward ({type(exc).__name__}: {exc}). "
            f"{ONE_STEP}") from None
    gm = fx.GraphModule(step, traced)
    graph = Graph(dt=dt, metadata=metadata)
    b = _Builder(gm, graph)
    placeholders = [n for n in traced.nodes if n.op == "placeholder"]
    if len(placeholders) != len(examples):
        raise UnsupportedError(f"the model takes {len(placeholders)} inputs, "
                               f"{len(examples)} example inputs were given")
    for n, ex in zip(placeholders, examples, strict=True):
        if ex.ndim < 3:
            raise UnsupportedError(f"example input for {n.name!r} must be time-major "
                                   f"(T, batch, *features), got shape {tuple(ex.shape)}")
        name = "input" if len(placeholders) == 1 else n.name
        b.values[n] = b.add(name, Input(tuple(ex.shape[2:])), [])
    for n in traced.nodes:
        if n.op == "call_module":
            b.values[n] = b.module(n)
        elif n.op == "call_function":
            b.values[n] = b.function(n)
        elif n.op == "call_method":
            b.values[n] = b.method(n)
        elif n.op == "get_attr":
            owner = gm.get_submodule(n.target.rpartition(".")[0])
            hint = (" (an snnTorch layer's state: keep it inside the layer with "
                    "init_hidden=True)" if snntorch_layers.is_neuron(owner) else "")
            raise UnsupportedError(f"parameter {n.target!r} used directly in forward{hint}: "
                                   f"only layers are supported. Supported: {SUPPORTED}")
        elif n.op == "output":
            outs = n.args[0] if isinstance(n.args[0], (tuple, list)) else (n.args[0],)
            for k, out in enumerate(outs):
                name = "output" if len(outs) == 1 else f"output_{k}"
                b.add(name, Output(), b.value(out, "model output", whole=True))
    graph.validate()
    # a bias into a current-based neuron (snnTorch Synaptic after a Linear with its default
    # bias) as a constant spiking source, as the NIR reader does: the fixed-point targets
    # hold no bias that a synaptic current filters
    if sources := bias_sources(graph):
        graph.metadata["bias_sources"] = sources
    return graph
