"""Unique names: `base` if it is free, else `base` numbered (`base_2`, `base#2`, ...).

One home for the numbering every naming site uses (graph builders, the NIR reader, Lava
process names, Verilog identifiers). Each caller keeps its own scheme through `sep` (what
joins the number) and `first` (the first number tried), so the names it makes do not change.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable


def unique_name(base: str, taken: Container[str], *, sep: str = "_", first: int = 2) -> str:
    """`base` if it is not in `taken`, else the first of `base{sep}{first}`,
    `base{sep}{first + 1}`, ... that is not. `taken` is anything supporting `in` (a set, a
    `Graph`, a `UniqueNames`); nothing is added to it."""
    name, k = base, first
    while name in taken:
        name, k = f"{base}{sep}{k}", k + 1
    return name


class UniqueNames:
    """A growing set of names that hands out unique ones: `names(base)` returns
    `unique_name(base, names, sep=sep, first=first)` and takes it.

    `key`: names collide when their keys are equal (`str.lower`: ignoring case). `reserved`:
    names never handed out (compared as they are, not by key)."""

    def __init__(self, taken: Iterable[str] = (), *, sep: str = "_", first: int = 2,
                 key: Callable[[str], str] | None = None,
                 reserved: Container[str] = frozenset()) -> None:
        self.sep, self.first, self.key, self.reserved = sep, first, key, reserved
        self.used: set[str] = set()
        for name in taken:
            self.add(name)

    def _key(self, name: str) -> str:
        return name if self.key is None else self.key(name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (self._key(name) in self.used
                                          or name in self.reserved)

    def add(self, name: str) -> None:
        """Take `name` as it is (it may already be taken)."""
        self.used.add(self._key(name))

    def __call__(self, base: str) -> str:
        name = unique_name(base, self, sep=self.sep, first=self.first)
        self.add(name)
        return name
