"""A trained STDP network, compiled and run: `nmcompile demo --stdp` (a small network, so that
it fits CI) trains without labels, compiles, and checks the backends; then, in this process,
its quantised model runs on the emulator, Lava and (when registered) the Verilog core on other
test digits, spike for spike, E -> I -> E loop included."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nmcompile
from nmcompile import datasets
from nmcompile.ir.quantized import QLI, QLIF
from nmcompile.stdp.demo import compare_backends, targets

EXE = str(Path(sys.executable).with_name("nmcompile"))


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("stdp_demo")
    proc = subprocess.run([EXE, "demo", "--stdp", "--out", str(out), "--neurons", "40",
                           "--epochs", "1", "--samples", "20"], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "every spike of every layer equals the emulator's" in proc.stdout
    return out


def test_demo_stdp_trains_compiles_and_verifies(demo_dir: Path) -> None:
    summary = json.loads((demo_dir / "stdp_summary.json").read_text())
    print("demo --stdp:", summary["test_accuracy"], summary["seconds"])
    assert summary["ir_equals_network"] is True       # on all 360 test digits
    acc = summary["test_accuracy"]
    assert acc["network"] == acc["ir_float"] >= 0.6   # 40 neurons, 1 epoch, no labels
    assert abs(acc["emulator"] - acc["ir_float"]) <= 0.03
    assert summary["unsafe_updates"] == 0
    check = summary["verify"]
    assert check["equal"] is True and check["samples"] == 20 and check["mismatches"] == []
    assert check["compared"] == targets() and "lava" in check["compared"]  # nothing skipped
    assert check["verilog_cores"] == 4  # Verilog on the 2 x 2 mesh (issue 16)
    assert sum(summary["neurons_per_class"]) + summary["silent_neurons"] == 40
    q = nmcompile.load(demo_dir / "stdp_q.nmc")
    assert nmcompile.is_quantized(q)
    assert isinstance(q["exc"], QLIF) and np.ndim(q["exc"].vth) == 1   # per-neuron thresholds
    assert isinstance(q["classes"], QLI)
    assert (demo_dir / "stdp_fields.png").stat().st_size > 5_000
    float_graph = nmcompile.load(demo_dir / "stdp.nmc")
    assert float_graph.metadata["thresholds"] == "frozen"


def test_quantised_stdp_network_is_equal_on_every_backend(demo_dir: Path) -> None:
    """20 other test digits: every layer, every step, emulator == Lava (== Verilog)."""
    q = nmcompile.load(demo_dir / "stdp_q.nmc")
    spikes, _ = datasets.test_inputs(q.metadata, 40)
    spikes = spikes[:, 20:]
    # the loop is live: the inhibitory layer fires, and silences the others
    ref = nmcompile.run(q, spikes, record=True)
    assert ref.spikes["inh"].sum() > 20 and ref.spikes["exc"].sum() > 20
    np.testing.assert_array_equal(ref.spikes["inh"][1:], ref.spikes["exc"][:-1])  # delay 1
    assert (ref.spikes["exc"].sum(0) > 0).sum(1).mean() < 10  # a few winners per digit of 40
    check = compare_backends(q, spikes, targets())
    assert check["equal"] and check["compared"] == targets(), check
