"""Issue 12, defect 2: `verify` must not pass when the reference overflowed.

The defect's reproduction is a fan-in 512 layer of weight-254 mantissas: the emulator counts
unsafe updates (u wraps, v saturates) and `verify --backends emulator,lava` used to say "all
backends agree" and exit 0. Here each exit code of `nmcompile verify` (`verify.EXIT_CODES`)
is produced by a real run of small graphs saved by the test.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import nmcompile
from nmcompile.cli import main
from nmcompile.ir import LIF, Dense, Graph, Input, Output
from nmcompile.ir.quantized import QLIF, QDense

T, BATCH, FAN_IN = 8, 2, 512


def _overflowing(weight_exp: int) -> Graph:
    """Input(512) -> QDense of 254s -> QLIF with no current decay: u accumulates 2^6 * 254 *
    (about 256 spikes) per step, wraps and saturates v within a few steps. With weight_exp 8,
    Lava's int32 intermediates overflow too, and Lava departs from the emulator."""
    g = Graph()
    g.add_node("x", Input((FAN_IN,)))
    g.add_node("fc", QDense(np.full((4, FAN_IN), 254), weight_exp))
    g.add_node("h", QLIF(vth=100_000, du=0, dv=0))
    g.add_node("out", Output())
    for a, b in (("x", "fc"), ("fc", "h"), ("h", "out")):
        g.add_edge(a, b, 0)
    return g


def _files(tmp_path: Path, graph: Graph) -> tuple[str, str]:
    model = nmcompile.save(graph, tmp_path / "model.nmc")
    spikes = (np.random.default_rng(0).random((T, BATCH, FAN_IN)) < 0.5).astype(np.int64)
    np.save(tmp_path / "spikes.npy", spikes)
    return str(model), str(tmp_path / "spikes.npy")


@pytest.fixture
def unsafe_model(tmp_path: Path) -> tuple[str, str]:
    return _files(tmp_path, _overflowing(weight_exp=0))


