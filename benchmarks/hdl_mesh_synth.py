"""Yosys resource counts of nm_mesh (R x C generic cores and routers) on the digits model.

    .venv/bin/python benchmarks/hdl_mesh_synth.py [--model digits_q.nmc] [--out DIR]
        [--meshes 1x1,2x1,2x2] [--lanes 1,2] [--no-pnr] [--timeout-s 1200]

The model is the demo's quantised 64-128-10 LIF network (`--model`, else trained here with
the demo's stages and saved as OUT/digits_q.nmc). For each mesh CxR (C columns, R rows) it is
mapped with `nmcompile.map(q, chip, cores=R*C, objective="latency", inputs=x)` (x: the first
8 test digits) on the built-in fpga-mesh chip with `tiles = [C, R]` (a copy of its TOML,
OUT/mesh-CxR-lanesL/chip.toml), lowered with `backends.hdl.mesh.build_mesh`, and written as a
project folder OUT/mesh-CxR-lanesL/: mem/cNN/*.hex, rtl/ (nm_mesh_top and what it includes,
rtl/nm_params.vh = the build's sizes), build/ (the tools' logs and outputs), report.json.
Cores of L accumulate lanes: `build_mesh(m, lanes=L)`.

Measured, all parsed from the tools' own output (in the project folder):
- `ice40`: `synth_ice40 -top nm_mesh_top`, then `stat`: SB_LUT4, flip-flops (SB_DFF*),
  SB_RAM40_4K, SB_CARRY, SB_MAC16, the top's I/O pins (from the netlist's ports), and which
  part the counts fit: iCE40 HX8K (7,680 LUTs, 32 block RAMs, no DSP) or UP5K (5,280 LUTs,
  30 block RAMs, 8 DSPs). Where one fits, nextpnr-ice40 places and routes on it (HX8K ct256
  first, else UP5K sg48; `--freq 12 --seed 1`): Fmax and utilisation, or why it failed;
- `xilinx`: `synth_xilinx -family xc7 -top nm_mesh_top`, then `stat`: LUTs, flip-flops,
  RAMB18/RAMB36, CARRY4, DSP48E1, LUT RAM (not placed);
- each step's wall time (mapping and writing, each synthesis, place and route).

Every tool runs in the project folder (the RAMs' $readmemh paths are relative to it) with a
timeout (`--timeout-s`). A build is made in OUT/.mesh-CxR-lanesL.tmp and renamed when done; on
any failure the scratch folder is removed and the error is reported in its place. Prints one
JSON object with every build (OUT/mesh-*/report.json holds each one's).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import nmcompile  # noqa: E402
from backends.hdl.hexfiles import params_header  # noqa: E402
from backends.hdl.mesh import build_mesh  # noqa: E402
from backends.hdl.mesh_runner import write_mesh_memories  # noqa: E402
from backends.hdl.simulate import find_tool, rtl_dir, run_tool  # noqa: E402
from backends.hdl.synth import _version, parse_nextpnr, parse_stat, summarize  # noqa: E402
from nmcompile import datasets  # noqa: E402
from nmcompile.errors import NmcompileError  # noqa: E402
from nmcompile.ir import Graph, save  # noqa: E402
from nmcompile.mapping import load_chip  # noqa: E402
from nmcompile.procs import Reaper, signals_raise  # noqa: E402

#: The RTL of the synthesis top, in compilation order, and the headers it includes.
RTL_SOURCES = ("nm_ram.v", "nm_core.v", "nm_router.v", "nm_mesh.v", "nm_mesh_top.v")
RTL_INCLUDES = ("nm_core_inst.vh", "nm_mesh_inst.vh")
TOP = "nm_mesh_top"
#: iCE40 parts, tried in this order for place and route: logic cells (one SB_LUT4 each),
#: 4-kbit block RAMs, SB_MAC16 DSPs, and the package nextpnr places on.
ICE40_PARTS = {
    "hx8k": {"name": "iCE40 HX8K", "package": "ct256", "luts": 7680, "brams": 32, "dsps": 0},
    "up5k": {"name": "iCE40 UP5K", "package": "sg48", "luts": 5280, "brams": 30, "dsps": 8},
}
SAMPLES = 8  # test digits of the mapping's calibration run


def digits_model(path: str | None, out: Path) -> tuple[Graph, str]:
    """The quantised digits model: loaded from `path`, else trained (benchmarks/hdl_digits.py's
    way) and saved as out/digits_q.nmc; with where it lies."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from hdl_digits import digits_model as train_or_load

    q = train_or_load(path)
    if path:
        return q, str(Path(path).resolve())
    return q, str(save(q, out / "digits_q.nmc"))


