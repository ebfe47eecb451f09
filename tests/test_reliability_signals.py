"""Issue 12, defects 4 and 5: clean-up on every signal, and no executable from the cache that
we did not build.

Signals: a child Python process (the "parent" of the run) runs the CLI or the API on a network
long enough to be mid-run; it is sent SIGTERM, SIGHUP or SIGKILL; within seconds no process of
its tree (Lava worker and children, vvp, the reaper) may be alive, no new /dev/shm segment may
be left unmapped, and its private TMPDIR may hold no scratch folder. The child's processes are
found by a unique environment variable, which every process it starts inherits.

Cache: the HDL build cache is created 0700, a cache writable by others is not used, and a
cached simulator whose hash does not match is not run.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from random_graphs import dense_graph, spikes

import nmcompile
from backends.hdl import simulate as hdl_sim
from backends.hdl.runner import run_hdl
from nmcompile.ir import Graph
from nmcompile.procs import Reaper, Terminated, signals_raise

REPO = Path(__file__).resolve().parents[1]
SCRATCH = ("nmcompile-lava-", "nmcompile-sim-", "nmcompile-build-")

API_CHILD = textwrap.dedent("""
    import sys
    import numpy as np
    import nmcompile
    nmcompile.run(nmcompile.load(sys.argv[1]), np.load(sys.argv[2]), backend=sys.argv[3])
""")
CLI_CHILD = "import sys\nfrom nmcompile.cli import main\nsys.exit(main(sys.argv[1:]))\n"


def _tree(marker: bytes) -> dict[int, str]:
    """Live (non-zombie) processes whose environment holds `marker`: pid -> command name."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if marker not in f.read().split(b"\0"):
                    continue
            with open(f"/proc/{entry}/stat") as f:
                stat_line = f.read()
        except OSError:
            continue
        if stat_line[stat_line.rindex(")") + 2] != "Z":
            found[int(entry)] = stat_line[stat_line.index("(") + 1:stat_line.rindex(")")]
    return found


def _mapped_shm() -> set[str]:
    """Every /dev/shm entry some live process maps (other test runs may be using theirs)."""
    from nmcompile._reaper import mapped_shm

    return {Path(p).name for p in mapped_shm([int(e) for e in os.listdir("/proc")
                                              if e.isdigit()])}


