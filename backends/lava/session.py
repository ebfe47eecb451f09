"""Run Lava jobs in a fresh worker interpreter, with a deadline, leaving nothing behind.

The parent (which may have imported PyTorch: a model was just trained) never forks Lava. It
writes each job as plain arrays to a scratch folder, starts `python -m backends.lava.worker`
in a new session (its own process group, so every Lava child it forks can be found and
killed together), waits until an absolute deadline, and reads the results back.

Clean-up does not trust the worker: after it exits, or when the deadline passes, every process
still in its group is killed, and every `/dev/shm` segment those processes had mapped is
unlinked. (Lava's shared-memory server and its model processes map every segment of a run.)
Finding segments through the group's own mappings, not by comparing `/dev/shm` before and
after, leaves other programs' segments alone.

If this process dies first (SIGTERM with no handler, SIGKILL, a crash), a `Reaper` started
before the scratch folder does the same: it kills the worker's group, unlinks the segments it
maps and removes the scratch folder. The worker itself dies with us (`PR_SET_PDEATHSIG`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nmcompile._reaper import group as _group
from nmcompile._reaper import mapped_shm as _mapped_shm
from nmcompile.procs import Reaper

from .runner import LavaRunError

ROOT = Path(__file__).resolve().parents[2]  # the folder holding `backends` and `nmcompile`
GRACE_S = 10.0  # beyond the deadline, for the worker's own clean-up
TERM_S = 2.0  # SIGTERM -> SIGKILL

#: The scratch folder of the latest session (its path is in every worker's command line).
last_scratch: str | None = None


def _clean_group(pgid: int, wait_s: float) -> list[str]:
    """Let the group exit for `wait_s`, then kill what is left and unlink its segments."""
    end = time.monotonic() + wait_s
    while (pids := _group(pgid)) and time.monotonic() < end:
        time.sleep(0.02)
    if not pids:
        return []
    shm = _mapped_shm(pids)
    for sig, pause in ((signal.SIGTERM, TERM_S), (signal.SIGKILL, TERM_S)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)
        end = time.monotonic() + pause
        while _group(pgid) and time.monotonic() < end:
            time.sleep(0.02)
        if not _group(pgid):
            break
    for path in sorted(shm):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    return [f"{len(pids)} worker process(es)", *sorted(shm)]


def run_jobs(jobs: Sequence[dict[str, np.ndarray]], timeout_s: float,
             groups: Sequence[Sequence[int]] | None = None) -> list[dict[str, np.ndarray]]:
    """Run each job (the arrays `worker.main` reads) in one worker; return its result arrays.

    `groups` lists the jobs that share one Lava run (default: one run per job).

    Raises `LavaRunError` when a job fails or the deadline (`timeout_s` from now, for
    everything: start-up, every run, reading back) passes; by then the worker and every
    process it started are gone and their shared memory is unlinked.
    """
    with Reaper() as reaper:
        return _run_jobs(jobs, timeout_s, groups, reaper)


def _run_jobs(jobs: Sequence[dict[str, np.ndarray]], timeout_s: float,
              groups: Sequence[Sequence[int]] | None,
              reaper: Reaper) -> list[dict[str, np.ndarray]]:
    global last_scratch
    deadline = time.time() + timeout_s
    scratch = Path(tempfile.mkdtemp(prefix="nmcompile-lava-"))
    reaper.remove(scratch)
    last_scratch = str(scratch)
    proc: subprocess.Popen | None = None
    try:
        for k, job in enumerate(jobs):
            np.savez(scratch / f"job{k}.npz", **job)
        groups = [list(g) for g in groups] if groups is not None else [[k] for k in
                                                                        range(len(jobs))]
        (scratch / "session.json").write_text(json.dumps(
            {"groups": groups, "timeout_s": max(deadline - time.time(), 1.0)}))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
        env["NMCOMPILE_PARENT_PID"] = str(os.getpid())  # the worker dies with us
        with open(scratch / "worker.log", "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "backends.lava.worker", str(scratch)], cwd=ROOT,
                env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        reaper.kill_group(proc.pid)  # its own session: pgid == pid
        try:
            code = proc.wait(timeout=max(deadline - time.time(), 0.0) + GRACE_S)
        except subprocess.TimeoutExpired:
            killed = _clean_group(proc.pid, 0.0)
            proc.wait()
            raise LavaRunError(
                f"the Lava worker did not finish within {timeout_s:g} s; killed "
                f"{', '.join(killed) or 'nothing'}") from None
        error = scratch / "error.json"
        if error.exists():
            report = json.loads(error.read_text())
            message = report["message"] if report["type"] == "LavaRunError" else \
                f"{report['type']}: {report['message']}"
            which = ", ".join(str(k + 1) for k in report["jobs"])
            raise LavaRunError(f"Lava job(s) {which} of {len(jobs)} failed: {message}",
                               [(who, text) for who, text in report["failures"]])
        if code != 0:
            tail = (scratch / "worker.log").read_text(errors="replace")[-2000:]
            raise LavaRunError(f"the Lava worker exited with code {code}: {tail}")
        results = []
        for k in range(len(jobs)):
            with np.load(scratch / f"result{k}.npz", allow_pickle=False) as data:
                results.append({key: data[key] for key in data.files})
        return results
    finally:
        if proc is not None:
            if proc.poll() is None:
                _clean_group(proc.pid, 0.0)
                proc.wait()
            _clean_group(proc.pid, 1.0)
        shutil.rmtree(scratch, ignore_errors=True)
