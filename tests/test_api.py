"""The target-independent entry points: the backend registry and atomic artefacts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from targets import compile_only

import nmcompile
from nmcompile.errors import NmcompileError
from nmcompile.ir import IF, Graph, Input, Output
from nmcompile.registry import registered


def _graph() -> Graph:
    g = Graph()
    g.add_node("x", Input((2,)))
    g.add_node("n", IF())
    g.add_node("o", Output())
    g.add_edge("x", "n")
    g.add_edge("n", "o")
    return g


def test_compile_is_atomic(tmp_path: Path) -> None:
    def good(graph, out_dir):
        (Path(out_dir) / "README.md").write_text("new")

    def bad(graph, out_dir):
        (Path(out_dir) / "half.txt").write_text("half written")
        raise NmcompileError("lowering failed")

    with registered("test-good", compile_only("test-good", good)), \
            registered("test-bad", compile_only("test-bad", bad)):
        out = tmp_path / "artefact"
        with pytest.raises(NmcompileError, match="lowering failed"):
            nmcompile.compile(_graph(), out, "test-bad")
        assert list(tmp_path.iterdir()) == []  # nothing half-written, no temporary folder
        nmcompile.compile(_graph(), out, "test-good")
        assert (out / "README.md").read_text() == "new"
        (out / "README.md").write_text("old")
        with pytest.raises(NmcompileError):
            nmcompile.compile(_graph(), out, "test-bad")
        assert (out / "README.md").read_text() == "old"  # a failure keeps the previous artefact
        assert [p.name for p in tmp_path.iterdir()] == ["artefact"]


def test_unknown_backend_lists_the_known_ones() -> None:
    with pytest.raises(NmcompileError, match="unknown backend 'nope'; available: float, "):
        nmcompile.run(_graph(), np.zeros((1, 1, 2)), backend="nope")


def test_default_backend_follows_the_graph() -> None:
    g = _graph()
    assert nmcompile.run(g, np.ones((2, 1, 2))).backend == "float"
    q = nmcompile.quantize(g)
    assert nmcompile.run(q, np.ones((2, 1, 2))).backend == "emulator"


def test_a_users_backends_folder_is_named_not_imported(tmp_path: Path) -> None:
    """A project folder named `backends` in the current directory shadows nmcompile's
    top-level `backends` package: the run fails saying so, and none of its code runs."""
    import subprocess
    import sys

    mine = tmp_path / "backends"
    (mine / "emulator").mkdir(parents=True)
    (mine / "__init__.py").write_text("")
    (mine / "emulator" / "__init__.py").write_text("raise SystemExit('the wrong package ran')")
    code = ("import numpy as np, nmcompile\n"
            "from nmcompile.ir import Graph, Input, Output\n"
            "from nmcompile.ir.quantized import QDense, QLIF\n"
            "g = Graph()\n"
            "g.add_node('x', Input((2,))); g.add_node('fc', QDense(np.ones((2, 2), int)))\n"
            "g.add_node('h', QLIF(vth=3)); g.add_node('o', Output())\n"
            "for a, b in (('x', 'fc'), ('fc', 'h'), ('h', 'o')): g.add_edge(a, b)\n"
            "try:\n"
            "    nmcompile.run(g, np.ones((2, 1, 2), np.uint8))\n"
            "except nmcompile.NmcompileError as exc:\n"
            "    print(exc)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"resolves to {mine}" in proc.stdout and "shadows it" in proc.stdout
    assert "wrong package" not in proc.stdout + proc.stderr
