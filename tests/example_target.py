"""The smallest complete target (docs/backends.md): QDense -> QLIF chains in plain numpy."""

from pathlib import Path

import numpy as np

from nmcompile.contract import Capabilities, Option, Problem, node_problems, raise_problems
from nmcompile.ir import QLIF, Graph, Input, Output, QDense
from nmcompile.ir.inputs import normalize_inputs
from nmcompile.result import RunResult

name = "numpy-dense"
capabilities = Capabilities(nodes=(Input, Output, QDense, QLIF), edge_delays=False, cycles=False,
                            options=(Option("compressed", bool, False, "", ("compile",)),))


def check(graph: Graph) -> list[Problem]:
    return node_problems(graph, name, capabilities) + [
        Problem(n, f"node {n!r} has several inputs; {name} sums none")
        for n in graph.nodes if len(graph.predecessors(n)) > 1]


def _decay(x: np.ndarray, keep: np.ndarray) -> np.ndarray:  # x * keep / 4096, toward zero
    return np.sign(x * keep) * (np.abs(x * keep) >> 12)


def run(graph: Graph, spikes: np.ndarray, *, record: bool = False) -> RunResult:
    raise_problems(check(graph))
    inputs, T, B = normalize_inputs(graph, spikes, graph.validate(), integers=True)
    x = {k: v.reshape(T, B, -1).astype(np.int64) for k, v in inputs.items()}
    r = RunResult({}, name, counters={"spikes": {}, "neuron_updates": {}, "synaptic_events": {}})
    for n in graph.schedule():  # a chain: each node but an input has one source
        node, a = graph[n], x[graph.predecessors(n)[0][0]] if graph.predecessors(n) else None
        if isinstance(node, QDense):  # a shift right floors, as the hardware's does
            x[n] = (a @ node.weight.T.astype(int) << max(e := node.weight_exp, 0)) >> max(-e, 0)
            r.counters["synaptic_events"][n] = np.count_nonzero(a) * node.weight.shape[0]
        elif isinstance(node, QLIF):  # docs/fixed_point.md: u wraps to 24 bits, v saturates
            vth, bias = np.asarray(node.vth) << 6, np.left_shift(node.bias_mant, node.bias_exp)
            u, v, x[n] = 0 * a[0], 0 * a[0], np.zeros(a.shape, np.uint8)
            for t in range(T):
                u = _decay(u, 4095 - np.asarray(node.du)) + (a[t] << 6)
                u = (u + 2**23 - 1) % 2**24 - 2**23 + 1  # into (-2^23, 2^23]
                v = np.clip(_decay(v, 4096 - np.asarray(node.dv)) + u + bias, 1 - 2**23, 2**23 - 1)
                x[n][t] = v > vth
                v = np.where(x[n][t], v - vth if node.reset == "subtract" else 0, v)
            r.counters["spikes"][n], r.counters["neuron_updates"][n] = int(x[n].sum()), a.size
            r.spikes.update({n: x[n]} if record else {})
        elif isinstance(node, Output):
            x[n] = r.outputs[n] = a
    return r


def compile(graph: Graph, out_dir: str | Path, *, compressed: bool = False) -> Path:
    raise_problems(check(graph))
    arrays = {f"{n}/{k}": np.asarray(v) for n, node in graph.nodes.items()
              for k, v in vars(node).items() if v is not None}
    (np.savez_compressed if compressed else np.savez)(Path(out_dir) / "program.npz", **arrays)
    (Path(out_dir) / "README.md").write_text(f"{name}: the nodes' parameters, program.npz\n")
    return Path(out_dir)