def chip_file(cols: int, rows: int, folder: Path) -> Path:
    """folder/chip.toml: the built-in fpga-mesh chip with `tiles = [cols, rows]`."""
    src = Path(load_chip("fpga-mesh").path)
    text, n = re.subn(r"^tiles = \{ value = \[\s*\d+\s*,\s*\d+\s*\]",
                      f"tiles = {{ value = [{cols}, {rows}]", src.read_text(), count=1,
                      flags=re.MULTILINE)
    if n != 1:
        raise NmcompileError(f"no 'tiles = {{ value = [..] ...' line in {src}")
    path = folder / "chip.toml"
    path.write_text(text)
    chip = load_chip(path)
    if chip.tiles != (cols, rows):
        raise NmcompileError(f"{path}: tiles read back as {chip.tiles}, not {(cols, rows)}")
    return path


def write_project(q: Graph, x: Any, cols: int, rows: int, lanes: int, folder: Path
                  ) -> dict[str, Any]:
    """Map, lower and write the project folder; returns what the report says about it."""
    chip = chip_file(cols, rows, folder)
    m = nmcompile.map(q, chip, cores=rows * cols, objective="latency", inputs=x)
    mesh = build_mesh(m, lanes=lanes)  # the programs laid out for the lanes
    params = dict(mesh.params)
    write_mesh_memories(mesh, params, folder / "mem")
    rtl = folder / "rtl"
    rtl.mkdir()
    digests = {}
    for name in RTL_SOURCES + RTL_INCLUDES:
        shutil.copy(rtl_dir() / name, rtl / name)
        digests[name] = hashlib.sha256((rtl / name).read_bytes()).hexdigest()[:16]
    (rtl / "nm_params.vh").write_text(params_header(
        params, f"sizes of the digits model on a {cols} x {rows} fpga-mesh "
                f"(benchmarks/hdl_mesh_synth.py)"))
    return {"cores_used": m.placement.n_cores, "waves": mesh.waves, "params": params,
            "rtl_sha256": digests}


def yosys_script(synth: str, stat: str) -> str:
    # -defer: each module is elaborated once, with its instance's parameters (each core's
    # MEMDIR), not first with its defaults
    read = "read_verilog -defer -Irtl " + " ".join(f"rtl/{n}" for n in RTL_SOURCES)
    return f"{read}; {synth}; tee -q -o {stat} stat"


def run_logged(cmd: list[str], folder: Path, timeout_s: float, what: str,
               commands: list[dict[str, Any]]) -> float:
    """Run a tool in `folder` (run_tool: dies with us, killed at the timeout); record its
    command line and wall time."""
    start = time.perf_counter()
    try:
        run_tool(cmd, folder, timeout_s, what)
    finally:
        wall = round(time.perf_counter() - start, 2)
        commands.append({"what": what, "cwd": ".", "argv": cmd, "wall_s": wall})
    return wall


