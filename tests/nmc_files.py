"""The graphs behind `tests/data/nmc-v<N>/`: files written by an earlier `.nmc` format, kept so
that every later format still reads them (tests/test_nmc_versions.py). A format change bumps
`serialize.VERSION` and adds the previous version's files, written by that version's code:

    .venv/bin/python tests/nmc_files.py tests/data/nmc-v<N>     (on the commit before the change)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import nmcompile
from nmcompile.ir import ALIF, IF, LI, LIF, AvgPool2d, Conv2d, Dense, Flatten, Graph, Input, Output

ROOT = Path(__file__).resolve().parents[1]
NIR = ROOT / ".." / "shared" / "fixtures" / "nir-paper" / "03_rnn_braille_noDelay_bias_zero.nir"


def float_graph() -> Graph:
    """Every float node family: conv -> LIF -> pool -> flatten -> dense -> ALIF, a delayed
    recurrence through an IF layer, an LI readout; per-neuron thresholds, both resets."""
    rng = np.random.default_rng(1)
    g = Graph(dt=1e-3, metadata={"note": "nmc format fixture"})
    g.add_node("x", Input((2, 6, 6)))
    g.add_node("conv", Conv2d(rng.normal(0, 0.5, (4, 2, 3, 3)), bias=rng.normal(0, 0.1, 4),
                              padding=(1, 1)))
    g.add_node("l1", LIF(beta=0.9, threshold=rng.uniform(0.5, 1.5, (4, 6, 6)), reset="subtract"))
    g.add_node("pool", AvgPool2d(2))
    g.add_node("flat", Flatten())
    g.add_node("fc", Dense(rng.normal(0, 0.3, (10, 36))))
    g.add_node("l2", ALIF(beta=0.8, threshold=1.0, rho=0.9, adapt_step=0.2, alpha=0.5))
    g.add_node("rec", Dense(rng.normal(0, 0.2, (10, 10))))
    g.add_node("i1", IF(threshold=0.7))
    g.add_node("fb", Dense(rng.normal(0, 0.2, (10, 10))))
    g.add_node("ro", Dense(rng.normal(0, 0.5, (3, 10))))
    g.add_node("li", LI(beta=0.95))
    g.add_node("out", Output())
    for a, b, d in [("x", "conv", 0), ("conv", "l1", 0), ("l1", "pool", 0), ("pool", "flat", 0),
                    ("flat", "fc", 0), ("fc", "l2", 0), ("l2", "rec", 2), ("rec", "i1", 0),
                    ("i1", "fb", 1), ("fb", "l2", 0), ("l2", "ro", 0), ("ro", "li", 0),
                    ("li", "out", 0)]:
        g.add_edge(a, b, d)
    return g


def graphs() -> dict[str, Graph]:
    """File name -> the graph today's code builds for it."""
    float_ = float_graph()
    return {"float.nmc": float_, "quantized.nmc": nmcompile.quantize(float_),
            "nir_braille.nmc": nmcompile.from_nir(NIR, dt=1e-4)}


if __name__ == "__main__":
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for name, graph in graphs().items():
        nmcompile.save(graph, out / name, force=True)
        print(f"wrote {out / name}")
