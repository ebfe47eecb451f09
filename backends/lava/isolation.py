"""Lava in isolation: every run in a fresh worker interpreter, under a deadline, leaving no
process and no shared-memory segment behind, whatever fails.

Two layers, one module (the one place that starts, waits for and kills Lava's processes):

**In the caller** (`run_jobs`). The caller (which may have imported PyTorch: a model was just
trained) never forks Lava. It writes each job as plain arrays to a scratch folder, starts
`python -m backends.lava.worker SCRATCH` in a new session (its own process group, so every
Lava child it forks can be found and killed together), waits until an absolute deadline, and
reads the results back. Clean-up does not trust the worker: after it exits, or when the
deadline passes, every process still in its group is killed, and every `/dev/shm` segment
those processes had mapped is unlinked. (Lava's shared-memory server and its model processes
map every segment of a run.) Finding segments through the group's own mappings, not by
comparing `/dev/shm` before and after, leaves other programs' segments alone. If the caller
dies first (SIGTERM with no handler, SIGKILL, a crash), a `Reaper` started before the scratch
folder does the same: it kills the worker's group, unlinks the segments it maps and removes
the scratch folder. The worker itself dies with the caller (`PR_SET_PDEATHSIG`).

**In the worker** (`run_guarded`, called by `backends.lava.worker`). Lava 0.10 runs every
process model in a forked OS process and connects them through shared memory owned by a
``multiprocessing`` ``SharedMemoryManager`` server (one more child process). When a process
model raises, Lava does not fail cleanly:

* if the failing model was supposed to send spikes that step, the models downstream wait for
  them forever, the runtime service waits for those models, and a blocking ``run()`` never
  returns;
* otherwise ``run()`` raises only ``RuntimeError: N Exception(s) occurred`` (the traceback
  goes to a logger at INFO level), and the runtime service has already exited, so a later
  ``stop()`` waits forever for its answer;
* ``Runtime.__del__`` and ``AbstractProcess.__del__`` call ``stop()``, so even dropping such a
  process can block the garbage collector;
* the forked children and the ``/dev/shm/psm_*`` segments outlive the hang.

:func:`run_guarded` therefore starts the run non-blocking and polls Lava's own control
channels against a wall-clock deadline, noticing a dead model process at once rather than at
the timeout. On failure it collects the tracebacks the children send back over their pipes,
terminates (then kills) the children the run started, shuts the shared-memory server down and
unlinks any segment of this run that is left, disarms the runtime's ``__del__``, and raises
:class:`LavaRunError` naming the process model that failed and why.

Both layers end processes the same way (`_escalate`: SIGTERM, up to `TERM_S`, then SIGKILL)
and unlink what is left of their segments the same way (`_unlink`). The worker side relies on
Lava 0.10 internals (``Runtime._messaging_infrastructure``, ``service_to_runtime``,
``SystemProcess``); the shim in :mod:`backends.lava.compat` pins the same version. Lava is
imported lazily, so importing this module does not import Lava.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from backends.lava import compat
from nmcompile._reaper import group as _group
from nmcompile._reaper import mapped_shm as _mapped_shm
from nmcompile.errors import NmcompileError
from nmcompile.procs import Reaper

if TYPE_CHECKING:
    from lava.magma.core.process.process import AbstractProcess
    from lava.magma.core.run_configs import RunConfig

__all__ = ["LavaCleanupWarning", "LavaRunError", "run_guarded", "run_jobs"]

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]  # the folder holding `backends` and `nmcompile`
GRACE_S = 10.0  # beyond the deadline, for the worker's own clean-up
GROUP_EXIT_S = 1.0  # for a finished worker's Lava children to exit by themselves
TERM_S = 2.0  # SIGTERM -> SIGKILL (a process group, a Lava child), and Lava's own shutdowns
_SHM_DIR = "/dev/shm"
_FAILURE_REPORT_GRACE_S = 1.0  # time for a failing child to send its traceback

#: The scratch folder of the latest session (its path is in every worker's command line).
last_scratch: str | None = None


class LavaRunError(NmcompileError, RuntimeError):
    """A guarded Lava run failed, ran past its deadline, or could not be started.

    ``failures`` holds one ``(who, traceback_text)`` pair per Lava child process that reported
    an exception; the message repeats the last line of each.
    """

    def __init__(self, message: str, failures: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.failures: list[tuple[str, str]] = failures or []


class LavaCleanupWarning(RuntimeWarning):
    """Lava's own ``stop()`` did not finish after a successful run; children were killed."""


