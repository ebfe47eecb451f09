"""What a Lava run may leave behind: child processes of the test process, read from /proc."""

from __future__ import annotations

import os


def children(with_state: bool = False) -> set:
    """Pids (or (pid, state) pairs) of this process's children, live or zombie."""
    me, found = os.getpid(), set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
        if int(fields[1]) == me:
            found.add((int(entry), fields[0]) if with_state else int(entry))
    return found
