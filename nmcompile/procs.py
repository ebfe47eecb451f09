"""Clean-up on every signal: signals as exceptions, children that die with us, a reaper.

Three layers, because no one of them covers every way a run ends:

* `signals_raise()` turns SIGTERM and SIGHUP (what `timeout`, `kill` and CI cancellation send)
  into a `Terminated` exception in the main thread, so the `finally` blocks that already clean
  up after SIGINT run for them too. The CLI installs it for the whole command; a library does
  not change the application's signal handlers, so the API relies on the next two layers.
* `die_with_parent` (a `preexec_fn`) makes a simulator child receive SIGKILL when the thread
  that started it dies (Linux `PR_SET_PDEATHSIG`; note: the parent *thread*, so start such
  children from the thread that waits for them, as `subprocess.run` does).
* `Reaper` starts a tiny watcher process (`nmcompile/_reaper.py`) that holds the read end of a
  pipe from us. When we die in any way, SIGKILL included, the kernel closes the pipe and the
  reaper kills the process groups and removes the scratch folders we registered with it.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

__all__ = ["Reaper", "Terminated", "die_with_parent", "preexec", "signals_raise"]

#: The signals that `signals_raise` turns into `Terminated` (SIGINT is Python's own).
TERMINATING = (signal.SIGTERM, signal.SIGHUP)
_PR_SET_PDEATHSIG = 1
_REAPER = Path(__file__).with_name("_reaper.py")


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived; raised like `KeyboardInterrupt` so that clean-up runs.

    A `KeyboardInterrupt` subclass: code that already cleans up after ^C (every `finally`,
    and `except KeyboardInterrupt`) handles it the same way; `signum` gives the exit status
    `128 + signum`.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(f"terminated by {signal.Signals(signum).name}")
        self.signum = signum


@contextlib.contextmanager
def signals_raise(signals: tuple[int, ...] = TERMINATING) -> Iterator[None]:
    """Within the block, the first of `signals` raises `Terminated` in the main thread.

    Later ones are ignored until the block ends, so a second SIGTERM cannot interrupt the
    clean-up the first one started. A signal the application ignores (SIG_IGN, e.g. SIGHUP
    under `nohup`) stays ignored. Outside the main thread nothing is installed (Python runs
    handlers only there). The previous handlers are restored on exit.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired = False

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal fired
        if not fired:
            fired = True
            raise Terminated(signum)

    previous = {}
    for sig in signals:
        old = signal.getsignal(sig)
        if old is not signal.SIG_IGN:
            previous[sig] = old
            signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)


def _load_prctl():
    """libc's prctl, resolved in the parent: the child between fork and exec only calls it."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                      ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl


_prctl = _load_prctl()


def die_with_parent(parent: int | None = None) -> None:
    """Receive SIGKILL when the parent (thread) dies: call it first thing in a worker, or in
    a child between fork and exec (`preexec_fn=preexec()`). A no-op where
    `PR_SET_PDEATHSIG` does not exist (the reaper still covers that case).

    `parent`: the pid the parent had. If it died before the call took effect, our parent is
    already someone else (init or a subreaper) and no signal would come: die at once.
    """
    if _prctl is None:
        return
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if parent is not None and os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGKILL)


def preexec() -> Callable[[], None]:
    """A `preexec_fn` that makes the child die with this process (see `die_with_parent`)."""
    return functools.partial(die_with_parent, os.getpid())


class Reaper:
    """A watcher process that cleans up what we registered if we die before we do.

    Use it as a context manager around the work; register each scratch path (`remove`)
    before anything is written to it and each child process group (`kill_group`) as soon as
    it exists. Leaving the block normally means our own `finally` blocks did the clean-up:
    the reaper is told so and exits; leaving it by an exception, it redoes that clean-up (an
    exception may have cut ours short). Costs one `python -I -S` start
    (~30 ms); if it cannot be started the work goes on without it.
    """

    def __init__(self) -> None:
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> Reaper:
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-I", "-S", str(_REAPER)], stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        except OSError:
            self._proc = None
        return self

    def _send(self, *message: object) -> None:
        with self._lock:
            if self._proc is None or self._proc.stdin is None:
                return
            try:
                self._proc.stdin.write(json.dumps(message).encode() + b"\n")
                self._proc.stdin.flush()
            except OSError:  # the reaper died: nothing more it can do for us
                self._proc.stdin = None

    def remove(self, path: str | os.PathLike) -> None:
        """Remove `path` (file or folder tree) if we die."""
        self._send("rm", os.fspath(path))

    def kill_group(self, pgid: int) -> None:
        """SIGKILL process group `pgid` and unlink the segments it maps, if we die."""
        self._send("pg", pgid)

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(OSError):
            if proc.stdin is not None:
                # Stand the reaper down only after a normal exit. An exception (a signal's
                # Terminated above all) may have cut our own clean-up short, e.g. landing in a
                # `finally` that was waiting for a group to exit: then closing without "done"
                # lets the reaper redo it (removing what is already gone is a no-op).
                if exc_type is None:
                    proc.stdin.write(b'["done"]\n')
                proc.stdin.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
