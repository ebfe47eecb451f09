"""Building and running the testbench with Icarus Verilog or Verilator.

A build depends only on the RTL and the sizes (`nm_params.vh`), never on the network's
contents, which the simulator reads from `mem/*.hex` in its working directory at time zero.
Builds are cached by a hash of the RTL, the sizes and the simulator's version, under
`$NMCOMPILE_CACHE` (default `$XDG_CACHE_HOME/nmcompile`, else `~/.cache/nmcompile`)/hdl, so
many graphs of the same sizes share one build. A cache entry is made in a temporary folder and
renamed into place, so concurrent test processes never see half of one.

The cache holds executables, and the key is computable by anyone, so it is trusted only when
it is ours alone: folders are created 0700, and one not owned by this user, or writable by
group or others, is not used. A cached build runs only if its folder and executable are ours
and not writable by others and the executable's sha256 matches the one written beside it
(`sha256`) at build time; otherwise it is rebuilt. Without a usable cache each run builds in a
private temporary folder, removed afterwards.

Every tool runs with `PR_SET_PDEATHSIG` (it dies with us), and a `Reaper` removes the scratch
and temporary build folders if we die before we do (see `nmcompile.procs`).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from nmcompile.errors import NmcompileError
from nmcompile.procs import Reaper, preexec

from .hexfiles import params_header

SIMULATORS = ("icarus", "verilator")
CACHE_KEEP = 16  # builds kept in the cache, most recently used first
#: RTL shipped with the package (rtl/), in compilation order.
RTL_SOURCES = ("nm_ram.v", "nm_core.v")
INCLUDES = ("nm_core_inst.vh",)
TB_SOURCES = ("nm_tb.v",)
#: The two testbenches: one core (nm_tb), a mesh of cores (nm_mesh_tb): their sources,
#: includes and Icarus clock. Verilator names either one's model Vnm_tb (tb_main.cpp).
TOPS = {
    "nm_tb": (RTL_SOURCES + TB_SOURCES, INCLUDES, "nm_tb_icarus"),
    "nm_mesh_tb": ((*RTL_SOURCES, "nm_router.v", "nm_mesh.v", "nm_mesh_tb.v"),
                   (*INCLUDES, "nm_mesh_inst.vh"), "nm_mesh_tb_icarus"),
}


def rtl_dir() -> Path:
    return Path(str(resources.files("backends.hdl") / "rtl"))


def _private(path: Path, kind: int = stat.S_IFDIR) -> bool:
    """`path` is itself (not through a symlink) a `kind`, owned by us, not writable by others."""
    st = os.lstat(path)
    return (stat.S_IFMT(st.st_mode) == kind and st.st_uid == os.geteuid()
            and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH))


def cache_root() -> Path | None:
    """$NMCOMPILE_CACHE/hdl, else $XDG_CACHE_HOME/nmcompile/hdl, else ~/.cache/nmcompile/hdl;
    None when it cannot be created or is not private (see the module's docstring)."""
    try:
        if os.environ.get("NMCOMPILE_CACHE"):
            base = Path(os.environ["NMCOMPILE_CACHE"])
        else:
            xdg = os.environ.get("XDG_CACHE_HOME", "")
            base = (Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache") / "nmcompile"
        root = base / "hdl"
        base.mkdir(mode=0o700, parents=True, exist_ok=True)
        root.mkdir(mode=0o700, exist_ok=True)
        return root if _private(base) and _private(root) else None
    except (OSError, RuntimeError):  # RuntimeError: no home directory
        return None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def trusted(exe: Path) -> bool:
    """A cached build may run: its folders and executable are ours alone, and the executable's
    sha256 is the one recorded when it was built."""
    entry = exe.parent.parent if exe.parent.name == "obj" else exe.parent
    digest = entry / "sha256"
    try:
        if not (_private(entry) and _private(exe.parent) and _private(exe, stat.S_IFREG)
                and _private(digest, stat.S_IFREG)):
            return False
        return hmac.compare_digest(digest.read_text().strip(), _sha256(exe))
    except (OSError, UnicodeDecodeError):
        return False


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


def build_key(simulator: str, params: dict[str, int], top: str = "nm_tb") -> str:
    h = hashlib.sha256()
    h.update(simulator.encode())
    h.update(_version(simulator).encode())
    h.update(top.encode())
    root = rtl_dir()
    sources, includes, clock = TOPS[top]
    for name in (*sources, *includes, f"{clock}.v", "tb_main.cpp"):
        h.update(name.encode())
        h.update((root / name).read_bytes())
    h.update(params_header(params).encode())
    return h.hexdigest()[:20]


def run_tool(cmd: list[str], cwd: Path, timeout_s: float, what: str) -> subprocess.CompletedProcess:
    """Run a tool to completion; it dies with us (PR_SET_PDEATHSIG), and `subprocess.run`
    kills it on any exception here, SIGTERM's `Terminated` included."""
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout_s,
                              preexec_fn=preexec())
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


def _exe(folder: Path, simulator: str) -> Path:
    return folder / ("sim.vvp" if simulator == "icarus" else "obj/Vnm_tb")


def _compile(simulator: str, params: dict[str, int], tmp: Path, timeout_s: float,
             top: str = "nm_tb") -> Path:
    """Build the testbench into the empty folder `tmp`; record the executable's sha256."""
    src = rtl_dir()
    inc = tmp / "inc"
    inc.mkdir()
    (inc / "nm_params.vh").write_text(params_header(params, "sizes of this build"))
    names, includes, clock = TOPS[top]
    for name in includes:
        shutil.copy(src / name, inc / name)
    sources = [str(src / n) for n in names]
    if simulator == "icarus":
        run_tool([find_tool("iverilog"), "-g2005", "-o", str(tmp / "sim.vvp"), f"-I{inc}",
                  "-s", clock, *sources, str(src / f"{clock}.v")], tmp, timeout_s,
                 "iverilog")
    else:
        run_tool([find_tool("verilator"), "--cc", "--exe", "--build", "-O3", "-Wno-fatal",
                  "-Wno-WIDTH", "-Wno-UNUSED", "--x-assign", "fast", "--top-module", top,
                  "--prefix", "Vnm_tb",
                  f"-I{inc}", "-Mdir", str(tmp / "obj"), "-j", str(min(4, os.cpu_count() or 1)),
                  "-CFLAGS", "-O1", *sources, str(src / "tb_main.cpp")], tmp, timeout_s,
                 "verilator")
    exe = _exe(tmp, simulator)
    (tmp / "sha256").write_text(_sha256(exe) + "\n")
    for path in {exe, exe.parent, tmp / "sha256"}:  # under umask 002 too: ours alone
        os.chmod(path, os.stat(path).st_mode & ~(stat.S_IWGRP | stat.S_IWOTH))
    return exe


def _discard(path: Path) -> None:
    """Remove an untrusted cache entry of ours (a folder, or whatever stands in its place)."""
    if path.is_symlink() or not path.is_dir():
        with contextlib.suppress(OSError):
            path.unlink()
    else:
        shutil.rmtree(path, ignore_errors=True)


def _cached(simulator: str, params: dict[str, int], root: Path, timeout_s: float,
            reaper: Reaper, top: str = "nm_tb") -> Path | None:
    """A trusted build in the cache `root`, made now if needed; None if none can be trusted."""
    final = root / f"{simulator}-{build_key(simulator, params, top)}"
    exe = _exe(final, simulator)
    if trusted(exe):
        os.utime(final)  # most recently used: kept longest by _prune
        return exe
    if os.path.lexists(final):
        _discard(final)  # planted, tampered with, or from before hashes were recorded
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=root))
    reaper.remove(tmp)
    try:
        _compile(simulator, params, tmp, timeout_s, top)
        try:
            tmp.rename(final)
        except OSError:  # another process made the same build first (checked below)
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _prune(root)
    return exe if trusted(exe) else None