# -- ending processes and segments: both layers ------------------------------------------


def _until(done: Callable[[], bool], timeout_s: float) -> bool:
    """Poll `done` for up to `timeout_s`; return its last answer."""
    end = time.monotonic() + timeout_s
    while not done() and time.monotonic() < end:
        time.sleep(0.02)
    return done()


def _escalate(send: Callable[[int], None], wait_gone: Callable[[float], bool]) -> None:
    """`send` SIGTERM, then SIGKILL, each followed by up to `TERM_S` of `wait_gone(timeout)`
    (True once the target is gone)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            send(sig)
        if wait_gone(TERM_S):
            return


def _unlink(paths: Iterable[str]) -> list[str]:
    """Unlink these shared-memory segments; return those that were still there."""
    unlinked = []
    for path in sorted(paths):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
            unlinked.append(path)
    return unlinked


def _kill_group(pgid: int, wait_s: float) -> list[str]:
    """Let process group `pgid` exit for `wait_s`, then end what is left and unlink the
    segments it had mapped; return what was killed."""
    _until(lambda: not _group(pgid), wait_s)
    pids = _group(pgid)
    if not pids:
        return []
    shm = _mapped_shm(pids)  # read before the kill: afterwards nothing maps them any more
    _escalate(lambda sig: os.killpg(pgid, sig),
              lambda timeout: _until(lambda: not _group(pgid), timeout))
    _unlink(shm)
    return [f"{len(pids)} worker process(es)", *sorted(shm)]


def _terminate(proc: multiprocessing.process.BaseProcess) -> bool:
    """End one multiprocessing child (SIGTERM, then SIGKILL) and reap it; return True if it
    was still alive.

    Joins through ``BaseProcess.join`` because Lava's ``SystemProcess.join`` takes no timeout.
    """
    join = multiprocessing.process.BaseProcess.join

    def gone(timeout: float) -> bool:
        join(proc, timeout)
        return not proc.is_alive()

    try:
        if not proc.is_alive():
            join(proc, 0)
            return False
        _escalate(lambda sig: os.kill(proc.pid, sig), gone)
    except ValueError:  # already closed, hence already joined
        return False
    return True


# -- the caller: a worker interpreter per call --------------------------------------------


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


def _stop_worker(proc: subprocess.Popen) -> list[str]:
    """The worker's clean-up, after it exited or at the deadline (safe to repeat): kill what
    is left of its process group (at once while the worker runs, else after `GROUP_EXIT_S`),
    unlink the segments they mapped, reap the worker; return what was killed."""
    killed = []
    if proc.poll() is None:
        killed = _kill_group(proc.pid, 0.0)
        proc.wait()
    return killed + _kill_group(proc.pid, GROUP_EXIT_S)


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
            killed = _stop_worker(proc)
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
            _stop_worker(proc)
        shutil.rmtree(scratch, ignore_errors=True)


# -- the worker: one guarded Lava run -------------------------------------------------------


@dataclass
class _Outcome:
    """What a call made in a guard thread did: finished, returned, or raised."""

    done: bool = False
    value: Any = None
    error: BaseException | None = None


def _call_with_timeout(fn: Callable[[], Any], timeout_s: float, name: str) -> _Outcome:
    """Call ``fn`` in a daemon thread and wait at most ``timeout_s``.

    A Lava call that hangs blocks on a semaphore or a queue and cannot be interrupted; the
    thread is left behind (it is a daemon, so it never delays interpreter exit) once the
    children it waits for have been killed.
    """
    out = _Outcome()

    def target() -> None:
        try:
            out.value = fn()
        except BaseException as exc:
            out.error = exc
        finally:
            out.done = True

    thread = threading.Thread(target=target, name=f"lava-guard-{name}", daemon=True)
    thread.start()
    thread.join(max(timeout_s, 0.0))
    return out


@dataclass
class _RunGuard:
    """Bookkeeping for one run: what existed before, what the run started."""

    process: AbstractProcess
    children_before: set[int] = field(default_factory=set)
    shm_names: set[str] = field(default_factory=set)

    def runtime(self) -> Any:
        return getattr(self.process, "runtime", None)

    def infrastructure(self) -> Any:
        return getattr(self.runtime(), "_messaging_infrastructure", None)

    def actors(self) -> list[Any]:
        infra = self.infrastructure()
        return list(getattr(infra, "actors", None) or [])

    def remember_shm(self) -> None:
        """Record the names of this run's shared-memory segments (before Lava forgets them)."""
        smm = getattr(self.infrastructure(), "smm", None)
        for handle in getattr(smm, "_shared_memory_handles", None) or []:
            name = getattr(handle, "name", None)
            if name:
                self.shm_names.add(name.lstrip("/"))

    def describe(self, actor: Any) -> str:
        """Name a Lava child process after the Lava process and model it runs.

        ``Process.start()`` drops the child's arguments in the parent, so the builder cannot be
        read off the child; Lava 0.10 forks one child per ``PyProcessBuilder`` in
        ``executable.proc_builders`` order, then one per runtime service, so use the order.
        """
        from lava.magma.compiler.builders.py_builder import PyProcessBuilder

        executable = getattr(self.runtime(), "_executable", None)
        names: list[str] = []
        for proc, builder in (getattr(executable, "proc_builders", None) or {}).items():
            if isinstance(builder, PyProcessBuilder):
                model = getattr(builder, "proc_model", None)
                names.append(
                    f"process {proc.name!r} ({type(proc).__name__}, model "
                    f"{getattr(model, '__name__', '?')})"
                )
        for builder in (getattr(executable, "runtime_service_builders", None) or {}).values():
            rs_class = getattr(builder, "rs_class", None)
            names.append(f"runtime service {getattr(rs_class, '__name__', '?')}")
        actors = self.actors()
        if len(names) == len(actors) and actor in actors:
            return names[actors.index(actor)]
        return f"Lava child {getattr(actor, 'name', '?')} (pid {getattr(actor, 'pid', '?')})"

    def dead_actors(self) -> list[Any]:
        """Model/service processes that exited; during a run that only happens on error."""
        return [a for a in self.actors() if _exitcode(a) is not None]

    def collect_failures(self, wait_s: float) -> list[tuple[str, str]]:
        """Gather the ``(exception, traceback)`` pairs children sent over their pipes.

        A failing model reports ERROR to the runtime service before it raises, so its traceback
        can arrive a moment after the failure is visible; wait up to ``wait_s`` for one.
        """
        deadline = time.monotonic() + wait_s
        failures: list[tuple[str, str]] = []
        while True:
            failures = []
            for actor in self.actors():
                report = _actor_exception(actor)
                if report is not None:
                    exc, tb = report
                    failures.append((self.describe(actor), tb or repr(exc)))
            crashed = any(_exitcode(a) not in (None, 0) for a in self.actors())
            if failures or crashed or time.monotonic() >= deadline:
                # A child that died by a signal or os._exit sends nothing; don't wait for it.
                return failures
            time.sleep(0.02)

    def kill_everything(self) -> list[str]:
        """Stop every child and segment this run created; return what needed force.

        Order matters: the model processes first (they may be blocked on each other), then
        the parent's port threads, then the shared-memory server (asked politely, so it
        unlinks its segments), then any multiprocessing child started during the run, then
        any of this run's segments still in /dev/shm.
        """
        forced: list[str] = []
        runtime = self.runtime()
        self.remember_shm()
        if runtime is not None:
            # Disarm Runtime.__del__ / AbstractProcess.__del__, which would call stop() and
            # block forever on a runtime service that is gone.
            runtime._is_running = False
            runtime._is_started = False
        for actor in self.actors():
            if _terminate(actor):
                forced.append(self.describe(actor))
        if runtime is not None:
            with contextlib.suppress(Exception):
                runtime.join()  # releases the semaphores the parent's port threads wait on
            infra = self.infrastructure()
            if infra is not None:
                _call_with_timeout(infra.stop, TERM_S, "smm-shutdown")
            watchdog = getattr(runtime, "_watchdog_manager", None)
            if watchdog is not None:
                _call_with_timeout(watchdog.stop, TERM_S, "watchdog-stop")
        for child in multiprocessing.active_children():
            if child.pid not in self.children_before and _terminate(child):
                forced.append(f"multiprocessing child {child.name} (pid {child.pid})")
        paths = [os.path.join(_SHM_DIR, name) for name in self.shm_names]
        forced += [f"shared memory {path}" for path in _unlink(paths)]
        return forced


