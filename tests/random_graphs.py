"""Seeded random quantised graphs for the backend equivalence tests (Lava, Verilog, ...).

Families: dense, sparse, convolutions with stride, padding, dilation and groups, pooling as a
depthwise convolution, flatten, a self-recurrent layer, an excitatory -> inhibitory ->
excitatory loop with delay 2, skip connections, edge delays, IF, ALIF, both resets,
per-neuron decays and thresholds, biases, LI readouts, graded inputs, a delay longer than
Loihi's 63 steps. `random_graph(seed)` -> (graph, spikes (T, B, *shape), tags).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import numpy as np

import nmcompile
from nmcompile.ir import Graph, Input, Output
from nmcompile.ir.quantized import QALIF, QLI, QLIF, QConv2d, QDense, QSparse

N_GRAPHS = 112
NEURON_KINDS = ("lif", "lif_vec", "lif_sub", "if", "alif", "alif_sub", "lif_bias")


# --------------------------------------------------------------------------------------------
# Seeded random quantised graphs. Weights are what Lava's 8-bit synapses store unchanged
# (mixed-sign weights even); thresholds are placed from a rough estimate of each layer's
# drive, and a graph whose layers stay silent or saturate is redrawn (sub-seed), so that the
# comparison is about spikes that happen.
# --------------------------------------------------------------------------------------------


def weights(rng: np.random.Generator, shape: tuple[int, ...], mode: str | None = None
            ) -> np.ndarray:
    mode = mode or str(rng.choice(["mixed", "mixed", "excitatory", "inhibitory"]))
    if mode == "mixed":
        return 2 * rng.integers(-64, 72, shape)
    if mode == "excitatory":
        return rng.integers(0, 160, shape)
    return -rng.integers(0, 120, shape)


def drive(w: np.ndarray, exp: int, p: float = 0.3) -> float:
    rms = float(np.sqrt(np.mean(w.astype(float) ** 2))) if w.size else 1.0
    return max(1.0, rms * np.sqrt(int(np.prod(w.shape[1:])) * p) * 2.0**exp)


def neuron(rng: np.random.Generator, kind: str, shape: tuple[int, ...], level: float):
    vth = max(1, int(level * rng.uniform(0.3, 2.0)))
    du = int(rng.choice([4095, 3000, 1500, 600]))
    dv = int(rng.choice([0, 200, 800, 2048, 4095]))
    if kind == "if":
        return QLIF(vth=vth, du=4095, dv=0)
    if kind == "lif":
        return QLIF(vth=vth, du=du, dv=dv)
    if kind == "lif_bias":
        return QLIF(vth=vth, du=du, dv=dv, bias_mant=rng.integers(-40, 80, shape),
                    bias_exp=int(rng.integers(0, 3)))
    if kind == "lif_vec":
        return QLIF(vth=rng.integers(max(1, vth // 2), 2 * vth + 2, shape),
                    du=rng.integers(500, 4096, shape), dv=rng.integers(0, 4096, shape),
                    bias_mant=int(rng.integers(-5, 20)))
    if kind == "lif_sub":
        return QLIF(vth=vth, du=du, dv=dv, reset="subtract", bias_mant=int(rng.integers(0, 30)))
    return QALIF(vth=vth, vth_step=max(1, vth // int(rng.integers(2, 6))),
                 da=int(rng.choice([100, 1000, 3000])), du=du, dv=dv,
                 reset="subtract" if kind == "alif_sub" else "zero",
                 bias_mant=rng.integers(-10, 30, shape))


def bernoulli(rng: np.random.Generator, T: int, B: int, shape: tuple[int, ...],
              p: float = 0.3) -> np.ndarray:
    return (rng.random((T, B, *shape)) < p).astype(np.int64)


def sparse_of(rng: np.random.Generator, w: np.ndarray, density: float = 0.3):
    rows, cols = np.nonzero((rng.random(w.shape) < density) & (w != 0))
    return rows, cols, w[rows, cols]


def chain(g: Graph, *names: str, delays: tuple[int, ...] | None = None) -> None:
    for k, (a, b) in enumerate(itertools.pairwise(names)):
        g.add_edge(a, b, delays[k] if delays else 0)


def fam_dense(rng, kinds, T, B, delays=None):
    g = Graph()
    n0, n1, n2 = (int(rng.integers(4, 30)) for _ in range(3))
    w1, e1 = weights(rng, (n1, n0)), int(rng.integers(-1, 2))
    w2, e2 = weights(rng, (n2, n1)), int(rng.integers(-1, 2))
    g.add_node("x", Input((n0,)))
    g.add_node("fc1", QDense(w1, e1))
    g.add_node("h", neuron(rng, next(kinds), (n1,), drive(w1, e1)))
    g.add_node("fc2", QDense(w2, e2))
    g.add_node("o", neuron(rng, next(kinds), (n2,), drive(w2, e2, 0.2)))
    g.add_node("out", Output())
    chain(g, "x", "fc1", "h", "fc2", "o", "out", delays=delays)
    return g, bernoulli(rng, T, B, (n0,)), {"dense"}


def fam_delays(rng, kinds, T, B):
    g, x, tags = fam_dense(rng, kinds, T, B, tuple(int(d) for d in rng.integers(0, 4, 5)))
    return g, x, tags | {"edge_delays"}


def fam_sparse(rng, kinds, T, B):
    g, x, tags = fam_dense(rng, kinds, T, B)
    for name in ("fc1", "fc2"):
        w = g[name].weight
        g.nx.nodes[name]["node"] = QSparse(*sparse_of(rng, w, 0.4), w.shape, g[name].weight_exp)
    return g, x, tags | {"sparse"}


def fam_readout(rng, kinds, T, B):
    g, x, tags = fam_dense(rng, kinds, T, B)
    g.nx.nodes["o"]["node"] = QLI(du=int(rng.choice([4095, 2000])), dv=int(rng.choice([0, 500])),
                                  bias_mant=int(rng.integers(-20, 20)))
    return g, x, tags | {"li_readout"}


def fam_graded(rng, kinds, T, B):
    g, _, tags = fam_dense(rng, kinds, T, B)
    n0 = g["fc1"].weight.shape[1]
    x = rng.integers(0, 4, (T, B, n0)) * (rng.random((T, B, n0)) < 0.4)
    return g, x.astype(np.int64), tags | {"graded_input"}


def fam_recurrent(rng, kinds, T, B):
    g, x, tags = fam_dense(rng, kinds, T, B)
    n1 = g["fc1"].weight.shape[0]
    g.add_node("rec", QDense(weights(rng, (n1, n1)), 0))
    d = int(rng.integers(1, 3))
    first = int(rng.integers(0, d + 1))
    g.add_edge("h", "rec", first)
    g.add_edge("rec", "h", d - first)
    return g, x, tags | {"recurrent", f"self_loop_delay{d}"}


def fam_ei(rng, kinds, T, B):
    g = Graph()
    n0, ne, ni = int(rng.integers(5, 20)), int(rng.integers(5, 20)), int(rng.integers(3, 10))
    w, wei, wie = (weights(rng, (ne, n0), "excitatory"), weights(rng, (ni, ne), "excitatory"),
                   weights(rng, (ne, ni), "inhibitory"))
    g.add_node("x", Input((n0,)))
    g.add_node("in", QDense(w, 0))
    g.add_node("E", neuron(rng, next(kinds), (ne,), drive(w, 0)))
    g.add_node("w_ei", QDense(wei, 0))
    g.add_node("I", neuron(rng, next(kinds), (ni,), drive(wei, 0)))
    g.add_node("w_ie", QSparse(*sparse_of(rng, wie, 0.6), wie.shape, 0) if rng.random() < 0.5
               else QDense(wie, 0))
    g.add_node("out", Output())
    total = int(rng.integers(2, 4))  # two Lava hops around the loop need delay >= 2
    cut = sorted(int(c) for c in rng.integers(0, total + 1, 3))
    chain(g, "x", "in", "E")
    chain(g, "E", "w_ei", "I", "w_ie", "E",
          delays=(cut[0], cut[1] - cut[0], cut[2] - cut[1], total - cut[2]))
    g.add_edge("E", "out")
    return g, bernoulli(rng, T, B, (n0,)), {"two_hop_loop", "recurrent", f"loop_delay{total}"}


def fam_skip(rng, kinds, T, B):
    g = Graph()
    n = [int(rng.integers(4, 16)) for _ in range(4)]
    g.add_node("x", Input((n[0],)))
    prev = "x"
    for i, name in enumerate(("A", "B", "C")):
        w, e = weights(rng, (n[i + 1], n[i])), int(rng.integers(-1, 2))
        g.add_node(f"w{name}", QDense(w, e))
        g.add_node(name, neuron(rng, next(kinds), (n[i + 1],), drive(w, e)))
        chain(g, prev, f"w{name}", name)
        prev = name
    g.add_node("skip_xC", QDense(weights(rng, (n[3], n[0])), 0))
    g.add_edge("x", "skip_xC", int(rng.integers(0, 2)))
    g.add_edge("skip_xC", "C")
    wa = weights(rng, (n[3], n[1]))
    g.add_node("skip_AC", QSparse(*sparse_of(rng, wa), wa.shape, 0))
    chain(g, "A", "skip_AC", "C")
    g.add_node("out", Output())
    g.add_edge("C", "out")
    return g, bernoulli(rng, T, B, (n[0],)), {"skip", "sparse"}


def fam_conv(rng, kinds, T, B, negexp=False):
    g = Graph()
    c, h, w = int(rng.integers(1, 4)), int(rng.integers(5, 9)), int(rng.integers(5, 9))
    groups = int(rng.choice([1, c])) if c > 1 else 1
    co = groups * int(rng.integers(1, 3))
    k = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    stride = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    padding = (int(rng.integers(0, k[0])), int(rng.integers(0, k[1])))
    dilation = (int(rng.choice([1, 1, 2])), 1)
    kw = weights(rng, (co, c // groups, *k))
    e = int(rng.integers(-2, 0)) if negexp else int(rng.integers(0, 2))
    conv = QConv2d(kw, e, stride, padding, dilation, groups)
    shape = conv.output_shape((c, h, w), "conv")
    n2 = int(rng.integers(3, 12))
    w2 = weights(rng, (n2, int(np.prod(shape))))
    g.add_node("x", Input((c, h, w)))
    g.add_node("conv", conv)
    g.add_node("c1", neuron(rng, next(kinds), shape, drive(kw, e)))
    g.add_node("fc", QDense(w2, 0))  # flatten, then dense
    g.add_node("o", neuron(rng, next(kinds), (n2,), drive(w2, 0, 0.2)))
    g.add_node("out", Output())
    chain(g, "x", "conv", "c1", "fc", "o", "out")
    tags = {"conv", "flatten", "conv_negexp" if negexp else "conv_stock"}
    tags |= {"stride"} if stride != (1, 1) else set()
    tags |= {"padding"} if padding != (0, 0) else set()
    tags |= {"dilation"} if dilation != (1, 1) else set()
    tags |= {"groups"} if groups > 1 else set()
    return g, bernoulli(rng, T, B, (c, h, w), 0.4), tags


def fam_conv_negexp(rng, kinds, T, B):
    return fam_conv(rng, kinds, T, B, negexp=True)


def fam_pool(rng, kinds, T, B):
    g = Graph()
    c, h, w = int(rng.integers(1, 4)), int(rng.integers(4, 9)), int(rng.integers(4, 9))
    k = int(rng.integers(2, 4))
    pool = QConv2d(np.full((c, 1, k, k), int(rng.integers(1, 40))), 0, k, 0, 1, c)
    shape = pool.output_shape((c, h, w), "pool")
    n2 = int(rng.integers(3, 10))
    w2 = weights(rng, (n2, int(np.prod(shape))), "mixed")
    g.add_node("x", Input((c, h, w)))
    g.add_node("c0", QConv2d(3 * np.ones((c, 1, 3, 3), int), 0, 1, 1, 1, c))
    g.add_node("a", neuron(rng, "if", (c, h, w), 10))
    g.add_node("pool", pool)  # sum pooling: a depthwise convolution with a constant kernel
    g.add_node("p", neuron(rng, next(kinds), shape, 30))
    g.add_node("fc", QSparse(*sparse_of(rng, w2), w2.shape, 0))
    g.add_node("o", neuron(rng, next(kinds), (n2,), drive(w2, 0, 0.2)))
    g.add_node("out", Output())
    chain(g, "x", "c0", "a", "pool", "p", "fc", "o", "out")
    return g, bernoulli(rng, T, B, (c, h, w), 0.4), {"conv", "pooling", "sparse", "flatten"}


def fam_long_delay(rng, kinds, T, B):
    g, _, tags = fam_dense(rng, kinds, 0, 0, delays=(int(rng.integers(64, 70)), 0, 0, 0, 0))
    n0 = g["fc1"].weight.shape[1]
    return g, bernoulli(rng, 75, 1, (n0,)), tags | {"delay_over_63"}


FAMILIES: dict[str, Callable] = {
    "dense": fam_dense, "conv": fam_conv, "conv_negexp": fam_conv_negexp, "pool": fam_pool,
    "recurrent": fam_recurrent, "ei_loop": fam_ei, "skip": fam_skip, "delays": fam_delays,
    "sparse": fam_sparse, "readout": fam_readout, "graded": fam_graded,
}


def neuron_tags(g: Graph) -> set[str]:
    tags = set()
    for node in g.nodes.values():
        if isinstance(node, QALIF):
            tags.add("alif")
        if isinstance(node, (QLIF, QALIF)):
            tags.add(f"reset_{node.reset}")
            if any(isinstance(getattr(node, k), np.ndarray) for k in ("du", "dv", "vth")):
                tags.add("per_neuron")
            if isinstance(node, QLIF) and np.all(node.du == 4095) and np.all(node.dv == 0):
                tags.add("if")
        if np.any(np.asarray(getattr(node, "bias_mant", 0)) != 0):
            tags.add("bias")
    return tags


def random_graph(seed: int) -> tuple[Graph, np.ndarray, set[str]]:
    name = list(FAMILIES)[seed % len(FAMILIES)] if seed < N_GRAPHS - 1 else "long_delay"
    build = FAMILIES.get(name, fam_long_delay)
    best = None
    for attempt in range(8):
        rng = np.random.default_rng([seed, attempt])
        kinds: Iterator[str] = iter(rng.permutation(NEURON_KINDS).tolist() * 3)
        T, B = int(rng.integers(10, 18)), int(rng.integers(1, 4))
        g, x, tags = build(rng, kinds, T, B)
        rates = [float(s.mean()) for s in nmcompile.run(g, x, record=True).spikes.values()]
        score = sum(0.01 < r < 0.8 for r in rates) - len(rates)
        if best is None or score > best[0]:
            best = (score, g, x, tags | {name} | neuron_tags(g))
        if score == 0:
            break
    return best[1], best[2], best[3]


# --------------------------------------------------------------------------------------------
# One fixed two-layer network and Bernoulli spikes, for tests about running (clean-up,
# signals, batching) rather than about what is computed.
# --------------------------------------------------------------------------------------------


def dense_graph(n_in: int = 8, n_hidden: int = 16, n_out: int = 4, seed: int = 0) -> Graph:
    rng = np.random.default_rng(seed)
    g = Graph()
    g.add_node("x", Input((n_in,)))
    g.add_node("fc1", QDense(2 * rng.integers(-30, 60, (n_hidden, n_in))))
    g.add_node("h", QLIF(vth=200, du=1000, dv=500, bias_mant=rng.integers(0, 20, n_hidden)))
    g.add_node("fc2", QDense(2 * rng.integers(-30, 60, (n_out, n_hidden))))
    g.add_node("o", QLIF(vth=300, du=2000, dv=300))
    g.add_node("out", Output())
    for a, b in (("x", "fc1"), ("fc1", "h"), ("h", "fc2"), ("fc2", "o"), ("o", "out")):
        g.add_edge(a, b)
    return g


def spikes(T: int, B: int, n: int, seed: int = 1) -> np.ndarray:
    return (np.random.default_rng(seed).random((T, B, n)) < 0.3).astype(np.int64)
