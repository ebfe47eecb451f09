"""Quantisation control (issue 17, point 2): `--weight-bits`, per-layer overrides, a sweep of
widths with accuracy and agreement, and the report's per-layer agreement and rate error on
the calibration data.

The model is the demo's digits network trained for one epoch (64 hidden neurons). Oracles:
the mantissa ranges of a b-bit two's complement number, the rounding bound of half a step,
spike agreement counted here from the float interpreter's and the emulator's spikes, and the
Lava and Verilog targets running the narrowed model spike for spike like the emulator.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest

import nmcompile
from nmcompile import datasets, demo
from nmcompile.cli import main
from nmcompile.errors import NmcompileError
from nmcompile.ir.quantized import ACT_SHIFT, QDense, QSparse


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> dict:
    d = demo.Demo(out_dir=Path(tempfile.mkdtemp(prefix="qcontrol-")), epochs=1, hidden=64,
                  log=lambda _: None)
    demo.stage_train(d)
    demo.stage_export(d)
    path = tmp_path_factory.mktemp("qcontrol") / "f.nmc"
    nmcompile.save(d.graph, path)
    calibration, _ = datasets.train_inputs(d.graph.metadata, 64)
    return {"graph": d.graph, "path": path, "calibration": calibration}


def _mantissas(node) -> np.ndarray:
    assert isinstance(node, (QDense, QSparse))
    return np.asarray(node.values if isinstance(node, QSparse) else node.weight)


@pytest.mark.parametrize("bits", [6, 4, 2])
def test_weight_bits_narrow_every_projection_within_half_a_step(model, bits: int) -> None:
    graph = model["graph"]
    q, report = nmcompile.quantize(graph, "loihi2", model["calibration"], report=True,
                                   weight_bits=bits)
    assert q.metadata["quantization"]["weight_bits"] == {
        "lif1.from_input": bits, "lif3.from_lif1": bits}
    scales = q.metadata["quantization"]["scales"]
    for layer, src in (("lif1", "linear0"), ("lif3", "linear2")):
        (pname, _), = q.predecessors(layer)
        node = q[pname]
        m = _mantissas(node)
        # mixed signs: a b-bit two's complement mantissa
        assert m.min() >= -(2 ** (bits - 1)) and m.max() <= 2 ** (bits - 1) - 1, pname
        step = 2.0 ** node.weight_exp * (1 << ACT_SHIFT) / scales[layer]
        w = np.asarray(graph[src].weight)
        stored = np.zeros_like(w)
        if isinstance(node, QSparse):
            stored[node.rows, node.cols] = m
        else:
            stored = m.astype(np.float64)
        assert np.abs(stored * step - w).max() <= step / 2 + 1e-9, pname
        assert {p.bits for r in report.layers for p in r.projections} == {bits}


def test_layer_bits_override_one_layer_and_bad_widths_are_refused(model) -> None:
    graph = model["graph"]
    q = nmcompile.quantize(graph, weight_bits=4, layer_bits={"lif3": 8})
    assert q.metadata["quantization"]["weight_bits"] == {"lif1.from_input": 4}
    m = _mantissas(q["lif1.from_input"])
    assert m.min() >= -8 and m.max() <= 7
    assert np.abs(_mantissas(q["lif3.from_lif1"])).max() > 8  # the full 8 bits are used
    q = nmcompile.quantize(graph, layer_bits={"lif1.from_input": 3})  # a projection by name
    assert q.metadata["quantization"]["weight_bits"] == {"lif1.from_input": 3}
    with pytest.raises(NmcompileError, match=r"\[2, 8\].*only be narrowed"):
        nmcompile.quantize(graph, weight_bits=9)
    with pytest.raises(NmcompileError, match=r"'lif9'.*neither a neuron layer"):
        nmcompile.quantize(graph, layer_bits={"lif9": 4})
    with pytest.raises(NmcompileError, match=r"layer 'lif1'.*\[2, 8\]"):
        nmcompile.quantize(graph, layer_bits={"lif1": 1})


def test_report_measures_each_layers_agreement_on_the_calibration_data(model) -> None:
    graph, cal = model["graph"], model["calibration"]
    q, report = nmcompile.quantize(graph, "loihi2", cal, report=True, weight_bits=3)
    float_run = nmcompile.run(graph, cal, backend="float", record=True)
    q_run = nmcompile.run(q, cal, backend="emulator", record=True)
    for layer in report.layers:
        a, b = float_run.spikes[layer.name] != 0, q_run.spikes[layer.name] != 0
        assert layer.agreement == pytest.approx(np.mean(a == b))
        assert layer.rate_error == pytest.approx(b.mean() - a.mean())
    assert min(r.agreement for r in report.layers) < 0.99  # 3 bits do lose spikes
    text = report.table()
    assert "agree" in text and f"{report.layers[0].agreement:.2%}" in text
    assert all(r.agreement is None for r in nmcompile.quantize(graph, report=True)[1].layers)


def test_a_narrowed_model_runs_equal_on_every_target(model) -> None:
    q = nmcompile.quantize(model["graph"], "loihi2", model["calibration"], weight_bits=3,
                           layer_bits={"lif3": 5})
    spikes, _ = datasets.test_inputs(model["graph"].metadata, 4)
    report = nmcompile.verify(q, spikes, ["emulator", "lava", "verilog"])
    assert report.equal, report.mismatches
    assert report.backends["emulator"]["spikes"] > 0


def test_sweep_prints_accuracy_and_agreement_per_width(model, capsys) -> None:
    path = str(model["path"])
    code = main(["quantize", path, "--sweep-bits", "8,4,2", "--calibrate", "64",
                 "--samples", "128", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert [e["bits"] for e in out["sweep"]] == [8, 4, 2]
    assert out["input"]["kind"] == "dataset" and out["input"]["split"] == "test"
    assert out["calibration"]["split"] == "train" and out["calibration"]["samples"] == 64
    acc = [e["fidelity"]["accuracy"] for e in out["sweep"]]
    assert len({a["float"] for a in acc}) == 1  # one float run
    assert acc[0]["quantized"] - acc[2]["quantized"] > 0.1  # 2 bits lose a lot
    agree = [e["fidelity"]["layers"]["lif1"]["agreement"] for e in out["sweep"]]
    assert agree[0] > agree[1] > agree[2]
    assert main(["quantize", path, "--sweep-bits", "8,4", "--calibrate", "64",
                 "--samples", "32"]) == 0
    text = capsys.readouterr().out
    assert "measured on sklearn-digits (test split)" in text and "lif1 agree" in text


def test_sweep_on_the_users_input_with_labels(model, tmp_path, capsys) -> None:
    spikes, labels = datasets.test_inputs(model["graph"].metadata, 32)
    np.save(tmp_path / "x.npy", spikes)
    np.save(tmp_path / "y.npy", labels)
    code = main(["quantize", str(model["path"]), "--sweep-bits", "6", "--input",
                 str(tmp_path / "x.npy"), "--labels", str(tmp_path / "y.npy"), "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["input"]["kind"] == "arrays" and "accuracy" in out["sweep"][0]["fidelity"]
    assert main(["quantize", str(model["path"])]) == 2  # neither -o nor --sweep-bits
    assert "give -o" in capsys.readouterr().err


def test_quantize_json_says_the_calibration_and_a_random_fallback(model, tmp_path,
                                                                  capsys) -> None:
    out = tmp_path / "q.nmc"
    assert main(["quantize", str(model["path"]), "-o", str(out), "--weight-bits", "5",
                 "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["calibration"]["kind"] == "bound"
    assert nmcompile.load(out).metadata["quantization"]["weight_bits"]["lif1.from_input"] == 5
    bare = nmcompile.load(model["path"])
    bare.metadata.pop("dataset")
    nmcompile.save(bare, tmp_path / "bare.nmc")
    assert main(["quantize", str(tmp_path / "bare.nmc"), "-o", str(tmp_path / "bq.nmc"),
                 "--calibrate", "8", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["calibration"]["random"] is True
    assert "WARNING" in captured.err and "random" in captured.err
