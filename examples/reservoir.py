"""A liquid-state machine: a sparse recurrent E/I reservoir with distance-dependent
connections and a linear readout, built as a float graph of `Sparse` projections.

    .venv/bin/python examples/reservoir.py --neurons 100000 --out reservoir.nmc

Neurons sit on a square torus; each one draws `synapses` presynaptic partners at Gaussian
offsets (width `sigma` grid steps), so that near neighbours connect most (Maass et al. 2002).
A random 80 % are excitatory, the rest inhibitory: their synapses are two projections,
excitatory with delay 1 and inhibitory with delay 2, both back into the reservoir.
`inputs` Poisson channels drive a random tenth of the neurons; a dense readout of `classes`
LI neurons reads every reservoir neuron. The builder holds only the synapse lists (int32
indices), never a dense matrix: 100k neurons with 1,000 synapses each are 100M synapses.
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from nmcompile.ir import LI, LIF, Dense, Graph, Input, Output, Sparse


def _partners(rng: np.random.Generator, side: int, n: int, k: int, sigma: float,
              block: int = 8192) -> np.ndarray:
    """(n, k) int32 presynaptic indices: Gaussian offsets on a side x side torus, no
    self-synapse; drawn a block of neurons at a time, so the float temporaries stay small."""
    pre = np.empty((n, k), np.int32)
    for start in range(0, n, block):
        post = np.arange(start, min(start + block, n))
        dy = np.rint(rng.normal(0, sigma, (post.size, k))).astype(np.int32)
        dx = np.rint(rng.normal(0, sigma, (post.size, k))).astype(np.int32)
        dx[(dy == 0) & (dx == 0)] = 1  # a neuron's own offset moves one step right
        y, x = post[:, None] // side + dy, post[:, None] % side + dx
        pre[post] = ((y % side) * side + x % side) % n  # a short last row wraps to the start
    return pre


def build_reservoir(n: int = 100_000, synapses: int = 1000, inputs: int = 100,
                    classes: int = 10, sigma: float = 6.0, seed: int = 0) -> Graph:
    """The float graph: inputs -> reservoir (E/I recurrence with delays) -> LI readout."""
    rng = np.random.default_rng(seed)
    side = math.isqrt(n - 1) + 1
    inhibitory = rng.random(n) < 0.2  # scattered over the torus, not a block of it
    pre = _partners(rng, side, n, synapses, sigma)
    post = np.repeat(np.arange(n, dtype=np.int32), synapses)
    pre = pre.reshape(-1)
    g = Graph(dt=1e-3, metadata={"source": "examples/reservoir.py", "neurons": n,
                                 "synapses_per_neuron": synapses, "sigma": sigma})
    g.add_node("x", Input((inputs,)))
    g.add_node("res", LIF(beta=0.95, threshold=1.0, reset="subtract"))
    driven = rng.choice(n, n // 10, replace=False).astype(np.int32)
    cols = rng.integers(0, inputs, driven.size, dtype=np.int32)
    g.add_node("in", Sparse(driven, cols, rng.uniform(0.5, 1.5, driven.size), (n, inputs)))
    scale = 5.0 / synapses  # the mean drive does not grow with the fan-in
    for name, mask, sign, delay in (("exc", ~inhibitory[pre], 1.0, 1),
                                    ("inh", inhibitory[pre], -4.0, 2)):
        values = sign * scale * rng.uniform(0.0, 2.0, int(mask.sum()))
        g.add_node(name, Sparse(post[mask], pre[mask], values, (n, n)))
        g.add_edge("res", name, delay)
        g.add_edge(name, "res")
    g.add_node("readout", Dense(rng.normal(0, 1 / math.sqrt(n), (classes, n))))
    g.add_node("li", LI(beta=0.9))
    g.add_node("out", Output())
    for a, b in (("x", "in"), ("in", "res"), ("res", "readout"), ("readout", "li"),
                 ("li", "out")):
        g.add_edge(a, b)
    return g


if __name__ == "__main__":
    import nmcompile

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--neurons", type=int, default=100_000)
    parser.add_argument("--synapses", type=int, default=1000)
    parser.add_argument("--out", default="reservoir.nmc")
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()
    graph = build_reservoir(args.neurons, args.synapses)
    nmcompile.save(graph, args.out, force=args.force)
    print(f"wrote {args.out}: {args.neurons:,} neurons, "
          f"{args.neurons * args.synapses:,} recurrent synapses")
