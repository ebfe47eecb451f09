"""verify's comparison: the first step, layer and neuron where two targets differ."""

from __future__ import annotations

import numpy as np

from nmcompile.result import RunResult
from nmcompile.verification import compare


def _result(spikes: dict[str, np.ndarray]) -> RunResult:
    return RunResult(outputs={"out": spikes["b"]}, backend="x", spikes=spikes)


def test_first_mismatch_is_named_by_step_layer_and_neuron() -> None:
    a = {"a": np.zeros((6, 2, 4), np.uint8), "b": np.zeros((6, 2, 3), np.uint8)}
    b = {k: v.copy() for k, v in a.items()}
    assert compare(_result(a), _result(b), "ref", "other") is None
    b["b"][2, 1, 0] = 1  # downstream layer, step 2
    b["a"][4, 0, 3] = 1  # upstream layer, later step
    m = compare(_result(a), _result(b), "ref", "other")
    assert (m.layer, m.step, m.sample, m.neuron) == ("b", 2, 1, 0)
    assert str(m) == ("other differs from ref first at step 2, layer 'b', sample 1, neuron 0: "
                      "expected 0, got 1")
    b["a"][2, 0, 1] = 1  # same step upstream: the upstream layer is named
    assert compare(_result(a), _result(b), "ref", "other").layer == "a"


def test_a_conv_layers_neuron_is_named_by_channel_y_x() -> None:
    # a (2, 3, 4) layer held flat: neuron 1*12 + 2*4 + 3 = 23 is channel 1, y 2, x 3
    a = {"a": np.zeros((5, 1, 24), np.uint8), "b": np.zeros((5, 1, 3), np.uint8)}
    b = {k: v.copy() for k, v in a.items()}
    b["a"][1, 0, 23] = 1
    m = compare(_result(a), _result(b), "ref", "other", {"a": (2, 3, 4), "b": (3,)})
    assert (m.neuron, m.index) == (23, (1, 2, 3))
    assert "neuron 23 (channel, y, x) = (1, 2, 3)" in str(m)
    assert compare(_result(a), _result(b), "ref", "other").index == (23,)  # no shapes given


def test_verify_names_the_channel_y_x_of_a_conv_mismatch() -> None:
    import nmcompile
    from nmcompile.ir import IF, Conv2d, Graph, Input, Output

    g = Graph(dt=1.0)
    g.add_node("x", Input((1, 4, 4)))
    g.add_node("conv", Conv2d(np.ones((2, 1, 3, 3)), padding=(1, 1)))
    g.add_node("n", IF(threshold=1.0))
    g.add_node("out", Output())
    g.add_edge("x", "conv")
    g.add_edge("conv", "n")
    g.add_edge("n", "out")
    q = nmcompile.quantize(g)
    spikes = np.zeros((3, 1, 1, 4, 4), np.uint8)
    spikes[0, 0, 0, 2, 1] = 1
    good = nmcompile.run(q, spikes, backend="emulator", record=True)
    bad = nmcompile.run(q, spikes, backend="emulator", record=True)
    bad.spikes["n"] = good.spikes["n"].copy()
    bad.spikes["n"][0, 0, 1 * 16 + 3 * 4 + 2] ^= 1
    m = compare(good, bad, "emulator", "edited", q.validate())
    assert m.index == (1, 3, 2) and "(channel, y, x) = (1, 3, 2)" in str(m)
