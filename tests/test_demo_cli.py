"""The main job and the command line, run as a user runs them: the installed console script."""

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

EXE = str(Path(sys.executable).with_name("nmcompile"))


def cli(*args: str, check: bool = False) -> subprocess.CompletedProcess:
    proc = subprocess.run([EXE, *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    if check and proc.returncode:
        raise AssertionError(f"nmcompile {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    proc = cli("demo", "--out", str(out), "--json", check=True)
    (out.parent / "demo-stdout.json").write_text(proc.stdout)  # one JSON object, logs on stderr
    return out


def test_demo_json_is_its_summary(demo_dir: Path) -> None:
    printed = json.loads((demo_dir.parent / "demo-stdout.json").read_text())
    assert printed["out"] == str(demo_dir)
    assert printed["summary"] == json.loads((demo_dir / "summary.json").read_text())


def test_demo_trains_to_90_percent_and_the_ir_agrees(demo_dir: Path) -> None:
    summary = json.loads((demo_dir / "summary.json").read_text())
    acc = summary["test_accuracy"]
    print("demo:", acc, summary["seconds"])
    assert acc["pytorch"] >= 0.90
    assert acc["ir_float"] >= 0.90
    assert summary["float32_vs_ir_equal_bins"] > 0.999
    assert abs(acc["emulator"] - acc["ir_float"]) <= 0.02  # quantised within 2 points
    assert summary["unsafe_updates"] == 0
    assert summary["lava"]["equal_to_emulator"] is True and summary["lava"]["samples"] == 64
    assert nmcompile.is_quantized(nmcompile.load(demo_dir / "digits_q.nmc"))
    assert (demo_dir / "digits.png").stat().st_size > 10_000


def test_demo_model_names_its_data_and_regenerates_inputs(demo_dir: Path) -> None:
    graph = nmcompile.load(demo_dir / "digits.nmc")
    spikes, labels = datasets.test_inputs(graph.metadata)
    head, head_labels = datasets.test_inputs(graph.metadata, 7)
    assert spikes.shape == (25, 360, 64) and spikes.dtype == np.uint8
    assert np.array_equal(head, spikes[:, :7]) and np.array_equal(head_labels, labels[:7])
    result = nmcompile.run(graph, spikes[:, :50])
    pred = result.output().sum(axis=0).argmax(axis=1)
    assert (pred == labels[:50]).mean() >= 0.8


def test_inspect_prints_the_graph(demo_dir: Path) -> None:
    proc = cli("inspect", str(demo_dir / "digits.nmc"), check=True)
    lines = proc.stdout.splitlines()
    assert "6 nodes, 5 edges, dt=0.001" in lines[0]
    body = "\n".join(lines)
    for expected in ("linear0", "Dense", "lif1", "LIF", "output", "8,192", "reset=zero",
                     "total: 9,618 parameters, 9,472 synapses", "sklearn-digits"):
        assert expected in body


def test_quantize_run_verify_commands(demo_dir: Path, tmp_path: Path) -> None:
    model = str(demo_dir / "digits.nmc")
    proc = cli("quantize", model, "-o", str(tmp_path / "q.nmc"), "--calibrate", "32", check=True)
    assert "w_exp" in proc.stdout and "lif1" in proc.stdout
    graph = nmcompile.load(demo_dir / "digits.nmc")
    spikes, _ = datasets.test_inputs(graph.metadata, 5)
    np.save(tmp_path / "spikes.npy", spikes)
    cli("run", str(tmp_path / "q.nmc"), "--input", str(tmp_path / "spikes.npy"), "--record",
        "-o", str(tmp_path / "out.npz"), check=True)
    want = nmcompile.run(nmcompile.load(tmp_path / "q.nmc"), spikes, record=True)
    with np.load(tmp_path / "out.npz") as saved:
        assert np.array_equal(saved["output/output"], want.output())
        assert np.array_equal(saved["spikes/lif1"], want.spikes["lif1"])
    proc = cli("verify", model, "--samples", "40", "--json", check=True)
    report = json.loads(proc.stdout)
    assert report["equal"] is True and "emulator" in report["backends"]
    assert report["float_agreement"] > 0.9 and report["accuracy"]["quantized"] > 0.85
    proc = cli("verify", model, "--samples", "8")
    assert proc.returncode == 0 and "all backends agree" in proc.stdout
    proc = cli("verify", model, "--backends", "emulator,nosuch")
    assert proc.returncode == 1 and "unknown backend 'nosuch'" in proc.stderr


def test_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    proc = cli("inspect", str(tmp_path / "missing.nmc"))
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0
    assert "no such file" in proc.stderr and "Traceback" not in proc.stderr
    (tmp_path / "bad.nmc").write_text("junk")
    proc = cli("--debug", "inspect", str(tmp_path / "bad.nmc"))
    assert proc.returncode == 1 and "Traceback" in proc.stderr


def test_help_and_version() -> None:
    proc = cli("--help", check=True)
    for verb in ("demo", "inspect", "quantize", "run", "verify"):
        assert verb in proc.stdout
    assert cli("--version", check=True).stdout.strip() == f"nmcompile {nmcompile.__version__}"
    assert "DIR/digits.nmc" in cli("demo", "--help", check=True).stdout
