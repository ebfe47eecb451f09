"""CLI conventions (issue 17, point 6): `--json` and `--quiet` on every verb, one JSON object
on stdout that says what the text says, and progress bars that are off with `--quiet` or
when stderr is not a terminal."""

from __future__ import annotations

import io
import json
import sys

import numpy as np
import pytest
import torch
from torch import nn

import nmcompile
from nmcompile import nn as snn
from nmcompile import progress
from nmcompile.cli import build_parser, main
from nmcompile.ir.summary import summarize


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict:
    torch.manual_seed(3)
    net = snn.sequential(nn.Linear(12, 16), snn.LIF(beta=0.9, threshold=0.5),
                         nn.Linear(16, 4), snn.LIF(beta=0.8, threshold=0.5))
    graph = nmcompile.from_torch(net, torch.zeros(1, 1, 12), dt=1e-3)
    folder = tmp_path_factory.mktemp("cli")
    spikes = (np.random.default_rng(0).random((10, 3, 12)) < 0.3).astype(np.uint8)
    np.save(folder / "x.npy", spikes)
    nmcompile.save(graph, folder / "f.nmc")
    nmcompile.save(nmcompile.quantize(graph), folder / "q.nmc")
    return {"folder": folder, "graph": graph, "spikes": spikes}


def _json(capsys, *args: str) -> dict:
    assert main([*map(str, args), "--json", "--quiet"]) == 0
    return json.loads(capsys.readouterr().out)


def test_every_verb_takes_json_and_quiet() -> None:
    verbs = build_parser()._subparsers._group_actions[0].choices
    assert set(verbs) >= {"demo", "inspect", "quantize", "run", "verify", "compile",
                          "estimate", "map"}
    for name, p in verbs.items():
        options = {o for a in p._actions for o in a.option_strings}
        assert {"--json", "--quiet"} <= options, name


def test_inspect_json_lists_the_nodes(files, capsys) -> None:
    info = _json(capsys, "inspect", files["folder"] / "f.nmc")
    rows = summarize(files["graph"])
    assert [n["name"] for n in info["nodes"]] == [r["name"] for r in rows]
    assert info["parameters"] == sum(r["params"] for r in rows)
    assert info["synapses"] == 12 * 16 + 16 * 4


def test_run_json_gives_the_outputs_and_counters(files, capsys) -> None:
    info = _json(capsys, "run", files["folder"] / "q.nmc", "--input", files["folder"] / "x.npy")
    want = nmcompile.run(nmcompile.load(files["folder"] / "q.nmc"), files["spikes"],
                         backend="emulator")
    (name, out), = want.outputs.items()
    assert info["backend"] == "emulator" and info["input"]["kind"] == "arrays"
    assert info["outputs"][name] == {"kind": "spikes", "shape": list(out.shape),
                                     "total": float(out.sum())}
    assert info["counters"]["spikes"] == want.counters["spikes"]


def test_compile_json_names_the_output_and_the_hardware(files, capsys) -> None:
    out = files["folder"] / "lava"
    info = _json(capsys, "compile", files["folder"] / "f.nmc", "--target", "lava", "-o", out)
    assert info["output"] == str(out) and (out / "README.md").exists()
    assert [r["layer"] for r in info["hardware"]] == ["lif1", "lif3"]
    assert "quantization" in info  # a float model was quantised first, as the text says


def test_progress_bars_only_on_a_terminal_and_not_quiet(monkeypatch) -> None:
    items = [1, 2, 3]
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal
    progress.set_quiet(False)
    assert progress.bar(items, "x") is items

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    wrapped = progress.bar(items, "step")
    assert wrapped is not items and list(wrapped) == items
    assert "step" in sys.stderr.getvalue()
    progress.set_quiet(True)
    try:
        assert progress.bar(items, "x") is items
    finally:
        progress.set_quiet(False)


def test_estimate_takes_the_backends_run_options(files, capsys) -> None:
    q, x = files["folder"] / "q.nmc", files["folder"] / "x.npy"
    on_verilog = _json(capsys, "estimate", q, "--input", x, "--backend", "verilog",
                       "--option", "simulator=icarus")
    on_emulator = _json(capsys, "estimate", q, "--input", x)
    assert on_verilog["backend"] == "verilog" and on_emulator["backend"] == "emulator"
    assert on_verilog["layers"] == on_emulator["layers"]  # the same counts, layer by layer
    assert main(["estimate", str(q), "--input", str(x), "--option", "bogus=1"]) == 1
    assert "no backend here takes 'bogus'" in capsys.readouterr().err


def test_a_long_call_shows_its_elapsed_time_on_a_terminal_only(monkeypatch) -> None:
    import time

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    progress.set_quiet(False)
    monkeypatch.setattr(sys, "stderr", Terminal())
    with progress.busy("run on lava", after=0.05, every=0.02):
        time.sleep(0.3)
    assert "run on lava: 00:0" in sys.stderr.getvalue()
    monkeypatch.setattr(sys, "stderr", Terminal())
    with progress.busy("quick", after=5):  # done before it would show
        pass
    assert sys.stderr.getvalue() == ""
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal: nothing, no thread
    with progress.busy("x", after=0):
        time.sleep(0.05)
    assert sys.stderr.getvalue() == ""
