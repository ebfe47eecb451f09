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
