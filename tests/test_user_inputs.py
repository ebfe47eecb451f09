"""The user's data (issue 17, point 3): a batch-first input is refused naming the fix, and
`--layout BTC` takes it; a fallback to random spikes is said on stderr; calibration data comes
from the training split, never the test split accuracy is reported on."""

from __future__ import annotations

import numpy as np
import pytest

import nmcompile
from nmcompile import datasets
from nmcompile.cli import main
from nmcompile.errors import ShapeError
from nmcompile.ir import LIF, Dense, Graph, Input, Output

STEPS = 25


def small(metadata: dict | None = None) -> Graph:
    g = Graph(metadata=metadata)
    g.add_node("x", Input((3,)))
    g.add_node("fc", Dense(np.array([[0.6, 0.4, 0.3], [0.2, 0.9, 0.5]])))
    g.add_node("h", LIF(0.9, 0.5))
    g.add_node("out", Output())
    for a, b in (("x", "fc"), ("fc", "h"), ("h", "out")):
        g.add_edge(a, b)
    return g


def test_a_batch_first_input_is_refused_naming_the_fix(tmp_path, capsys) -> None:
    g = small({"encoding": {"num_steps": STEPS}})
    x = (np.random.default_rng(0).random((4, STEPS, 3)) < 0.5).astype(np.uint8)  # (B, T, 3)
    with pytest.raises(ShapeError, match=r"batch-first.*np.swapaxes\(x, 0, 1\).*--layout BTC"):
        nmcompile.run(g, x, backend="float")
    assert nmcompile.run(g, x.swapaxes(0, 1), backend="float").output().shape == (STEPS, 4, 2)
    nmcompile.save(g, tmp_path / "g.nmc")
    np.save(tmp_path / "x.npy", x)
    assert main(["run", str(tmp_path / "g.nmc"), "--input", str(tmp_path / "x.npy")]) == 1
    assert "--layout BTC" in capsys.readouterr().err
    assert main(["run", str(tmp_path / "g.nmc"), "--input", str(tmp_path / "x.npy"),
                 "--layout", "BTC"]) == 0
    assert f"({STEPS}, 4, 2)" in capsys.readouterr().out


def test_without_a_recorded_num_steps_any_t_is_taken() -> None:
    x = np.zeros((4, STEPS, 3), np.uint8)
    assert nmcompile.run(small(), x, backend="float").output().shape == (4, STEPS, 2)


def test_random_inputs_are_said_loudly(tmp_path, capsys) -> None:
    nmcompile.save(small(), tmp_path / "g.nmc")
    assert main(["verify", str(tmp_path / "g.nmc"), "--samples", "2"]) == 0
    err = capsys.readouterr().err
    assert "WARNING" in err and "random inputs" in err and "not your data" in err


def test_calibration_comes_from_the_training_split() -> None:
    meta = {"dataset": {"name": "sklearn-digits", "test_size": 0.2, "seed": 0, "split": "test"},
            "encoding": {"name": "poisson", "num_steps": 10, "rate": 1.0, "seed": 0}}
    x_tr, y_tr, x_te, _ = datasets.digits(0.2, 0)
    train, labels = datasets.train_inputs(meta, 16)
    test, _ = datasets.test_inputs(meta, 16)
    assert train.shape == test.shape == (10, 16, 64)
    assert np.array_equal(labels, y_tr[:16])
    assert len(datasets.train_inputs(meta)[1]) == len(x_tr) != len(x_te)


def test_random_inputs_are_said_in_the_json(tmp_path, capsys) -> None:
    import json

    nmcompile.save(small(), tmp_path / "g.nmc")
    nmcompile.save(nmcompile.quantize(small()), tmp_path / "q.nmc")
    assert main(["estimate", str(tmp_path / "g.nmc"), "--samples", "2", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["input"]["random"] is True and "WARNING" in captured.err
    assert main(["map", str(tmp_path / "q.nmc"), "-o", str(tmp_path / "m.nmc"), "--samples",
                 "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["input"]["kind"] == "random"
    np.save(tmp_path / "x.npy", np.ones((5, 2, 3), np.uint8))
    assert main(["estimate", str(tmp_path / "g.nmc"), "--input", str(tmp_path / "x.npy"),
                 "--json"]) == 0
    source = json.loads(capsys.readouterr().out)["input"]
    assert source["kind"] == "arrays" and source["random"] is False
    assert str(tmp_path / "x.npy") in source["description"]
