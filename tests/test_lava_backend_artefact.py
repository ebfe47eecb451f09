"""`nmcompile.compile(..., target="lava")`: a self-contained Lava program whose `run.py`,
started in a fresh interpreter, reproduces `nmcompile run`'s spikes."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

import nmcompile
from nmcompile.ir import Graph, Input, Output
from nmcompile.ir.quantized import QALIF, QLIF, QConv2d, QDense, QSparse

REPO = Path(__file__).resolve().parents[1]
TITLE = 'evil """ title\nimport os; os.remove("x")  # \\'


def graph() -> Graph:
    """A stock convolution (Lava's (X, Y, C) layout), a custom neuron, a delayed skip link, a
    sparse projection, and names that are not Python identifiers."""
    rng = np.random.default_rng(3)
    g = Graph(metadata={"source": TITLE})
    g.add_node("in.put", Input((2, 6, 5)))
    g.add_node("conv-1", QConv2d(2 * rng.integers(-20, 60, (3, 2, 3, 3)), 0, (2, 1), (1, 0)))
    g.add_node("c.1", QLIF(vth=150, du=2000, dv=500, bias_mant=rng.integers(0, 20, (3, 3, 3))))
    g.add_node("fc", QDense(2 * rng.integers(-20, 60, (6, 27))))
    g.add_node("h-2", QALIF(vth=200, vth_step=60, da=500, du=1500, dv=300, reset="subtract"))
    w = 2 * rng.integers(0, 40, (6, 60)) * (rng.random((6, 60)) < 0.3)
    rows, cols = np.nonzero(w)
    g.add_node("skip", QSparse(rows, cols, w[rows, cols], w.shape, 1))
    g.add_node("out", Output())
    for a, b in (("in.put", "conv-1"), ("conv-1", "c.1"), ("c.1", "fc"), ("fc", "h-2"),
                 ("in.put", "skip"), ("skip", "h-2"), ("h-2", "out")):
        g.add_edge(a, b)
    g.nx.edges["in.put", "skip"]["delay"] = 2
    return g


def run_artefact(out: Path, *args: str) -> dict[str, np.ndarray]:
    # A fresh interpreter, started outside the repository: only the folder and the venv.
    done = subprocess.run([sys.executable, str(out / "run.py"), *args], cwd=out.parent,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    with np.load(out / "output.npz") as data:
        return {k: data[k] for k in data.files}


def test_run_py_reproduces_nmcompile_run(tmp_path: Path) -> None:
    g = graph()
    x = (np.random.default_rng(4).random((14, 2, 2, 6, 5)) < 0.4).astype(np.int64)
    out = nmcompile.compile(g, tmp_path / "lava-out", target="lava", spikes=x)
    got = run_artefact(out)
    lava = nmcompile.run(g, x, backend="lava", record=True)
    emulator = nmcompile.run(g, x, record=True)
    assert np.array_equal(got["output/out"], lava.outputs["out"])
    assert np.array_equal(got["output/out"], emulator.outputs["out"])
    for layer, spikes in emulator.spikes.items():
        assert np.array_equal(got[f"spikes/{layer}"], spikes), layer
    assert emulator.spikes["h-2"].sum() > 0 and emulator.spikes["c.1"].sum() > 0

    names = sorted(p.name for p in out.iterdir())
    assert names == [".nmcompile-artefact", "README.md", "input.npy", "lava_compat.py",
                     "lowering.json", "network.py", "nmc_models.py", "output.npz", "params.npz",
                     "run.py"]
    report = json.loads((out / "lowering.json").read_text())
    kinds = {row["process"]: (row["kind"], row["deployable"]) for row in report["processes"]}
    assert kinds["conv-1"] == ("Conv", True) and kinds["h-2"] == ("FixedNeuron", False)
    assert kinds["skip"] == ("DelaySparse", True)
    readme = (out / "README.md").read_text()
    assert "Loihi2HwCfg" in readme and "| `h-2` | FixedNeuron |" in readme
    source = (out / "network.py").read_text()
    tree = ast.parse(source)
    # the hostile title stays inside the docstring, on one line, and imports nothing
    assert ast.get_docstring(tree).splitlines()[0].startswith("evil ??? title?import os")
    imported = {a.name for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
                for a in n.names}
    assert "os" not in imported and "remove" not in source.split('"""', 2)[2]
    assert "procs['conv-1'] = Conv(" in source


def test_compile_without_inputs_writes_an_example_and_runs(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    g = Graph()
    g.add_node("x", Input((12,)))
    g.add_node("w", QDense(rng.integers(0, 120, (7, 12))))
    g.add_node("n", QLIF(vth=120, du=3000, dv=200))
    g.add_node("o", Output())
    for a, b in (("x", "w"), ("w", "n"), ("n", "o")):
        g.add_edge(a, b)
    out = nmcompile.compile(g, tmp_path / "plain", target="lava")
    got = run_artefact(out, "--output", str(tmp_path / "plain" / "output.npz"))
    x = np.load(out / "input.npy")
    assert x.shape[1:] == (1, 12)
    assert np.array_equal(got["output/o"], nmcompile.run(g, x).outputs["o"])
    assert not (out / "nmc_models.py").exists()  # only stock processes: nothing custom