def _wait(condition, timeout_s: float) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def _private_cache(path: Path) -> Path:
    path.mkdir(mode=0o700, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """Files for the children: a network and inputs that run for minutes, and an HDL cache
    shared by this module's tests (so Icarus builds once)."""
    d = tmp_path_factory.mktemp("signals")
    nmcompile.save(dense_graph(64, 256, 32), d / "net.nmc")
    np.save(d / "long.npy", spikes(20000, 1, 64))
    return {"net": d / "net.nmc", "long": d / "long.npy", "cache": _private_cache(d / "cache")}


def _lava_running(tree: dict[int, str]) -> bool:
    """Lava has forked its processes and made its channels: they map /dev/shm segments."""
    from nmcompile._reaper import mapped_shm

    return bool(mapped_shm(list(tree)))


def _vvp_running(tree: dict[int, str]) -> bool:
    return "vvp" in tree.values()


def _run_and_signal(tmp_path: Path, models: dict[str, Path], code: str, args: list[str],
                    busy, sig: int) -> tuple[int, str]:
    """Start `code` with `args`; once `busy(tree)` holds, send `sig` to the child; check that
    its tree, its scratch folders and its segments are gone; return its status and stderr."""
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    name, value = "NMCOMPILE_SIGNAL_TEST", uuid.uuid4().hex
    marker = f"{name}={value}".encode()
    env = dict(os.environ, TMPDIR=str(tmpdir), NMCOMPILE_CACHE=str(models["cache"]),
               PYTHONPATH=str(REPO), **{name: value})
    shm_before = set(os.listdir("/dev/shm"))
    with open(tmp_path / "stderr", "wb") as err:
        child = subprocess.Popen([sys.executable, "-c", code, *args], cwd=REPO, env=env,
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=err, start_new_session=True)
    try:
        started = _wait(lambda: busy(_tree(marker)) or child.poll() is not None, 60)
        assert started and child.poll() is None, (tmp_path / "stderr").read_text()
        time.sleep(0.3)  # well inside the run
        child.send_signal(sig)
        status = child.wait(timeout=30)
        assert _wait(lambda: not _tree(marker), 15), f"processes survived: {_tree(marker)}"
        assert _wait(lambda: not [p for p in tmpdir.iterdir() if p.name.startswith(SCRATCH)],
                     5), f"scratch survived: {sorted(os.listdir(tmpdir))}"
        leaked = {n.removesuffix(" (deleted)") for n in set(os.listdir("/dev/shm"))
                  - shm_before} - _mapped_shm()
        assert not leaked, f"shared memory survived: {sorted(leaked)}"
        return status, (tmp_path / "stderr").read_text()
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
        for pid in _tree(marker):  # only after a failure above
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


# -- defect 4: every signal cleans up ------------------------------------------------------


def _cli_run(models: dict[str, Path], backend: str) -> list[str]:
    return ["run", str(models["net"]), "--input", str(models["long"]), "--backend", backend]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_lava_run_whose_parent_is_signalled_leaves_no_worker_segment_or_scratch(
        tmp_path, models, sig) -> None:
    # SIGTERM: the CLI raises Terminated and the session's finally kills the worker group
    # (exit 143). SIGKILL: the worker dies with its parent, and the reaper kills the Lava
    # children, unlinks their segments and removes the scratch folder.
    status, err = _run_and_signal(tmp_path, models, CLI_CHILD, _cli_run(models, "lava"),
                                  _lava_running, sig)
    if sig == signal.SIGTERM:
        assert status == 128 + signal.SIGTERM and "terminated by SIGTERM" in err, err
    else:
        assert status == -signal.SIGKILL


@pytest.mark.parametrize("how", ["cli-SIGHUP", "cli-SIGKILL", "api-SIGTERM"])
def test_a_verilog_simulation_whose_parent_is_signalled_leaves_no_vvp_or_scratch(
        tmp_path, models, how) -> None:
    # The API installs no handler: SIGTERM kills the parent as the application asked, vvp
    # dies with it (PR_SET_PDEATHSIG) and the reaper removes nmcompile-sim-*.
    kind, name = how.split("-")
    sig = getattr(signal, name)
    if kind == "cli":
        code, args = CLI_CHILD, _cli_run(models, "verilog")
    else:
        code, args = API_CHILD, [str(models["net"]), str(models["long"]), "verilog"]
    status, err = _run_and_signal(tmp_path, models, code, args, _vvp_running, sig)
    if how == "cli-SIGHUP":
        assert status == 128 + signal.SIGHUP and "terminated by SIGHUP" in err, err
    else:
        assert status == -sig


def test_signals_raise_turns_sigterm_into_terminated_and_restores_the_handler() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated) as info, signals_raise():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler interrupts this at once
    assert info.value.signum == signal.SIGTERM
    assert isinstance(info.value, KeyboardInterrupt)  # so ^C's clean-up paths run for it
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_reaper_left_by_an_exception_redoes_the_clean_up_it_may_have_cut_short(
        tmp_path) -> None:
    # A signal's Terminated can land inside our own `finally` (say while it waits for the
    # worker group to exit) and skip the rest of it: the reaper must not be stood down then.
    scratch = tmp_path / "nmcompile-lava-x"
    scratch.mkdir()
    (scratch / "job0.npz").write_bytes(b"")
    with pytest.raises(Terminated), Reaper() as reaper:
        reaper.remove(scratch)
        raise Terminated(signal.SIGTERM)  # before our clean-up removed `scratch`
    assert not scratch.exists()
    kept = tmp_path / "kept"
    kept.mkdir()
    with Reaper() as reaper:  # a normal exit: our clean-up ran, the reaper touches nothing
        reaper.remove(kept)
    assert kept.exists()


# -- defect 5: the HDL cache runs only what we built ----------------------------------------


