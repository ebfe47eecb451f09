"""Catalogues of TOML files (energy devices, chips): one file per entry, found by its name
over search folders (the call's `paths`, then those of an environment variable, separated by
the OS path separator, then the built-in folder; first match wins), or named by its path."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from .errors import FormatError, NmcompileError

T = TypeVar("T")


def read_toml(path: str | Path, what: str) -> dict[str, Any]:
    """The parsed file; a `FormatError` naming `what` ("device", "chip") when it is not."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise FormatError(f"cannot read {what} file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise FormatError(f"{what} file {path} is not valid TOML: {exc}") from None


def search_paths(env: str, builtin: Path, paths: Iterable[str | Path] = ()) -> list[Path]:
    """`paths`, then the folders in $`env`, then `builtin`."""
    extra = [p for p in os.environ.get(env, "").split(os.pathsep) if p]
    return [Path(p) for p in [*paths, *extra]] + [builtin]


def available(read: Callable[[Path], Any], env: str, builtin: Path,
              paths: Iterable[str | Path] = ()) -> dict[str, Path]:
    """Entry name (`read(file).name`) -> its file, over the search paths."""
    found: dict[str, Path] = {}
    for folder in search_paths(env, builtin, paths):
        if folder.is_dir():
            for f in sorted(folder.glob("*.toml")):
                found.setdefault(read(f).name, f)
    return found


def find(name: str, read: Callable[[Path], T], env: str, builtin: Path,
         paths: Iterable[str | Path], what: str, docs: str) -> T:
    """The entry called `name`, or the file `name` names (a `.toml` name or a path)."""
    if name.endswith(".toml") or os.sep in name:
        return read(Path(name))
    found = available(read, env, builtin, paths)
    if name not in found:
        raise NmcompileError(f"unknown {what} {name!r}; known: {', '.join(sorted(found))}. "
                             f"Add one as a TOML file (see {docs})")
    return read(found[name])
