"""Progress bars for runs longer than a couple of seconds: tqdm on stderr, off with the CLI's
`--quiet` (`set_quiet`) or when stderr is not a terminal, so pipes and logs stay clean."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")
_quiet = False


def set_quiet(quiet: bool) -> None:
    global _quiet
    _quiet = bool(quiet)


def enabled() -> bool:
    return not _quiet and sys.stderr.isatty()


def bar(iterable: Iterable[T], desc: str, **options: Any) -> Iterable[T]:
    """`iterable`, with a bar named `desc` when bars are enabled."""
    if not enabled():
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, file=sys.stderr, **{"leave": False, **options})


@contextmanager
def busy(desc: str, after: float = 2.0, every: float = 0.5) -> Iterator[None]:
    """Around one long call that has no steps to count (a Lava or Verilog run, a synthesis):
    when bars are enabled and the call takes longer than `after` seconds, a line on stderr
    shows `desc` and the time elapsed, refreshed every `every` seconds, removed at the end."""
    if not enabled():
        yield
        return
    import threading

    from tqdm import tqdm

    done = threading.Event()

    def show() -> None:
        if done.wait(after):
            return
        line = tqdm(desc=desc, file=sys.stderr, leave=False, bar_format="{desc}: {elapsed}")
        while not done.wait(every):
            line.refresh()
        line.close()

    thread = threading.Thread(target=show, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
