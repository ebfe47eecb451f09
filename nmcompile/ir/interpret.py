"""The float interpreter: the meaning of a float graph, step by step, in float64.

It computes the projections with the same PyTorch functions a trained model uses and the
neurons with `dynamics.py`, the code the trainable layers use, so a model and its graph agree
bit for bit wherever the model's own arithmetic is float64.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..contract import Capabilities, Problem, node_problems
from ..errors import NmcompileError, UnsupportedError
from ..result import RunResult, assemble_outputs
from . import dynamics
from .graph import Graph
from .inputs import check_activity, normalize_inputs
from .neurons import ALIF, IF, LI, LIF, Neuron
from .node import Node, Shape
from .ports import Input, Output
from .projections import AvgPool2d, Conv2d, Dense, Flatten, Scale, Sparse, SumPool2d

DTYPE = torch.float64


def _projection(node: Node) -> Callable[[Tensor], Tensor]:
    if isinstance(node, Dense):
        w = torch.as_tensor(node.weight, dtype=DTYPE)
        b = None if node.bias is None else torch.as_tensor(node.bias, dtype=DTYPE)
        out = node.out_shape or (w.shape[0],)
        return lambda x: F.linear(x.reshape(x.shape[0], -1), w, b).reshape(x.shape[0], *out)
    if isinstance(node, Sparse):
        w = torch.sparse_coo_tensor(torch.as_tensor(np.stack([node.rows, node.cols])),
                                    torch.as_tensor(node.values, dtype=DTYPE),
                                    node.shape, check_invariants=True).coalesce()
        out = node.out_shape or (node.shape[0],)
        return lambda x: torch.sparse.mm(w, x.reshape(x.shape[0], -1).T).T.reshape(
            x.shape[0], *out)
    if isinstance(node, Conv2d):
        w = torch.as_tensor(node.weight, dtype=DTYPE)
        b = None if node.bias is None else torch.as_tensor(node.bias, dtype=DTYPE)
        return lambda x: F.conv2d(x, w, b, node.stride, node.padding, node.dilation, node.groups)
    if isinstance(node, SumPool2d):
        return lambda x: F.avg_pool2d(x, node.kernel_size, node.stride, node.padding,
                                      divisor_override=1)
    if isinstance(node, AvgPool2d):
        return lambda x: F.avg_pool2d(x, node.kernel_size, node.stride, node.padding)
    if isinstance(node, Flatten):
        return lambda x: x.flatten(node.start_dim + 1 if node.start_dim >= 0 else node.start_dim,
                                   node.end_dim + 1 if node.end_dim >= 0 else node.end_dim)
    if isinstance(node, Scale):
        scale = dynamics.as_tensor(node.scale, DTYPE)
        return lambda x: scale * x
    if isinstance(node, Output):
        return lambda x: x
    raise NmcompileError(f"the float interpreter cannot run {type(node).__name__} nodes")


def _fanout(node: Node) -> Callable[[Tensor], Tensor] | None:
    """Counts, for a batch of inputs, the stored synapses reached by non-zero inputs."""
    if isinstance(node, Dense):
        n_out = node.weight.shape[0]
        return lambda x: (x != 0).sum() * n_out
    if isinstance(node, Sparse):
        fan = torch.as_tensor(np.bincount(node.cols, minlength=node.shape[1]), dtype=DTYPE)
        return lambda x: ((x.reshape(x.shape[0], -1) != 0).to(DTYPE) @ fan).sum()
    if isinstance(node, Conv2d):
        ones = torch.ones(node.weight.shape, dtype=DTYPE)
        return lambda x: F.conv2d((x != 0).to(DTYPE), ones, None, node.stride, node.padding,
                                  node.dilation, node.groups).sum()
    if isinstance(node, (SumPool2d, AvgPool2d)):
        return lambda x: F.avg_pool2d((x != 0).to(DTYPE), node.kernel_size, node.stride,
                                      node.padding, divisor_override=1).sum()
    return None


class _NeuronState:
    """State and update of one neuron layer, batch-first."""

    def __init__(self, node: Neuron, batch: int, shape: Shape) -> None:
        self.node = node
        p = {k: dynamics.as_tensor(v, DTYPE) for k, v in node.params().items()
             if k not in ("reset",)}
        self.params = p
        self.state = {k: torch.zeros((batch, *shape), dtype=DTYPE) for k in node.states}
        self.margin = float("inf")

    def step(self, x: Tensor) -> Tensor:
        node, p, st = self.node, self.params, self.state
        if isinstance(node, LI):
            st["i"], st["v"] = dynamics.li_step(x, st["i"], st["v"], **p)
            return st["v"]
        if isinstance(node, ALIF):
            s, st["i"], st["a"], st["v"], v_pre, theta = dynamics.alif_step(
                x, st["i"], st["a"], st["v"], reset=node.reset, **p)
        else:
            if isinstance(node, IF):
                i = torch.zeros_like(st["v"])
                s, _, st["v"], v_pre = dynamics.lif_step(x, i, st["v"], beta=1.0, alpha=0.0,
                                                         reset=node.reset, **p)
            elif isinstance(node, LIF):
                s, st["i"], st["v"], v_pre = dynamics.lif_step(x, st["i"], st["v"],
                                                               reset=node.reset, **p)
            else:
                raise NmcompileError(f"the float interpreter cannot run {type(node).__name__}")
            theta = p["threshold"]
        if v_pre.numel():
            self.margin = min(self.margin, float((v_pre - theta).abs().min()))
        return s


def interpret(graph: Graph, inputs: np.ndarray | Mapping[str, np.ndarray], *,
              record: bool = False) -> RunResult:
    """Run a float graph on inputs (T, batch, *shape) (or a dict by input name)."""
    shapes = graph.validate()
    order = graph.schedule()
    inputs, T, batch = normalize_inputs(graph, inputs, shapes)
    check_activity(T, batch, shapes, record)

    ops: dict[str, Callable[[Tensor], Tensor]] = {}
    neurons: dict[str, _NeuronState] = {}
    fanouts = {}
    for name in order:
        node = graph[name]
        if isinstance(node, Neuron):
            neurons[name] = _NeuronState(node, batch, shapes[name])
            ops[name] = neurons[name].step
        elif not isinstance(node, (Input, Output)):  # Outputs: assemble_outputs below
            ops[name] = _projection(node)
            if (f := _fanout(node)) is not None:
                fanouts[name] = f
    preds = {name: graph.predecessors(name) for name in order}
    tensors = {name: torch.as_tensor(arr, dtype=DTYPE) for name, arr in inputs.items()}
    history: dict[str, list[Tensor]] = {name: [] for name in order}
    events = dict.fromkeys(fanouts, 0)
    spiking = [n for n, st in neurons.items() if st.node.spiking]
    traces: dict[str, dict[str, list[Tensor]]] = {n: {k: [] for k in st.state}
                                                  for n, st in neurons.items()}
    zeros = {}

    with torch.no_grad():
        for t in range(T):
            for name in order:
                if name in tensors:
                    history[name].append(tensors[name][t])
                    continue
                if name not in ops:  # an Output
                    continue
                x = None
                for src, d in preds[name]:
                    if t - d >= 0:
                        value = history[src][t - d]
                    else:
                        value = zeros.setdefault(src, torch.zeros((batch, *shapes[src]),
                                                                  dtype=DTYPE))
                    x = value if x is None else x + value
                if name in fanouts:
                    events[name] += int(fanouts[name](x))
                history[name].append(ops[name](x))
                if record and name in neurons:
                    for k, v in neurons[name].state.items():
                        traces[name][k].append(v.clone())

    def stack(values: list[Tensor]) -> np.ndarray:
        return torch.stack(values).reshape(T, batch, -1).numpy()

    spikes_of = {n: stack(history[n]).astype(np.uint8) for n in spiking}
    sources = {name: preds[name] for name in graph.outputs}
    outputs = assemble_outputs(sources, {src: stack(history[src]) for pairs in sources.values()
                                         for src, _ in pairs}, spiking, np.float64)
    counters = {
        "spikes": {n: int(spikes_of[n].sum(dtype=np.int64)) for n in spiking},
        "neuron_updates": {n: T * batch * int(np.prod(shapes[n])) for n in neurons},
        "synaptic_events": events,
    }
    return RunResult(
        outputs=outputs,
        backend="float",
        spikes=spikes_of if record else {},
        states={n: {k: stack(v) for k, v in tr.items()} for n, tr in traces.items()}
        if record else {},
        counters=counters,
        margins={n: neurons[n].margin for n in spiking},
    )


# The float interpreter as the registry's backend `float`: the one backend that reads the
# float IR (DESIGN.md), with no artefact to compile.
name = "float"
capabilities = Capabilities(
    nodes=(Input, Output, Dense, Sparse, Conv2d, SumPool2d, AvgPool2d, Flatten, Scale, LIF, IF,
           ALIF, LI),
    tools=("torch",),
    notes=("float64, PyTorch's operators: the meaning of a float graph",),
)


def check(graph: Graph) -> list[Problem]:
    """The interpreter runs every float graph that validates: only node types are checked."""
    return node_problems(graph, name, capabilities)


def run(graph: Graph, spikes: np.ndarray | Mapping[str, np.ndarray], *, record: bool = False
        ) -> RunResult:
    """`interpret`, as a backend's `run`."""
    return interpret(graph, spikes, record=record)


def compile(graph: Graph, out_dir: str | Path) -> Path:
    raise UnsupportedError("the float interpreter has no artefact to compile; quantise the "
                           "graph and compile it for a target: nmcompile.compile("
                           "nmcompile.quantize(graph), out, 'lava')")