@contextlib.contextmanager
def built(simulator: str, params: dict[str, int], *, timeout_s: float = 600,
          reaper: Reaper | None = None, top: str = "nm_tb") -> Iterator[Path]:
    """The simulator executable for these sizes (of testbench `top`, see TOPS), for the
    duration of the block.

    A trusted cached build when there is a private cache (built and cached now if missing or
    untrusted); otherwise one built in a private temporary folder, removed after the block.
    """
    if simulator not in SIMULATORS:
        raise NmcompileError(f"unknown simulator {simulator!r}; choose one of {SIMULATORS}")
    with contextlib.ExitStack() as stack:
        if reaper is None:
            reaper = stack.enter_context(Reaper())
        root = cache_root()
        exe = (_cached(simulator, params, root, timeout_s, reaper, top) if root is not None
               else None)
        if exe is not None:
            yield exe
            return
        tmp = Path(tempfile.mkdtemp(prefix="nmcompile-build-"))
        reaper.remove(tmp)
        try:
            yield _compile(simulator, params, tmp, timeout_s, top)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


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
             samples: int, steps: int, *, trace: bool, timeout_s: float,
             reaper: Reaper | None = None, stimulus=None, parse=None):
    """Run one testbench invocation for the whole batch in a temporary folder, which
    `reaper` (one of our own by default) removes if we die during the run. `stimulus(path)`
    and `parse(text)` replace the single core's stim.txt writer and resp.txt parser (the
    mesh's testbench)."""
    with contextlib.ExitStack() as stack:
        if reaper is None:
            reaper = stack.enter_context(Reaper())
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="nmcompile-sim-")))
        reaper.remove(work)
        write_memories(work / "mem")
        if stimulus is None:
            write_stimulus(work / "stim.txt", events_per_step, samples, steps, trace)
        else:
            stimulus(work / "stim.txt")
        cmd = [find_tool("vvp"), "-n", str(exe)] if simulator == "icarus" else [str(exe)]
        run_tool(cmd, work, timeout_s, simulator)
        text = (work / "resp.txt").read_text()
        return parse(text) if parse else parse_response(text, samples * steps)
