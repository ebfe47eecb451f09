"""Synthesis with Yosys (and place and route with nextpnr-ice40) through the project's Makefile,
and the resource report parsed from the tools' own output.

- `synth` (= `synth-ice40`): `synth_ice40`, then Yosys' `stat` -> build/yosys-ice40-stat.txt
- `pnr-ice40`: nextpnr-ice40 on an iCE40 HX8K (ct256), log -> build/nextpnr-ice40.log: the
  measured maximum clock frequency and the device utilisation
- `synth-xilinx`: `synth_xilinx` (7 series), then `stat` -> build/yosys-xilinx-stat.txt
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

from nmcompile.errors import NmcompileError

from .simulate import find_tool, run_tool

#: The iCE40 part the Makefile places on: 7680 logic cells, 32 block RAMs of 4 kbit.
ICE40 = {"device": "hx8k", "package": "ct256", "lcs": 7680, "brams": 32}
TARGETS = ("ice40", "xilinx")


def makefile_rules(rtl: str, top: str = "nm_top", defer: bool = False,
                   deps: str = "rtl/nm_params.vh") -> str:
    """The synthesis part of the project's Makefile: `rtl` (the RTL file list) and rtl/`top`.v
    read by Yosys, module `top` synthesised; `deps`: further prerequisites (the headers).
    `defer`: `read_verilog -defer`, so that each module is elaborated only with its instances'
    parameters (the mesh: every core's MEMDIR builds its $readmemh paths; the single core's
    are the default's and need no defer)."""
    read = f"read_verilog{' -defer' if defer else ''} -Irtl {rtl} rtl/{top}.v"
    part = f"--{ICE40['device']} --package {ICE40['package']}"
    deps = f"{rtl} rtl/{top}.v {deps}"
    return f"""\
synth: synth-ice40
synth-ice40: build/ice40.json
pnr-ice40: build/nextpnr-ice40.log
synth-xilinx: build/yosys-xilinx-stat.txt

build/ice40.json: {deps}
\tmkdir -p build
\tyosys -q -l build/yosys-ice40.log -p "{read}; synth_ice40 -top {top} \\
\t  -json build/ice40.json; tee -q -o build/yosys-ice40-stat.txt stat"

build/nextpnr-ice40.log: build/ice40.json
\tnextpnr-ice40 {part} --json build/ice40.json --asc build/ice40.asc \\
\t  --pcf-allow-unconstrained --freq 12 --seed 1 -q -l $@.tmp && mv $@.tmp $@

build/yosys-xilinx-stat.txt: {deps}
\tmkdir -p build
\tyosys -q -l build/yosys-xilinx.log -p "{read}; synth_xilinx -top {top} \\
\t  -family xc7; tee -q -o $@ stat"
"""


def parse_stat(text: str) -> dict[str, int]:
    """Cell counts of the top module from Yosys' `stat` output."""
    cells: dict[str, int] = {}
    found = False
    for line in text.splitlines():
        m = re.match(r"\s+Number of cells:\s+(\d+)", line)
        if m:
            found, cells = True, {"total": int(m.group(1))}
            continue
        m = re.match(r"\s+(\$?[A-Za-z_][\w$]*)\s+(\d+)\s*$", line)
        if found and m:
            cells[m.group(1)] = int(m.group(2))
    if not found:
        raise NmcompileError("no 'Number of cells' in Yosys' stat output")
    return cells


def summarize(cells: dict[str, int], target: str) -> dict[str, int]:
    """LUTs, flip-flops, block RAMs, carry cells and DSPs from the cell counts."""
    def total(pattern: str) -> int:
        return sum(n for name, n in cells.items() if re.fullmatch(pattern, name))

    if target == "ice40":
        return {"luts": total(r"SB_LUT4"), "ffs": total(r"SB_DFF\w*"),
                "brams": total(r"SB_RAM40_4K\w*"), "carry": total(r"SB_CARRY"),
                "dsps": total(r"SB_MAC16")}
    return {"luts": total(r"LUT[1-6]"), "ffs": total(r"FD\w*"),
            "brams": total(r"RAMB(18|36)\w*"), "lutram": total(r"RAM\d+[SDM]\w*"),
            "carry": total(r"CARRY\d?"), "dsps": total(r"DSP48\w*")}


def parse_nextpnr(text: str) -> dict[str, Any]:
    """Maximum frequency and utilisation from nextpnr-ice40's log."""
    fmax = [float(m) for m in re.findall(r"Max frequency for clock '[^']*': ([\d.]+) MHz", text)]
    used = {name: (int(a), int(b)) for name, a, b in
            re.findall(r"Info:\s+(\w+):\s+(\d+)/\s*(\d+)", text)}
    if not fmax:
        raise NmcompileError("no 'Max frequency' in nextpnr's log")
    return {"fmax_mhz": fmax[-1], "utilisation": used}


def _make(project: Path, targets: list[str], timeout_s: float) -> None:
    # make runs in the project (no -C: a relative path given as -C from inside the project
    # named a folder that does not exist)
    run_tool([find_tool("make"), *targets], project, timeout_s, f"make {' '.join(targets)}")


def run_synth(project: Path, target: str, *, pnr: bool = True,
              timeout_s: float = 1200) -> dict[str, Any]:
    """Synthesise the project for `target` and return its resource figures."""
    if target not in TARGETS:
        raise NmcompileError(f"unknown synthesis target {target!r}; choose one of {TARGETS}")
    _make(project, ["synth" if target == "ice40" else "synth-xilinx"], timeout_s)
    cells = parse_stat((project / "build" / f"yosys-{target}-stat.txt").read_text())
    report: dict[str, Any] = {"target": target, "tool": "yosys " + _version("yosys"),
                              "cells": cells, **summarize(cells, target)}
    if target == "ice40":
        report["device"] = f"iCE40 {ICE40['device'].upper()} {ICE40['package']}"
        fits = report["luts"] <= ICE40["lcs"] and report["brams"] <= ICE40["brams"]
        report["fits"] = fits
        if pnr and fits:
            _make(project, ["pnr-ice40"], timeout_s)
            report["place_and_route"] = parse_nextpnr(
                (project / "build" / "nextpnr-ice40.log").read_text())
            report["fmax_mhz"] = report["place_and_route"]["fmax_mhz"]
            report["pnr_tool"] = "nextpnr-ice40 " + _version("nextpnr-ice40")
        elif not fits:
            report["note"] = (f"needs {report['luts']} LUTs and {report['brams']} block RAMs; "
                              f"the {ICE40['device'].upper()} has {ICE40['lcs']} and "
                              f"{ICE40['brams']}: not placed")
    else:
        report["device"] = "Xilinx 7 series (synth_xilinx -family xc7; not placed)"
    return report


def _version(tool: str) -> str:
    try:
        out = subprocess.run([tool, "-V" if tool == "yosys" else "--version"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    text = (out.stdout or out.stderr).strip()
    m = re.search(r"(?:Yosys |Version )([\w.+-]+)", text)
    return m.group(1) if m else "?"


def add_throughput(report: dict[str, Any], cycles: dict[str, float] | None,
                   events_per_step: float | None) -> dict[str, Any]:
    """Cycles per step (measured in simulation) and what they imply at the measured clock."""
    report["cycles_per_step"] = cycles
    if cycles and report.get("fmax_mhz"):
        steps = report["fmax_mhz"] * 1e6 / cycles["mean"]
        report["throughput"] = {"steps_per_s": round(steps, 1),
                                "clock_mhz": report["fmax_mhz"]}
        if events_per_step:
            report["throughput"]["synaptic_events_per_s"] = round(steps * events_per_step)
    elif cycles:
        report["throughput"] = {"steps_per_s_per_mhz": round(1e6 / cycles["mean"], 2)}
    return report


def write_report(project: Path, reports: list[dict[str, Any]]) -> None:
    """report.json and report.md in the project folder."""
    (project / "report.json").write_text(json.dumps(reports, indent=1) + "\n")
    rows = ["| target | device | LUTs | FFs | block RAMs | carry | DSPs | Fmax (MHz) | "
            "cycles/step (mean, max) | steps/s |", "|" + "---|" * 10]
    for r in reports:
        cyc = r.get("cycles_per_step") or {}
        thr = r.get("throughput") or {}
        steps = thr.get("steps_per_s", f"{thr['steps_per_s_per_mhz']} per MHz"
                        if "steps_per_s_per_mhz" in thr else "-")
        rows.append(f"| {r['target']} | {r['device']} | {r['luts']} | {r['ffs']} | "
                    f"{r['brams']} | {r['carry']} | {r['dsps']} | {r.get('fmax_mhz', '-')} | "
                    f"{cyc.get('mean', '-')}, {cyc.get('max', '-')} | {steps} |")
    notes = [f"- {r['target']}: {r['note']}" for r in reports if r.get("note")]
    text = "\n".join([
        "# Resources", "",
        "Parsed from Yosys' `stat` (build/yosys-*-stat.txt) and nextpnr-ice40's log "
        "(build/nextpnr-ice40.log); cycles per step measured by simulating tb/stim.txt.", "",
        *rows, "", *notes, ""])
    (project / "report.md").write_text(text)
