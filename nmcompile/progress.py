"""Progress bars for runs longer than a couple of seconds: tqdm on stderr, off with the CLI's
`--quiet` (`set_quiet`) or when stderr is not a terminal, so pipes and logs stay clean."""

from __future__ import annotations

import sys
from collections.abc import Iterable
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
