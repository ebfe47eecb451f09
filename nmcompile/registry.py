"""Targets by name. A backend is a module (or object) that follows `contract.Backend`
(docs/backends.md); nmcompile finds it here, so adding a target touches one folder.

Built-in targets are listed in `BUILTIN` as module paths and imported on first use; other
packages add theirs through the `nmcompile.backends` entry-point group, or at run time with
`register_backend`. Every one is checked against the contract before it is used.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from .contract import Backend, conformance
from .errors import NmcompileError

#: Built-in backends: name -> module path. Each later target adds its line here. `float`, the
#: float interpreter, is the one that reads the float IR (DESIGN.md).
BUILTIN: dict[str, str] = {"float": "nmcompile.ir.interpret", "emulator": "backends.emulator",
                           "lava": "backends.lava", "verilog": "backends.hdl"}

_loaded: dict[str, Backend] = {}


def _conforming(name: str, backend: Any) -> Backend:
    problems = conformance(backend, name)
    if problems:
        raise NmcompileError(f"backend {name!r} does not follow nmcompile.contract.Backend: "
                             f"{'; '.join(problems)} (see docs/backends.md)")
    return backend


def register_backend(name: str, backend: Any) -> None:
    """Register a backend object (or module) under `name`, replacing any earlier one; it must
    follow `contract.Backend` (checked here)."""
    _loaded[name] = _conforming(name, backend)


def unregister_backend(name: str) -> None:
    """Forget a backend registered with `register_backend` (a built-in one is loaded again
    on its next use)."""
    _loaded.pop(name, None)


@contextmanager
def registered(name: str, backend: Any) -> Iterator[Backend]:
    """`register_backend` for the length of a `with` block, then `unregister_backend`."""
    register_backend(name, backend)
    try:
        yield backend
    finally:
        unregister_backend(name)


def available() -> list[str]:
    """Every backend's name: the built-in ones in `BUILTIN` order, then the others sorted."""
    names = set(_loaded) | {ep.name for ep in entry_points(group="nmcompile.backends")}
    return [*BUILTIN, *sorted(names - set(BUILTIN))]


def _check_backends_package() -> None:
    """The built-in targets live in the top-level package `backends`, beside `nmcompile`. A
    user's own folder of that name (common in ML projects) earlier on `sys.path`, the current
    directory above all, would shadow it: name what happened instead of failing somewhere
    inside the wrong package."""
    ours = (Path(__file__).resolve().parent.parent / "backends").resolve()
    spec = importlib.util.find_spec("backends")
    found = [Path(p).resolve() for p in (spec.submodule_search_locations or [])] if spec else []
    if ours not in found:
        where = ", ".join(map(str, found)) or (spec.origin if spec else "nowhere")
        raise NmcompileError(f"the module name 'backends' resolves to {where}, not to "
                             f"nmcompile's own targets in {ours}: a folder or module named "
                             f"'backends' earlier on sys.path (often the current directory) "
                             f"shadows it; rename it, or run from another directory")


def get_backend(name: str) -> Backend:
    """The backend registered as `name`, imported on first use."""
    if name in _loaded:
        return _loaded[name]
    if name in BUILTIN:
        if BUILTIN[name].startswith("backends."):
            _check_backends_package()
        backend = importlib.import_module(BUILTIN[name])
    else:
        found = [ep for ep in entry_points(group="nmcompile.backends") if ep.name == name]
        if not found:
            raise NmcompileError(f"unknown backend {name!r}; available: "
                                 f"{', '.join(available())}")
        backend = found[0].load()
    _loaded[name] = _conforming(name, backend)
    return backend