def test_unsafe_reference_fails_with_4_unless_allowed(unsafe_model, capsys) -> None:
    """emulator,lava agree spike for spike, but the emulator counted unsafe updates: exit 4
    with the reason and the per-layer count; Lava's are 'not counted', not 0. With
    --allow-unsafe it passes (0) and the JSON still says safe=false with the counts."""
    model, npy = unsafe_model
    assert main(["verify", model, "--backends", "emulator,lava", "--input", npy]) == 4
    out = capsys.readouterr().out
    assert "all backends agree" not in out
    assert "NOT verified (exit 4): emulator counted" in out and "--allow-unsafe" in out
    assert "unsafe updates (emulator): layer 'h'" in out
    assert "unsafe updates (lava): not counted" in out
    assert main(["verify", model, "--backends", "emulator,lava", "--input", npy,
                 "--allow-unsafe", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["equal"] is True and report["safe"] is False and report["verdict"] == "pass"
    assert set(report["unsafe_updates"]) == {"emulator"}  # Lava counts none
    assert report["unsafe_updates"]["emulator"]["h"] > 0
    assert report["fidelity"] is None  # a quantised model: no float reference


def test_unsafe_json_verdict_and_verilog(unsafe_model, capsys) -> None:
    """Through the Verilog core (which counts too): exit 4, the same with --json, whose
    verdict lists the reason and whose counts are per backend and layer."""
    model, npy = unsafe_model
    code = main(["verify", model, "--backends", "emulator,verilog", "--input", npy, "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 4
    assert report["equal"] is True and report["safe"] is False
    emulator, verilog = report["unsafe_updates"]["emulator"], report["unsafe_updates"]["verilog"]
    assert emulator["h"] > 0 and verilog == emulator
    assert len(report["verdict"]) == 1 and "unsafe updates" in report["verdict"][0]


def test_disagreement_is_3_and_every_reason_is_printed(tmp_path: Path, capsys) -> None:
    """weight_exp 8 overflows Lava's int32 arithmetic: the targets disagree (3) and the
    reference is unsafe (4); the lowest code is returned, both reasons printed."""
    model, npy = _files(tmp_path, _overflowing(weight_exp=8))
    assert main(["verify", model, "--backends", "emulator,lava", "--input", npy]) == 3
    out = capsys.readouterr().out
    assert "backends DISAGREE" in out and "all backends agree" not in out
    assert "NOT verified (exit 3): the targets disagree: lava differs from emulator" in out
    assert "NOT verified (exit 4): emulator counted" in out


def test_one_backend_on_a_quantised_model_is_usage_2(unsafe_model, capsys) -> None:
    """The default --backends emulator on a quantised model compares it with itself: 2,
    before anything runs, naming the fix. So are fidelity bounds without a float model."""
    model, npy = unsafe_model
    for argv in (["verify", model, "--input", npy],
                 ["verify", model, "--backends", "emulator,emulator", "--input", npy]):
        assert main(argv) == 2
        assert "name two or more backends, e.g. --backends emulator,lava" in \
            capsys.readouterr().err
    assert main(["verify", model, "--backends", "emulator,verilog", "--input", npy,
                 "--min-agreement", "0.9"]) == 2
    assert "give the float MODEL" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:  # argparse: not a fraction
        main(["verify", model, "--backends", "emulator,verilog", "--max-accuracy-drop", "2"])
    assert exc.value.code == 2


def _float_model(tmp_path: Path) -> tuple[str, str]:
    """A float Dense -> LIF, whose quantised form differs from it on some output bins: one
    large weight per row leaves the others few bits of mantissa."""
    rng = np.random.default_rng(1)
    weight = rng.normal(0, 0.5, (12, 40))
    weight[:, 0] = 8.0
    g = Graph()
    g.add_node("x", Input((40,)))
    g.add_node("fc", Dense(weight))
    g.add_node("h", LIF(beta=0.9, threshold=1.0))
    g.add_node("out", Output())
    for a, b in (("x", "fc"), ("fc", "h"), ("h", "out")):
        g.add_edge(a, b, 0)
    model = nmcompile.save(g, tmp_path / "float.nmc")
    np.save(tmp_path / "x.npy", (rng.random((20, 16, 40)) < 0.3).astype(np.int64))
    return str(model), str(tmp_path / "x.npy")


def test_float_model_fidelity_bounds_give_5(tmp_path: Path, capsys) -> None:
    """A float model on one backend is fine (float vs quantised): 0 without bounds, with the
    agreement inside `fidelity`; 5 when --min-agreement is above it; --max-accuracy-drop
    with --input (no labels) is a usage error."""
    model, npy = _float_model(tmp_path)
    assert main(["verify", model, "--input", npy, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    agreement = report["fidelity"]["agreement"]
    assert report["safe"] is True and report["unsafe_updates"] == {"emulator": {"h": 0}}
    assert agreement == report["float_agreement"] and 0.5 < agreement < 1
    assert main(["verify", model, "--input", npy, "--min-agreement", "1"]) == 5
    assert "NOT verified (exit 5): float vs quantised agreement" in capsys.readouterr().out
    assert main(["verify", model, "--input", npy, "--min-agreement",
                 str(np.floor(agreement * 1000) / 1000)]) == 0
    capsys.readouterr()
    assert main(["verify", model, "--input", npy, "--max-accuracy-drop", "0.02"]) == 2
    assert "--max-accuracy-drop needs the labels" in capsys.readouterr().err


def test_accuracy_drop_in_the_api(tmp_path: Path) -> None:
    """`nmcompile.verify(..., max_accuracy_drop=)` with labels on which the float model is
    right everywhere: the quantised model misclassifies one of 16, so the verdict fails on
    a bound of 0 and passes on a bound of 1."""
    g = nmcompile.load(_float_model(tmp_path)[0])
    x = np.load(tmp_path / "x.npy")
    labels = nmcompile.run(g, x, backend="float").output().sum(axis=0).argmax(axis=1)
    report = nmcompile.verify(g, x, labels=labels, max_accuracy_drop=0.0)
    assert report.accuracy["float"] == 1 and report.accuracy["quantized"] < 1
    assert report.fidelity["accuracy"] == report.accuracy and report.exit_code == 5
    assert len(report.verdict) == 1 and "accuracy drops" in report.verdict[0]
    assert nmcompile.verify(g, x, labels=labels, max_accuracy_drop=1.0).verdict == "pass"
