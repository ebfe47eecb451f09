"""The trained digits model (nmcompile's demo network, 64-128-10 LIF) on the Verilog core:
equal to the emulator on every spike of every layer, with equal hardware counters, in real
Icarus Verilog and Verilator; its project folder synthesises with real Yosys (block RAMs
inferred, numbers parsed from Yosys' own `stat`); `nmcompile verify ... --backends
emulator,verilog` passes from the command line."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nmcompile
from nmcompile import demo
from nmcompile.ir import save
from nmcompile.verification import VerifyReport

SAMPLES = 20


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> demo.Demo:
    d = demo.Demo(out_dir=Path(tmp_path_factory.mktemp("digits")), epochs=2,
                  log=lambda _: None)
    for stage in (demo.stage_train, demo.stage_export, demo.stage_quantize):
        stage(d)
    return d


def check_counters(report: VerifyReport, backend: str) -> None:
    hw, emulator = (report.backends[b]["counters"] for b in (backend, "emulator"))
    for counter in ("spikes", "neuron_updates", "synaptic_events", "unsafe_updates"):
        assert hw[counter] == emulator[counter], counter
    for counter in set(hw) & set(emulator):
        assert hw[counter] == emulator[counter], counter
    assert all(v > 0 for v in hw["spikes"].values())


def test_digits_on_icarus_equals_the_emulator(digits: demo.Demo) -> None:
    x, labels = digits.test_spikes[:, :SAMPLES], digits.test_labels[:SAMPLES]
    report = nmcompile.verify(digits.qgraph, x, ["emulator", "verilog"], labels=labels)
    assert report.equal, [str(m) for m in report.mismatches]
    assert report.accuracy["quantized"] > 0.7  # a trained network, not a silent one
    check_counters(report, "verilog")
    cycles = report.backends["verilog"]["counters"]["cycles"]
    assert cycles["steps"] == x.shape[0] * SAMPLES


def test_digits_on_verilator_equals_the_emulator(digits: demo.Demo) -> None:
    x = digits.test_spikes[:, :64]
    ref = nmcompile.run(digits.qgraph, x, record=True)
    got = nmcompile.run(digits.qgraph, x, backend="verilog", simulator="verilator",
                        record=True)
    for layer, spikes in ref.spikes.items():
        assert (spikes == got.spikes[layer]).all(), layer
    for layer, states in ref.states.items():
        assert (states["v"] == got.states[layer]["v"]).all(), layer
    for counter in ("spikes", "neuron_updates", "synaptic_events", "unsafe_updates"):
        assert got.counters[counter] == ref.counters[counter], counter


def test_cli_verify_and_compile_with_synthesis_report(digits, tmp_path) -> None:
    """`nmcompile verify --backends emulator,verilog`; `nmcompile compile --target verilog
    --synth ice40`, which runs the project's `make synth` (Yosys) and `make pnr-ice40`
    (nextpnr): block RAMs inferred, the report's numbers those of the tools' own output."""
    model = save(digits.qgraph, tmp_path / "digits_q.nmc")
    cli = [sys.executable, "-m", "nmcompile.cli"]
    done = subprocess.run([*cli, "verify", str(model), "--backends", "emulator,verilog",
                           "--samples", "6", "--json"], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["equal"] and report["backends"]["verilog"]["spikes"] > 0
    np.save(tmp_path / "x.npy", digits.test_spikes[:, :3])
    done = subprocess.run([*cli, "run", str(model), "--input", str(tmp_path / "x.npy"),
                           "--backend", "verilog", "--simulator", "verilator", "-o",
                           str(tmp_path / "out.npz")], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "cycles: total=" in done.stdout and "backend verilog" in done.stdout
    ref = nmcompile.run(digits.qgraph, digits.test_spikes[:, :3])
    assert (np.load(tmp_path / "out.npz")["output/output"] == ref.output()).all()
    out = tmp_path / "proj"
    done = subprocess.run([*cli, "compile", str(model), "--target", "verilog", "-o", str(out),
                           "--synth", "ice40"], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (rep,) = json.loads((out / "report.json").read_text())
    stat = (out / "build" / "yosys-ice40-stat.txt").read_text()
    words = " ".join(stat.split())  # the stat lines themselves, independently of the parser
    for cell, key in (("SB_LUT4", "luts"), ("SB_RAM40_4K", "brams"), ("SB_CARRY", "carry")):
        assert f"{cell} {rep[key]}" in words, cell
    assert rep["ffs"] == sum(int(n) for n in re.findall(r"SB_DFF\w* (\d+)", words))
    # the synapse memory alone is 9472 8-bit weights: at least 19 of the 4-kbit block RAMs;
    # and no memory was left unmapped
    assert rep["brams"] >= 19 and "Number of memories: 0" in words
    done = subprocess.run(["make", "-C", str(out), "synth"], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    pnr = (out / "build" / "nextpnr-ice40.log").read_text()
    fmax = float(re.findall(r"Max frequency for clock '[^']*': ([\d.]+) MHz", pnr)[-1])
    assert rep["fmax_mhz"] == fmax > 10
    assert rep["cycles_per_step"]["mean"] > 0
    assert rep["throughput"]["steps_per_s"] == pytest.approx(
        fmax * 1e6 / rep["cycles_per_step"]["mean"], rel=1e-3)
    assert "| ice40 |" in (out / "report.md").read_text()
