"""The reaper: a tiny process that cleans up after a parent that died without doing so.

Started by `nmcompile.procs.Reaper` as `python -I -S _reaper.py` (standard library only, so
it starts in ~30 ms and imports nothing of nmcompile's), in a session of its own so that a
signal sent to the parent's process group does not reach it. It reads one JSON message per
line on stdin:

    ["rm", PATH]   remove this file or folder tree if the parent dies
    ["pg", PGID]   kill this process group, and unlink the /dev/shm segments its processes
                   map, if the parent dies
    ["done"]       the parent cleaned up itself: exit without doing anything

End of file without "done" means the parent is gone (exit, SIGTERM, SIGKILL: the kernel
closes its end of the pipe in every case), so the reaper does what it was told and exits.
`nmcompile.procs` and `backends.lava.isolation` import `group` and `mapped_shm` from here.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import time

KILL_WAIT_S = 5.0  # for a killed group to disappear before its segments are unlinked


def group(pgid: int) -> list[int]:
    """Pids of live processes in process group `pgid` (zombies excluded)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
        if fields[0] != "Z" and int(fields[2]) == pgid:
            found.append(int(entry))
    return found


def mapped_shm(pids: list[int]) -> set[str]:
    """The /dev/shm paths that these processes have mapped (Lava maps every segment it uses)."""
    names = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/maps") as f:
                for line in f:
                    path = line.rstrip("\n").split(maxsplit=5)[-1]
                    if path.startswith("/dev/shm/"):
                        names.add(path.removesuffix(" (deleted)"))
        except OSError:
            continue
    return names


def kill_group(pgid: int) -> None:
    """SIGKILL the group (its members may be blocked on each other), then unlink its segments.

    The segments are read before the kill: afterwards nothing maps them any more.
    """
    pids = group(pgid)
    if not pids:
        return
    shm = mapped_shm(pids)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    end = time.monotonic() + KILL_WAIT_S
    while group(pgid) and time.monotonic() < end:
        time.sleep(0.02)
    for path in sorted(shm):
        with contextlib.suppress(OSError):
            os.unlink(path)


def remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            os.unlink(path)


def main() -> int:
    paths: list[str] = []
    groups: list[int] = []
    for line in sys.stdin.buffer:
        try:
            op, *args = json.loads(line)
        except ValueError:
            continue
        if op == "done":
            return 0
        if op == "rm":
            paths.append(str(args[0]))
        elif op == "pg":
            groups.append(int(args[0]))
    # End of file without "done": the parent died. Processes first (they write into the
    # scratch folders), then the folders.
    for pgid in groups:
        kill_group(pgid)
    for path in paths:
        remove(path)
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's ^C is the parent's business
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # and so is its hang-up
    sys.exit(main())
