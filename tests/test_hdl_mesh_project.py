"""`nmcompile compile --target verilog` of a placed graph: a mesh project folder (nm_mesh's
RTL, mem/cNN/, the mesh testbench with its example stimulus and the emulator's events, a
Makefile whose check passes in Icarus and fails when expected.txt is altered), lanes, and
`--synth ice40` on a 1 x 1 mesh (small enough for an HX8K: Yosys and nextpnr, the report's
numbers those of the tools' own output).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from random_graphs import random_graph
from test_hdl_mesh import mesh_chip

import nmcompile
from backends import hdl
from backends.hdl.mesh import build_mesh
from backends.hdl.mesh_runner import run_mesh
from nmcompile.datasets import random_inputs
from nmcompile.ir import Graph, Input, Output
from nmcompile.ir.quantized import QLI, QLIF, QDense

MESH_RTL = ["nm_core.v", "nm_core_inst.vh", "nm_layers.vh", "nm_mesh.v", "nm_mesh_inst.vh",
            "nm_mesh_top.v", "nm_params.vh", "nm_ram.v", "nm_router.v"]


def make(folder: Path, target: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-C", str(folder), target], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def placed(tmp_path_factory: pytest.TempPathFactory):
    """Seed 9 (dense, ALIF, an LI readout) mapped onto a 2 x 2 mesh: every core used, two
    waves per step, spikes crossing cores."""
    g, x, _ = random_graph(9)
    chip = mesh_chip(tmp_path_factory.mktemp("chips"), (2, 2))
    return nmcompile.map(g, chip, cores=4, inputs=x)


@pytest.fixture(scope="module")
def project(placed, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return nmcompile.compile(placed, tmp_path_factory.mktemp("out") / "mesh proj", "verilog")


def test_the_mesh_project_holds_the_mesh(placed, project: Path) -> None:
    assert sorted(p.name for p in (project / "rtl").iterdir()) == MESH_RTL
    assert sorted(p.name for p in (project / "tb").iterdir()) == [
        "expected.txt", "nm_mesh_tb.v", "nm_mesh_tb_icarus.v", "stim.txt", "tb_main.cpp"]
    assert sorted(p.name for p in (project / "mem").iterdir()) == ["c00", "c01", "c02", "c03"]
    assert (project / "mem" / "c03" / "d_ent.hex").exists()
    mk = (project / "Makefile").read_text()
    assert "synth_ice40 -top nm_mesh_top" in mk and "read_verilog -defer" in mk
    assert "--top-module nm_mesh_tb --prefix Vnm_tb" in mk
    info = json.loads((project / "program.json").read_text())
    mesh = build_mesh(placed)
    assert info["mesh"] == {"rows": 2, "cols": 2, "waves": mesh.waves, "lanes": 1}
    assert info["params"] == mesh.params
    # every neuron of every IR layer is on exactly one core
    held: dict[str, list[int]] = {}
    for core in info["cores"]:
        assert len(core["op_list"]) == core["ops"] == len(mesh.programs[core["core"]].ops)
        for layer in core["layers"]:
            if layer["ir_layer"] is not None:
                held.setdefault(layer["ir_layer"], []).extend(
                    i for a, b in layer["neurons"] for i in range(a, b))
    shapes = {k: int(np.prod(v)) for k, v in placed.shapes().items()}
    assert set(held) == {k for k in shapes if placed[k].kind == "neuron"}
    for name, members in held.items():
        assert sorted(members) == list(range(shapes[name])), name
    readme = (project / "README.md").read_text()
    assert "## Where the neurons are" in readme and "| 3 | (1, 1) |" in readme
    header = (project / "rtl" / "nm_layers.vh").read_text()
    idents = re.findall(r"localparam (\S+) =", header)
    assert idents and all(re.fullmatch(r"C\d\d_(LAYER|RECV|PROJ)_[A-Za-z0-9_]+", v)
                          for v in idents)
    expected = (project / "tb" / "expected.txt").read_text()
    assert sum(line.startswith("T ") for line in expected.splitlines()) == 4 * 25  # steps
    cores = {int(line.split()[1]) for line in expected.splitlines() if line.startswith("E ")}
    assert cores == {0, 1, 2, 3}
    assert re.search(r"^E \d \d+ \d+ -?(0|[2-9]|\d\d+)$", expected, re.MULTILINE)  # LI values


def test_the_mesh_project_simulates_and_its_check_can_fail(project: Path) -> None:
    done = make(project, "sim-icarus")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "sim-icarus: every output event equals the emulator's" in done.stdout
    resp = (project / "build" / "icarus" / "run" / "resp.txt").read_text().splitlines()
    events = [line for line in resp if line.startswith("E ")]
    assert len(events) == (project / "tb" / "expected.txt").read_text().count("E ")
    # the cores' events interleave: the check compares each step's events as a set
    exp = project / "tb" / "expected.txt"
    good = exp.read_text()
    lines = good.splitlines()
    k = next(i for i, line in enumerate(lines) if line.startswith("E ") and line.endswith(" 1"))
    try:
        exp.write_text("\n".join(lines[:k] + lines[k + 1:]) + "\n")  # one spike fewer
        done = make(project, "sim-icarus")
        assert done.returncode != 0 and "output differs from tb/expected.txt" in done.stdout
    finally:
        exp.write_text(good)


def test_lanes_reach_the_mesh_and_the_single_core(placed, tmp_path: Path) -> None:
    """`lanes=2` (the backend's compile; the facade's option is for run only): LANES = 2
    cores, the mesh's and the single core's projects equal the emulator."""
    out = hdl.compile(placed, tmp_path / "mesh2", lanes=2)
    assert "parameter LANES = 2," in (out / "rtl" / "nm_params.vh").read_text()
    assert (out / "mem" / "c00" / "weights1.hex").exists()
    done = make(out, "sim-icarus")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    g, _, _ = random_graph(0)
    one = hdl.compile(g, tmp_path / "core2", lanes=2)
    assert "parameter LANES = 2," in (one / "rtl" / "nm_params.vh").read_text()
    done = make(one, "sim-icarus")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "every output event equals the emulator's" in done.stdout


def test_synthesis_of_a_1x1_mesh_reports_the_tools_numbers(tmp_path: Path) -> None:
    """`synth="ice40"` on a placed graph: Yosys synth_ice40 -top nm_mesh_top and nextpnr
    (a 1 x 1 mesh fits an HX8K; 2 x 2 meshes take ~12,000 LUTs): every figure of report.json
    as in the tools' output; cycles per step measured by run_mesh."""
    g, x, _ = random_graph(0)
    m = nmcompile.map(g, mesh_chip(tmp_path, (1, 1), neurons=4096), inputs=x)
    out = nmcompile.compile(m, tmp_path / "proj", "verilog", synth="ice40")
    (rep,) = json.loads((out / "report.json").read_text())
    words = " ".join((out / "build" / "yosys-ice40-stat.txt").read_text().split())
    for cell, key in (("SB_LUT4", "luts"), ("SB_RAM40_4K", "brams"), ("SB_CARRY", "carry")):
        assert f"{cell} {rep[key]}" in words, cell
    assert rep["ffs"] == sum(int(n) for n in re.findall(r"SB_DFF\w* (\d+)", words))
    assert rep["fits"] and "Number of memories: 0" in words
    pnr = (out / "build" / "nextpnr-ice40.log").read_text()
    fmax = float(re.findall(r"Max frequency for clock '[^']*': ([\d.]+) MHz", pnr)[-1])
    assert rep["fmax_mhz"] == fmax > 10
    example = random_inputs({k: g[k].shape for k in g.inputs}, 4, seed=0)  # project._example
    mesh_run = run_mesh(m, example, simulator="icarus")
    assert rep["cycles_per_step"]["mean"] == round(float(mesh_run.cycles.mean()), 1)
    assert rep["throughput"]["steps_per_s"] == pytest.approx(
        fmax * 1e6 / rep["cycles_per_step"]["mean"], rel=1e-3)
    assert "| ice40 |" in (out / "report.md").read_text()