@pytest.fixture
def private_tmp(tmp_path, monkeypatch) -> Path:
    """A private TMPDIR, no NMCOMPILE_CACHE, XDG_CACHE_HOME in tmp_path."""
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmpdir))
    monkeypatch.delenv("NMCOMPILE_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmpdir


def _small() -> tuple[Graph, np.ndarray]:
    return dense_graph(8, 16, 4), spikes(10, 2, 8)


def _check(run) -> None:
    g, x = _small()
    expected = nmcompile.run(g, x)  # the emulator
    for name, out in expected.outputs.items():
        assert np.array_equal(run.result.outputs[name], out)


def _plant(root: Path, params: dict[str, int]) -> Path:
    """A garbage `sim.vvp` at the key a build of `params` looks for: vvp fails on it."""
    entry = root / f"icarus-{hdl_sim.build_key('icarus', params)}"
    entry.mkdir(parents=True)
    (entry / "sim.vvp").write_text("planted: not a vvp program\n")
    return entry / "sim.vvp"


def _params(models: dict[str, Path], monkeypatch) -> dict[str, int]:
    """The sizes `_small` builds with, from a run on the module's shared private cache."""
    monkeypatch.setenv("NMCOMPILE_CACHE", str(models["cache"]))
    params = run_hdl(*_small()).params
    monkeypatch.delenv("NMCOMPILE_CACHE")
    return params


def test_the_cache_is_created_0700_and_a_build_records_its_hash(tmp_path, private_tmp) -> None:
    run = run_hdl(*_small())
    _check(run)
    base = tmp_path / "xdg" / "nmcompile"
    assert stat.S_IMODE(base.stat().st_mode) == 0o700
    assert stat.S_IMODE((base / "hdl").stat().st_mode) == 0o700
    (entry,) = (base / "hdl").iterdir()
    digest = hashlib.sha256((entry / "sim.vvp").read_bytes()).hexdigest()
    assert (entry / "sha256").read_text().strip() == digest
    assert os.listdir(private_tmp) == []  # the simulation's scratch is gone


def test_a_cached_simulator_whose_hash_does_not_match_is_rebuilt_not_run(
        tmp_path, private_tmp, monkeypatch) -> None:
    monkeypatch.setenv("NMCOMPILE_CACHE", str(tmp_path / "cache"))
    run_hdl(*_small())
    (entry,) = (tmp_path / "cache" / "hdl").iterdir()
    (entry / "sim.vvp").write_text("tampered: not a vvp program\n")
    _check(run_hdl(*_small()))  # would fail running the tampered file
    digest = hashlib.sha256((entry / "sim.vvp").read_bytes()).hexdigest()
    assert (entry / "sha256").read_text().strip() == digest  # rebuilt in place


def test_a_cache_writable_by_others_is_not_used(tmp_path, private_tmp, models,
                                                monkeypatch) -> None:
    params = _params(models, monkeypatch)
    shared = tmp_path / "shared"
    planted = _plant(shared / "hdl", params)
    for folder in (shared, shared / "hdl"):
        folder.chmod(0o777)  # as a fixed folder in /tmp would be
    monkeypatch.setenv("NMCOMPILE_CACHE", str(shared))
    _check(run_hdl(*_small()))  # built privately: the planted file would fail
    assert hdl_sim.cache_root() is None
    assert planted.read_text().startswith("planted")  # not ours to touch
    assert os.listdir(private_tmp) == []  # the private build is removed


def test_without_a_cache_nothing_in_the_temporary_directory_is_run(tmp_path, private_tmp,
                                                                   models, monkeypatch) -> None:
    # The old fallback: $TMPDIR/nmcompile-hdl-cache, a fixed name anyone can create first.
    params = _params(models, monkeypatch)
    planted = _plant(private_tmp / "nmcompile-hdl-cache", params)
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("NMCOMPILE_CACHE", str(tmp_path / "file" / "cache"))  # cannot exist
    _check(run_hdl(*_small()))
    assert hdl_sim.cache_root() is None
    assert planted.read_text().startswith("planted")
    assert os.listdir(private_tmp) == ["nmcompile-hdl-cache"]  # the private build is gone