def ice40(folder: Path, pnr: bool, timeout_s: float, commands: list[dict[str, Any]]
          ) -> dict[str, Any]:
    yosys = find_tool("yosys")
    script = yosys_script(f"synth_ice40 -top {TOP} -json build/ice40.json",
                          "build/yosys-ice40-stat.txt")
    wall = run_logged([yosys, "-q", "-l", "build/yosys-ice40.log", "-p", script], folder,
                      timeout_s, "yosys synth_ice40", commands)
    cells = parse_stat((folder / "build/yosys-ice40-stat.txt").read_text())
    s = summarize(cells, "ice40")
    netlist = json.loads((folder / "build/ice40.json").read_text())
    ports = netlist["modules"][TOP]["ports"]
    report: dict[str, Any] = {
        "synth_s": wall, "lut4": s["luts"], "dff": s["ffs"], "sb_ram40_4k": s["brams"],
        "sb_carry": s["carry"], "sb_mac16": s["dsps"],
        "io_pins": sum(len(p["bits"]) for p in ports.values()), "cells": cells}
    fits = [k for k, p in ICE40_PARTS.items()
            if s["luts"] <= p["luts"] and s["brams"] <= p["brams"] and s["dsps"] <= p["dsps"]]
    report["fits"] = [ICE40_PARTS[k]["name"] for k in fits]
    if not fits:
        report["pnr"] = "not run: fits no part (" + "; ".join(
            f"{p['name']}: {p['luts']} LUTs, {p['brams']} block RAMs, {p['dsps']} DSPs"
            for p in ICE40_PARTS.values()) + ")"
        return report
    if not pnr:
        report["pnr"] = "not run (--no-pnr)"
        return report
    part = ICE40_PARTS[fits[0]]
    log = folder / "build/nextpnr-ice40.log"
    cmd = [find_tool("nextpnr-ice40"), f"--{fits[0]}", "--package", part["package"],
           "--json", "build/ice40.json", "--asc", "build/ice40.asc",
           "--pcf-allow-unconstrained", "--freq", "12", "--seed", "1", "-q",
           "-l", "build/nextpnr-ice40.log"]
    report["pnr_part"] = f"{part['name']} {part['package']}"
    try:
        report["pnr_s"] = run_logged(cmd, folder, timeout_s, "nextpnr-ice40", commands)
    except NmcompileError as e:
        text = log.read_text(errors="replace") if log.exists() else ""
        errors = [ln.strip() for ln in text.splitlines() if "ERROR" in ln]
        report["pnr_s"] = commands[-1]["wall_s"]
        report["pnr"] = "failed: " + ("; ".join(errors[:5]) if errors else str(e)[-600:])
        return report
    placed = parse_nextpnr(log.read_text())
    report["pnr"] = "ok"
    report["fmax_mhz"] = placed["fmax_mhz"]
    report["utilisation"] = {k: list(v) for k, v in placed["utilisation"].items()}
    return report


def xilinx(folder: Path, timeout_s: float, commands: list[dict[str, Any]]) -> dict[str, Any]:
    script = yosys_script(f"synth_xilinx -family xc7 -top {TOP}", "build/yosys-xilinx-stat.txt")
    wall = run_logged([find_tool("yosys"), "-q", "-l", "build/yosys-xilinx.log", "-p", script],
                      folder, timeout_s, "yosys synth_xilinx", commands)
    cells = parse_stat((folder / "build/yosys-xilinx-stat.txt").read_text())
    s = summarize(cells, "xilinx")

    def total(pattern: str) -> int:
        return sum(n for k, n in cells.items() if re.fullmatch(pattern, k))

    return {"synth_s": wall, "luts": s["luts"], "ffs": s["ffs"],
            "ramb18": total(r"RAMB18\w*"), "ramb36": total(r"RAMB36\w*"),
            "carry4": total(r"CARRY4"), "dsp48e1": total(r"DSP48E1"), "lutram": s["lutram"],
            "cells": cells}


