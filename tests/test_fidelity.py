"""Fidelity as a check (issue 17, point 1): `nmcompile verify Q.nmc --reference FLOAT.nmc`
compares a quantised model with the float model it was quantised from, layer by layer, and
fails (exit 5) below its bounds; a reference that is not the quantised model's source is
refused; a quantised model on one backend alone is a usage error (exit 2).

The model is the demo's digits network trained for one epoch (64 hidden neurons); the
tampered copy raises the hidden layer's threshold from 4096 to 5000.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path

import numpy as np
import pytest

import nmcompile
from nmcompile import demo
from nmcompile.cli import main
from nmcompile.ir.serialize import digest


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = demo.Demo(out_dir=Path(tempfile.mkdtemp(prefix="fidelity-")), epochs=1, hidden=64,
                  log=lambda _: None)
    for stage in (demo.stage_train, demo.stage_export, demo.stage_quantize):
        stage(d)
    folder = tmp_path_factory.mktemp("fidelity")
    out = {"float": folder / "f.nmc", "quant": folder / "q.nmc", "tampered": folder / "t.nmc",
           "other": folder / "other.nmc"}
    nmcompile.save(d.graph, out["float"])
    nmcompile.save(d.qgraph, out["quant"])
    t = nmcompile.load(out["quant"])
    assert t["lif1"].vth == 4096
    t.nx.nodes["lif1"]["node"] = dataclasses.replace(t["lif1"], vth=5000)
    nmcompile.save(t, out["tampered"])
    other = nmcompile.load(out["float"])
    layer = other["linear0"]
    other.nx.nodes["linear0"]["node"] = dataclasses.replace(layer, weight=layer.weight * 1.01)
    nmcompile.save(other, out["other"])
    return out


def verify_json(capsys, *args: str) -> tuple[int, dict]:
    code = main(["verify", *map(str, args), "--samples", "64", "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_the_quantiser_records_its_source(files) -> None:
    q = nmcompile.load(files["quant"])
    assert q.metadata["quantization"]["source"]["sha256"] == digest(nmcompile.load(files["float"]))


def test_the_untampered_model_passes_with_the_defaults(files, capsys) -> None:
    code, report = verify_json(capsys, files["quant"], "--reference", files["float"])
    assert code == 0 and report["verdict"] == "pass"
    layers = report["fidelity"]["layers"]
    assert set(layers) == {"lif1", "lif3"}
    assert min(v["agreement"] for v in layers.values()) >= 0.95
    assert abs(layers["lif1"]["rate_error"]) < 0.01
    assert set(report["fidelity"]["accuracy"]) == {"float", "quantized"}


def test_a_raised_threshold_fails_with_exit_5(files, capsys) -> None:
    _, good = verify_json(capsys, files["quant"], "--reference", files["float"])
    code, bad = verify_json(capsys, files["tampered"], "--reference", files["float"])
    assert code == 5
    drop = good["fidelity"]["layers"]["lif1"]["agreement"] - \
        bad["fidelity"]["layers"]["lif1"]["agreement"]
    assert drop >= 0.05, drop
    assert bad["fidelity"]["worst_layer"] == "lif1"
    assert bad["fidelity"]["layers"]["lif1"]["first_divergent_step"] == 0
    assert any("layer 'lif1'" in reason for reason in bad["verdict"])
    text_code = main(["verify", str(files["tampered"]), "--reference", str(files["float"]),
                      "--samples", "64"])
    text = capsys.readouterr().out
    assert text_code == 5 and "NOT verified (exit 5)" in text and "lif1" in text


def test_the_bounds_can_be_loosened(files, capsys) -> None:
    code, _ = verify_json(capsys, files["tampered"], "--reference", files["float"],
                          "--min-agreement", "0.5", "--max-accuracy-drop", "1")
    assert code == 0


def test_a_reference_that_is_not_the_source_is_refused(files, capsys) -> None:
    assert main(["verify", str(files["quant"]), "--reference", str(files["other"])]) == 1
    assert "not the float model this one was quantised from" in capsys.readouterr().err


def test_a_quantised_model_alone_is_a_usage_error(files, capsys) -> None:
    assert main(["verify", str(files["quant"])]) == 2
    assert "--reference FLOAT.nmc" in capsys.readouterr().err


def test_the_api_takes_the_reference(files) -> None:
    q, f = nmcompile.load(files["quant"]), nmcompile.load(files["float"])
    x, labels = nmcompile.datasets.test_inputs(q.metadata, 16)
    report = nmcompile.verify(q, x, ["emulator"], reference=f, labels=labels)
    assert report.exit_code == 0 and report.fidelity["worst_layer"] in ("lif1", "lif3")
    assert np.isclose(report.float_agreement, min(
        v["agreement"] for v in report.fidelity["layers"].values()))
