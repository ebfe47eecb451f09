"""One memory budget for every stage: what a fold, a file, a run or a trace may plan to hold
before nmcompile refuses it (`LimitError`), checked before anything is allocated.

The budget is a fixed number, not what happens to be free (so a test or a CI job does not
pass or fail with the machine's load): 8 GiB or half the machine's total memory, whichever
is smaller. `NMCOMPILE_MAX_BYTES` (bytes; suffixes K, M, G, T allowed) overrides it for a
process, `max_bytes=` for one call (`within(max_bytes)` for every check inside a block: a
run, whose checks sit in the backends, takes it so).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator

from .errors import LimitError

DEFAULT_BYTES = 8 << 30
ENV = "NMCOMPILE_MAX_BYTES"
_CALL: contextvars.ContextVar[int | None] = contextvars.ContextVar("max_bytes", default=None)
_SUFFIX = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def total_memory() -> int:
    """The machine's physical memory in bytes (0 where the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def parse_bytes(text: str, where: str = ENV) -> int:
    """`4294967296`, `4G`, `512M`: a positive number of bytes."""
    value = str(text).strip().upper().removesuffix("IB").removesuffix("B")
    number, unit = (value[:-1], value[-1]) if value[-1:] in _SUFFIX else (value, "")
    try:
        size = int(float(number) * _SUFFIX[unit])
    except ValueError:
        raise LimitError(f"{where}={text!r} is not a number of bytes (e.g. 4G)") from None
    if size < 1:
        raise LimitError(f"{where}={text!r}: the budget must be at least one byte")
    return size


def budget(max_bytes: int | str | None = None) -> int:
    """The memory budget in bytes: `max_bytes` if given, else that of the enclosing `within`,
    else `NMCOMPILE_MAX_BYTES`, else the smaller of 8 GiB and half the machine's memory."""
    if max_bytes is not None:
        return parse_bytes(str(max_bytes), "max_bytes")
    if (call := _CALL.get()) is not None:
        return call
    if os.environ.get(ENV):
        return parse_bytes(os.environ[ENV])
    half = total_memory() // 2
    return min(DEFAULT_BYTES, half) if half else DEFAULT_BYTES


@contextlib.contextmanager
def within(max_bytes: int | str | None) -> Iterator[None]:
    """Every budget check inside the block uses `max_bytes` (None: the usual budget)."""
    token = _CALL.set(None if max_bytes is None else budget(max_bytes))
    try:
        yield
    finally:
        _CALL.reset(token)


def size_text(nbytes: float) -> str:
    for unit, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if nbytes >= scale:
            return f"{nbytes / scale:,.1f} {unit}"
    return f"{int(nbytes):,} bytes"


def check_bytes(nbytes: int, what: str, max_bytes: int | str | None = None,
                fix: str = "make the layer smaller") -> None:
    """Refuse (`LimitError`) a step that would hold `nbytes`: `what` names the step and its
    layer ("folding 'pool' -> 'fc' into an 11 x 524288 matrix"), the message the override
    and `fix`."""
    limit = budget(max_bytes)
    if nbytes > limit:
        raise LimitError(f"{what} would take {size_text(nbytes)} ({nbytes:,} bytes), more "
                         f"than the memory budget "
                         f"of {size_text(limit)}; {fix}, or raise the budget with "
                         f"{ENV}=BYTES (e.g. 32G) or max_bytes=")
