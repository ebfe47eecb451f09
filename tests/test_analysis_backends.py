"""Counts across backends: Lava (real lava-nc 0.10, counts derived from Lava's own recorded
spikes and the weights it holds) and every other registered hardware backend report the same
synaptic-event and spike counts as the emulator on the same input; the analysis, deriving all
counts (non-zero weights, active updates) from each backend's recorded spikes, finds the
emulator's exact counters."""

from __future__ import annotations

import numpy as np
import pytest

import nmcompile
from nmcompile.analysis import from_result
from nmcompile.ir import Graph, Input, Output
from nmcompile.ir.quantized import QLIF, QConv2d, QDense, QSparse
from nmcompile.registry import available, get_backend

HARDWARE = [b for b in available() if b not in ("emulator", "float")]


def network(seed: int, conv: bool = True, sparse: bool = True, recurrent: bool = True
            ) -> tuple[Graph, np.ndarray]:
    """Input -> [conv (stride 2, padding 1) -> LIF ->] sparse -> LIF [with a delayed dense
    recurrence (some stored zeros)] -> dense -> LIF -> Output; weights even and 8-bit so that
    Lava's weight preparation keeps them. A backend without convolutions, sparse matrices or
    cycles gets the network without them (a dense matrix with zeros for the sparse one)."""
    rng = np.random.default_rng(seed)
    vth = 300 if conv else 100  # layers fire at 0.1 to 0.4 of steps
    g = Graph()
    if conv:
        g.add_node("x", Input((2, 6, 6)))
        g.add_node("c", QConv2d(rng.integers(-30, 30, (3, 2, 3, 3)) * 2, stride=2, padding=1))
        g.add_node("lc", QLIF(vth=150, du=1024, dv=512))
        g.add_edge("x", "c")
        g.add_edge("c", "lc")
        src, n_in = "lc", 27
    else:
        g.add_node("x", Input((12,)))
        src, n_in = "x", 12
    mask = rng.random((16, n_in)) < 0.4
    rows, cols = np.nonzero(mask)
    values = rng.integers(-20, 40, len(rows)) * 2
    if sparse:
        g.add_node("s", QSparse(rows, cols, values, (16, n_in)))
    else:
        w = np.zeros((16, n_in), np.int64)
        w[rows, cols] = values
        g.add_node("s", QDense(w))
    g.add_node("h", QLIF(vth=vth, du=2048, dv=1024))
    rec = rng.integers(-12, 10, (16, 16)) * 2
    rec[rng.random(rec.shape) < 0.3] = 0
    if recurrent:
        g.add_node("r", QDense(rec))
        g.add_edge("h", "r", 1)
        g.add_edge("r", "h")
    dw = rng.integers(-20, 30, (5, 16)) * 2
    dw[:, ::5] = 0  # stored zeros
    g.add_node("d", QDense(dw))
    g.add_node("o", QLIF(vth=vth, du=2048, dv=1024))
    g.add_node("out", Output())
    for a, b, delay in [(src, "s", 0), ("s", "h", 0), ("h", "d", 0), ("d", "o", 0),
                        ("o", "out", 0)]:
        g.add_edge(a, b, delay)
    shape = g["x"].shape
    x = (rng.random((30, 2, *shape)) < 0.15).astype(np.int64)
    return g, x


@pytest.mark.parametrize("backend", HARDWARE)
def test_backends_count_what_the_emulator_counts(backend: str) -> None:
    caps = get_backend(backend).capabilities
    g, x = network(4, conv=QConv2d in caps.nodes, sparse=QSparse in caps.nodes,
                   recurrent=caps.cycles)
    T, B = x.shape[:2]
    emulator = nmcompile.run(g, x, record=True)
    other = nmcompile.run(g, x, backend=backend, record=True)
    for layer, spikes in emulator.spikes.items():
        assert np.array_equal(other.spikes[layer], spikes), layer
    assert sum(emulator.counters["spikes"].values()) > 100  # the comparison is not vacuous
    assert min(emulator.counters["synaptic_events"].values()) > 0
    for counter in ("spikes", "synaptic_events", "neuron_updates"):
        assert other.counters[counter] == emulator.counters[counter], counter
    exact = from_result(g, {"x": x}, emulator, T, B)
    derived = from_result(g, {"x": x}, other, T, B)
    assert exact.layers == derived.layers
    # the run exercises every distinction: stored zeros and idle updates
    assert exact.layer("d").synaptic_ops_nonzero < exact.layer("d").synaptic_ops
    assert 0 < exact.layer("o").active_updates < exact.layer("o").neuron_updates


def test_lava_is_among_the_hardware_backends() -> None:
    assert "lava" in HARDWARE