def test_awkward_names_reach_verilog_only_sanitised(tmp_path: Path) -> None:
    """Layer names that are Verilog keywords or hold dots and dashes, on a 2 x 1 mesh: the
    per-core localparams of nm_layers.vh are legal (iverilog compiles the header) and the
    project simulates."""
    g = Graph()
    g.add_node("in.put-0", Input((5,)))
    g.add_node("module", QDense(2 * np.arange(-7, 8).reshape(3, 5) + 10))
    g.add_node("wire", QLIF(vth=3, du=2000, dv=100))
    g.add_node("wire.2", QDense(np.ones((4, 3), int) * 9))
    g.add_node("out-1", QLI(dv=100))
    g.add_node("o", Output())
    for a, b in (("in.put-0", "module"), ("module", "wire"), ("wire", "wire.2"),
                 ("wire.2", "out-1"), ("out-1", "o")):
        g.add_edge(a, b)
    x = (np.random.default_rng(1).random((8, 2, 5)) < 0.5).astype(np.uint8)
    m = nmcompile.map(g, mesh_chip(tmp_path, (2, 1)), cores=2, inputs=x)
    out = nmcompile.compile(m, tmp_path / "proj", "verilog")
    header = (out / "rtl" / "nm_layers.vh").read_text()
    idents = re.findall(r"localparam (\S+) =", header)
    assert "C00_LAYER_wire" in idents and all(
        re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v) for v in idents), idents
    (tmp_path / "check.v").write_text('module check;\n`include "nm_layers.vh"\nendmodule\n')
    subprocess.run(["iverilog", "-g2005", f"-I{out / 'rtl'}", "-o", str(tmp_path / "c.vvp"),
                    str(tmp_path / "check.v")], check=True, capture_output=True, timeout=60)
    done = make(out, "sim-icarus")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
