"""Building and running the testbench with Icarus Verilog or Verilator.

A build depends only on the RTL and the sizes (`nm_params.vh`), never on the network's
contents, which the simulator reads from `mem/*.hex` in its working directory at time zero.
Builds are cached by a hash of the RTL, the sizes and the simulator's version, under
`$NMCOMPILE_CACHE` (default `~/.cache/nmcompile`)/hdl, so many graphs of the same sizes share
one build. A cache entry is made in a temporary folder and renamed into place, so concurrent
test processes never see half of one.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from nmcompile.errors import NmcompileError

from .hexfiles import params_header

SIMULATORS = ("icarus", "verilator")
CACHE_KEEP = 16  # builds kept in the cache, most recently used first
#: RTL shipped with the package (rtl/), in compilation order.
RTL_SOURCES = ("nm_ram.v", "nm_core.v")
INCLUDES = ("nm_core_inst.vh",)
TB_SOURCES = ("nm_tb.v",)


def rtl_dir() -> Path:
    return Path(str(resources.files("backends.hdl") / "rtl"))


def cache_root() -> Path:
    """$NMCOMPILE_CACHE/hdl, else ~/.cache/nmcompile/hdl, else (not writable) a folder in
    the system's temporary directory."""
    base = Path(os.environ.get("NMCOMPILE_CACHE") or Path.home() / ".cache" / "nmcompile")
    try:
        (base / "hdl").mkdir(parents=True, exist_ok=True)
        return base / "hdl"
    except OSError:
        return Path(tempfile.gettempdir()) / "nmcompile-hdl-cache"


def find_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        package = "iverilog" if name in ("iverilog", "vvp") else name
        raise NmcompileError(f"{name} is not installed; install it with `apt-get install "
                             f"{package}` (scripts/setup.sh does)")
    return path


@functools.cache
def _version(simulator: str) -> str:
    cmd = [find_tool("iverilog"), "-V"] if simulator == "icarus" else [find_tool("verilator"),
                                                                     "--version"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    return (out.stdout or out.stderr).splitlines()[0] if (out.stdout or out.stderr) else ""


def build_key(simulator: str, params: dict[str, int]) -> str:
    h = hashlib.sha256()
    h.update(simulator.encode())
    h.update(_version(simulator).encode())
    root = rtl_dir()
    for name in (*RTL_SOURCES, *INCLUDES, *TB_SOURCES, "nm_tb_icarus.v", "tb_main.cpp"):
        h.update(name.encode())
        h.update((root / name).read_bytes())
    h.update(params_header(params).encode())
    return h.hexdigest()[:20]


def run_tool(cmd: list[str], cwd: Path, timeout_s: float, what: str) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise NmcompileError(f"{what} did not finish within {timeout_s:g} s "
                             f"(pass timeout_s= to allow more)") from None
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-20:])
        raise NmcompileError(f"{what} failed (exit {proc.returncode}):\n{tail}")
    return proc


def _prune(root: Path, keep: int = CACHE_KEEP) -> None:
    """Delete all but the `keep` most recently used builds (a Verilator build is ~10 MB)."""
    builds = sorted((p for p in root.glob("*-*") if p.is_dir() and not p.name.startswith(".")),
                    key=lambda p: p.stat().st_mtime, reverse=True)
    for old in builds[keep:]:
        shutil.rmtree(old, ignore_errors=True)


def build(simulator: str, params: dict[str, int], *, timeout_s: float = 600) -> Path:
    """The simulator executable for these sizes, built once and cached."""
    if simulator not in SIMULATORS:
        raise NmcompileError(f"unknown simulator {simulator!r}; choose one of {SIMULATORS}")
    key = build_key(simulator, params)
    final = cache_root() / f"{simulator}-{key}"
    exe = final / ("sim.vvp" if simulator == "icarus" else "obj/Vnm_tb")
    if exe.exists():
        os.utime(final)  # most recently used: kept longest by _prune
        return exe
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        src = rtl_dir()
        inc = tmp / "inc"
        inc.mkdir()
        (inc / "nm_params.vh").write_text(params_header(params, "sizes of this build"))
        for name in INCLUDES:
            shutil.copy(src / name, inc / name)
        sources = [str(src / n) for n in (*RTL_SOURCES, *TB_SOURCES)]
        if simulator == "icarus":
            run_tool([find_tool("iverilog"), "-g2005", "-o", str(tmp / "sim.vvp"), f"-I{inc}",
                  "-s", "nm_tb_icarus", *sources, str(src / "nm_tb_icarus.v")], tmp, timeout_s,
                 "iverilog")
        else:
            run_tool([find_tool("verilator"), "--cc", "--exe", "--build", "-O3", "-Wno-fatal",
                  "-Wno-WIDTH", "-Wno-UNUSED", "--x-assign", "fast", "--top-module", "nm_tb",
                  f"-I{inc}", "-Mdir", str(tmp / "obj"), "-j", str(min(4, os.cpu_count() or 1)),
                  "-CFLAGS", "-O1", *sources, str(src / "tb_main.cpp")], tmp, timeout_s,
                 "verilator")
        try:
            tmp.rename(final)
        except OSError:  # another process made the same build first
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _prune(final.parent)
    return exe


@dataclass
class Response:
    """What the testbench wrote: per step (sample-major) the output events and cycles."""

    events: np.ndarray   # (k, 4): step, layer, neuron, value
    trace: np.ndarray    # (k, 5): step, layer, neuron, u, v
    cycles: np.ndarray   # (B * T,) cycles of each step
    counters: dict[int, int]


def write_stimulus(path: Path, events_per_step: list[np.ndarray], samples: int, steps: int,
                   trace: bool) -> None:
    """stim.txt: header, then per step the (source, neuron, value) lines and "-1 0 0"."""
    with path.open("w") as f:
        f.write(f"{samples} {steps} {int(trace)}\n")
        for ev in events_per_step:
            if len(ev):
                f.write("".join(f"{s} {i} {v}\n" for s, i, v in ev.tolist()))
            f.write("-1 0 0\n")


def parse_response(text: str, n_steps: int) -> Response:
    events, trace, cycles, counters = [], [], [], {}
    step = 0
    ended = False
    for line in text.splitlines():
        tag, *vals = line.split()
        if tag == "E":
            events.append((step, *map(int, vals)))
        elif tag == "U":
            trace.append((step, *map(int, vals)))
        elif tag == "T":
            cycles.append(int(vals[2]))
            step += 1
        elif tag == "K":
            counters[int(vals[0])] = int(vals[1])
        elif tag == "END":
            ended = True
    if not ended or step != n_steps:
        raise NmcompileError(f"the testbench stopped after {step} of {n_steps} steps; its "
                             f"output ends with: {text[-300:]!r}")
    return Response(np.asarray(events, np.int64).reshape(-1, 4),
                    np.asarray(trace, np.int64).reshape(-1, 5),
                    np.asarray(cycles, np.int64), counters)


def simulate(exe: Path, simulator: str, write_memories, events_per_step: list[np.ndarray],
             samples: int, steps: int, *, trace: bool, timeout_s: float) -> Response:
    """Run one testbench invocation for the whole batch in a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="nmcompile-sim-") as tmp:
        work = Path(tmp)
        write_memories(work / "mem")
        write_stimulus(work / "stim.txt", events_per_step, samples, steps, trace)
        cmd = [find_tool("vvp"), "-n", str(exe)] if simulator == "icarus" else [str(exe)]
        run_tool(cmd, work, timeout_s, simulator)
        return parse_response((work / "resp.txt").read_text(), samples * steps)
