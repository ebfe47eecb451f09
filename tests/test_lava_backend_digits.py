"""The trained digits model (nmcompile's demo network) on Lava equals the emulator, every
spike of every layer, on 64 test digits. The model is trained here with PyTorch (its threads
are running), so this also shows that Lava, forked in a fresh worker, does not mind."""

from __future__ import annotations

from pathlib import Path

import pytest

import nmcompile
from backends import lava as lava_backend
from nmcompile import demo

SAMPLES = 64


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> demo.Demo:
    d = demo.Demo(out_dir=Path(tmp_path_factory.mktemp("digits")), epochs=2, hidden=64,
                  log=lambda _: None)
    for stage in (demo.stage_train, demo.stage_export, demo.stage_quantize):
        stage(d)
    return d


def test_trained_digits_model_on_lava_equals_the_emulator(digits: demo.Demo) -> None:
    x, labels = digits.test_spikes[:, :SAMPLES], digits.test_labels[:SAMPLES]
    report = nmcompile.verify(digits.qgraph, x, ["emulator", "lava"], labels=labels)
    assert report.equal, [str(m) for m in report.mismatches]
    assert report.accuracy["quantized"] > 0.7  # a trained network, not a silent one
    lava, emulator = (report.backends[b]["counters"] for b in ("lava", "emulator"))
    for counter in ("spikes", "neuron_updates", "synaptic_events"):
        assert lava[counter] == emulator[counter], counter
    assert all(v > 0 for v in lava["spikes"].values())
    # every process of this model is stock Lava, so it could run on a Loihi 2 chip
    assert all(row["deployable"] for row in lava_backend.lower(digits.qgraph).report())