def _exitcode(actor: Any) -> int | None:
    try:
        return actor.exitcode
    except ValueError:  # a closed multiprocessing.Process: it has been joined, so it exited
        return 0


def _actor_exception(actor: Any) -> tuple[BaseException, str] | None:
    """The ``(exception, traceback)`` a Lava ``SystemProcess`` sent back, if any."""
    try:
        report = actor.exception  # reads the child's pipe if something is waiting
    except (OSError, EOFError, ValueError):
        return None
    if isinstance(report, tuple) and len(report) == 2:
        return report[0], str(report[1])
    return None


def _run_status(guard: _RunGuard) -> str:
    """'running', 'done', or 'error', read from Lava's service->runtime channels.

    ``peek`` does not consume the message, so on 'done' Lava's own ``wait()`` can still read
    and acknowledge it (and stays in a consistent state for ``get``/``stop``).
    """
    from lava.magma.runtime.mgmt_token_enums import MGMT_RESPONSE, enum_equal

    ports = list(getattr(guard.runtime(), "service_to_runtime", None) or [])
    if not ports or not all(port.probe() for port in ports):
        return "error" if guard.dead_actors() else "running"
    for port in ports:
        if not enum_equal(port.peek(), MGMT_RESPONSE.DONE):
            return "error"
    return "done"


