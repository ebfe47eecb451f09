"""Hardware honesty (issue 17, point 5): `compile --target lava` says per layer whether its
process is stock Lava (deployable) or a custom model (CPU simulation only), why, and what
would make it stock; `--strict-hardware` refuses a model with custom layers and writes
nothing."""

from __future__ import annotations

import numpy as np

import nmcompile
from nmcompile.cli import main
from nmcompile.ir import Graph, Input, Output
from nmcompile.ir.quantized import QLIF, QDense


def two_layers() -> Graph:
    g = Graph(metadata={"quantization": {"profile": "loihi2"}})
    g.add_node("x", Input((4,)))
    g.add_node("fc", QDense(np.arange(12).reshape(3, 4) - 5))
    g.add_node("zero", QLIF(vth=10, du=100, dv=200))
    g.add_node("fc2", QDense(np.ones((2, 3), int) * 7))
    g.add_node("sub", QLIF(vth=10, du=100, dv=200, reset="subtract"))
    g.add_node("out", Output())
    for a, b in (("x", "fc"), ("fc", "zero"), ("zero", "fc2"), ("fc2", "sub"), ("sub", "out")):
        g.add_edge(a, b)
    return g


def test_compile_says_which_layers_run_on_a_chip(tmp_path, capsys) -> None:
    nmcompile.save(two_layers(), tmp_path / "g.nmc")
    assert main(["compile", str(tmp_path / "g.nmc"), "--target", "lava",
                 "-o", str(tmp_path / "out")]) == 0
    lines = {line.split(":")[0].strip(): line for line in capsys.readouterr().out.splitlines()}
    assert "stock Lava" in lines["zero"] and "deployable" in lines["zero"]
    assert "CPU SIMULATION ONLY" in lines["sub"] and "reset by subtraction" in lines["sub"]
    assert "zero reset" in lines["sub"]


def test_strict_hardware_refuses_custom_layers_and_writes_nothing(tmp_path, capsys) -> None:
    nmcompile.save(two_layers(), tmp_path / "g.nmc")
    assert main(["compile", str(tmp_path / "g.nmc"), "--target", "lava", "-o",
                 str(tmp_path / "out"), "--strict-hardware"]) == 1
    err = capsys.readouterr().err
    assert "'sub' (reset by subtraction" in err and "'zero' (" not in err
    assert not (tmp_path / "out").exists()