@contextlib.contextmanager
def scratch(path: Path, reaper: Reaper) -> Iterator[Path]:
    """A fresh folder that is removed unless the block completes (and if we die)."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    reaper.remove(path)
    try:
        yield path
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        raise


def build(q: Graph, x: Any, cols: int, rows: int, lanes: int, out: Path, args: argparse.Namespace,
          tools: dict[str, str], reaper: Reaper) -> dict[str, Any]:
    name = f"mesh-{cols}x{rows}-lanes{lanes}"
    final = out / name
    report: dict[str, Any] = {"mesh": f"{cols}x{rows}", "columns": cols, "rows": rows,
                              "lanes": lanes, "folder": str(final)}
    commands: list[dict[str, Any]] = []
    start = time.perf_counter()
    try:
        with scratch(out / f".{name}.tmp", reaper) as folder:
            (folder / "build").mkdir()
            t0 = time.perf_counter()
            made = write_project(q, x, cols, rows, lanes, folder)
            report |= {"cores_used": made["cores_used"], "waves": made["waves"],
                       "map_and_write_s": round(time.perf_counter() - t0, 2),
                       "rtl_sha256": made["rtl_sha256"]}
            report["ice40"] = ice40(folder, not args.no_pnr, args.timeout_s, commands)
            report["xilinx"] = xilinx(folder, args.timeout_s, commands)
            report |= {"wall_s": round(time.perf_counter() - start, 2), "tools": tools,
                       "commands": commands, "params": made["params"]}
            (folder / "report.json").write_text(json.dumps(report, indent=1) + "\n")
            shutil.rmtree(final, ignore_errors=True)
            folder.rename(final)
    except (NmcompileError, OSError, ValueError, KeyError) as e:
        return {**report, "folder": None, "error": f"{type(e).__name__}: {e}",
                "wall_s": round(time.perf_counter() - start, 2), "commands": commands}
    return report


def parse_meshes(text: str) -> list[tuple[int, int]]:
    out = []
    for item in text.split(","):
        m = re.fullmatch(r"\s*(\d+)x(\d+)\s*", item)
        if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
            raise argparse.ArgumentTypeError(f"mesh {item!r} is not COLUMNSxROWS, e.g. 2x1")
        out.append((int(m.group(1)), int(m.group(2))))
    return out


def parse_lanes(text: str) -> list[int]:
    try:
        lanes = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--lanes {text!r}: integers, e.g. 1,2") from None
    if any(v < 1 for v in lanes):
        raise argparse.ArgumentTypeError("--lanes: each at least 1")
    return lanes


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Each build is written to OUT/mesh-CxR-lanesL/ (mem/, rtl/, build/, chip.toml, "
               "report.json); one JSON object with every build goes to stdout.")
    parser.add_argument("--model", help="a quantised digits model (.nmc); default: train one "
                        "with the demo's stages (saved as OUT/digits_q.nmc)")
    parser.add_argument("--out", type=Path, help="output folder (default: a fresh temporary "
                        "folder, kept); existing build folders in it are replaced")
    parser.add_argument("--meshes", type=parse_meshes, default=parse_meshes("1x1,2x1,2x2"),
                        help="meshes COLUMNSxROWS, comma-separated (default 1x1,2x1,2x2)")
    parser.add_argument("--lanes", type=parse_lanes, default=[1, 2],
                        help="LANES values, comma-separated (default 1,2); values other "
                        "than 1 are skipped while the RTL has no LANES parameter")
    parser.add_argument("--no-pnr", action="store_true", help="skip nextpnr-ice40 (Fmax)")
    parser.add_argument("--timeout-s", type=float, default=1200.0,
                        help="limit for each tool run, seconds (default 1200)")
    args = parser.parse_args()

    out = (args.out or Path(tempfile.mkdtemp(prefix="hdl-mesh-synth-"))).resolve()
    out.mkdir(parents=True, exist_ok=True)
    try:
        with signals_raise():
            result = run_all(args, out)
    except BaseException:
        if args.out is None:  # our temporary folder: nothing in it is kept
            shutil.rmtree(out, ignore_errors=True)
        raise
    print(json.dumps(result))


def run_all(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """Every build of `args` into `out`, and what the script prints."""
    start = time.perf_counter()
    q, model = digits_model(args.model, out)
    x, _ = datasets.test_inputs(q.metadata, SAMPLES)
    tools = {"yosys": _version("yosys"), "nextpnr-ice40": _version("nextpnr-ice40")}
    result: dict[str, Any] = {
        "benchmark": "hdl_mesh_synth", "date": time.strftime("%Y-%m-%d"), "out": str(out),
        "model": model, "mapping_inputs": list(x.shape), "cores": os.cpu_count(),
        "machine": platform.machine(), "tools": tools, "builds": []}
    with Reaper() as reaper:
        for cols, rows in args.meshes:
            for lanes in args.lanes:
                print(f"building mesh {cols}x{rows}, LANES={lanes}", file=sys.stderr)
                result["builds"].append(build(q, x, cols, rows, lanes, out, args, tools,
                                              reaper))
    result["wall_s"] = round(time.perf_counter() - start, 1)
    return result


if __name__ == "__main__":
    main()