def _first_lines(failures: list[tuple[str, str]]) -> str:
    lines = []
    for who, tb in failures:
        last = tb.strip().splitlines()[-1] if tb.strip() else "(no traceback)"
        lines.append(f"{who} raised {last}")
    return "; ".join(lines)


def run_guarded(
    process: AbstractProcess,
    num_steps: int,
    run_cfg: RunConfig | None = None,
    read: Callable[[], T] | None = None,
    timeout_s: float = 60.0,
    stop_timeout_s: float = 10.0,
) -> T | None:
    """Run ``process`` (and every process connected to it) for ``num_steps`` steps.

    Then call ``read()`` while the runtime is still alive (``Var.get()`` needs it), stop the
    runtime, and return what ``read`` returned (``None`` without ``read``).

    ``run_cfg`` defaults to ``Loihi2SimCfg(select_tag="fixed_pt")``, the bit-accurate models.
    ``timeout_s`` bounds compile, run and read together; ``stop_timeout_s`` bounds Lava's
    ``stop()``. A process graph runs once: build a fresh one for every call.

    Raises :class:`LavaRunError` if compiling or starting fails, a process model raises, or
    the deadline passes; by then every child process the run started has been terminated and
    its shared memory unlinked. Exceptions raised by ``read`` itself propagate unchanged after
    a normal stop. If only Lava's ``stop()`` hangs after a successful run, the children are
    killed, a :class:`LavaCleanupWarning` is issued, and the result is still returned.
    """
    if num_steps < 1:
        raise LavaRunError(f"num_steps must be at least 1, got {num_steps}.")
    if getattr(process, "runtime", None) is not None:
        raise LavaRunError(
            f"Lava process {process.name!r} already has a runtime; a process graph can be run "
            "once by run_guarded: build a new graph for every run."
        )
    compat.import_lava()
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg

    if run_cfg is None:
        run_cfg = Loihi2SimCfg(select_tag="fixed_pt")
    what = f"Lava run of {type(process).__name__} {process.name!r} for {num_steps} steps"
    guard = _RunGuard(process, children_before={c.pid for c in multiprocessing.active_children()})
    deadline = time.monotonic() + timeout_s

    def fail(reason: str, cause: BaseException | None = None, crashed: bool = True) -> LavaRunError:
        """Collect the children's reports, clean up, and build the error to raise.

        ``crashed=False`` (a timeout with every child alive) skips waiting for tracebacks.
        """
        failures = guard.collect_failures(_FAILURE_REPORT_GRACE_S if crashed else 0.0)
        silent_deaths = [
            f"{guard.describe(a)} exited with code {_exitcode(a)}"
            for a in guard.dead_actors()
            if _exitcode(a) != 0
        ]
        forced = guard.kill_everything()
        message = f"{what} {reason}"
        if failures:
            message += f": {_first_lines(failures)}"
        elif silent_deaths:
            message += f": {'; '.join(silent_deaths)} without a traceback"
        elif cause is not None:
            message += f": {type(cause).__name__}: {cause}"
        if forced:
            message += f". Terminated: {', '.join(forced)}"
        error = LavaRunError(message + ".", failures)
        error.__cause__ = cause
        return error

    # 1. Compile, fork the children and send the step count, without blocking on the run.
    start = _call_with_timeout(
        lambda: process.run(
            condition=RunSteps(num_steps=num_steps, blocking=False), run_cfg=run_cfg
        ),
        timeout_s,
        "start",
    )
    if not start.done:
        raise fail(f"did not finish compiling and starting within {timeout_s:g} s", crashed=False)
    if start.error is not None:
        raise fail("failed to compile or start", start.error)
    guard.remember_shm()

    # 2. Poll the runtime services' answers until all say DONE, one says otherwise, a child
    #    dies, or the deadline passes.
    pause_s = 1e-4
    while True:
        status = _run_status(guard)
        if status == "done":
            break
        if status == "error":
            raise fail("failed")
        if time.monotonic() >= deadline:
            raise fail(
                f"did not finish within {timeout_s:g} s (a process model is blocked)",
                crashed=False,
            )
        time.sleep(pause_s)
        pause_s = min(pause_s * 2, 0.01)
    finish = _call_with_timeout(process.wait, max(deadline - time.monotonic(), 1.0), "wait")
    if not finish.done or finish.error is not None:
        raise fail("failed while finishing", finish.error)

    # 3. Read results while the runtime still holds the models' state.
    result: T | None = None
    read_error: BaseException | None = None
    if read is not None:
        got = _call_with_timeout(read, max(deadline - time.monotonic(), 1.0), "read")
        if not got.done:
            raise fail(f"did not return its results within {timeout_s:g} s", crashed=False)
        result, read_error = got.value, got.error

    # 4. Stop. A hang here after a good run loses nothing, so warn instead of raising.
    stop = _call_with_timeout(process.stop, stop_timeout_s, "stop")
    forced = guard.kill_everything()  # after a clean stop this finds nothing left
    if not stop.done or stop.error is not None or forced:
        if not stop.done:
            reason = f"did not return within {stop_timeout_s:g} s"
        elif stop.error is not None:
            reason = f"raised {stop.error!r}"
        else:
            reason = "returned but left processes or shared memory behind"
        warnings.warn(
            f"{what}: Lava's stop() {reason}; cleaned up: {', '.join(forced) or 'nothing'}.",
            LavaCleanupWarning,
            stacklevel=2,
        )
    if read_error is not None:
        raise read_error
    return result
