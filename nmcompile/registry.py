"""Targets by name. A backend is a module (or object) with `capabilities`, `run` and `compile`
(see DESIGN.md); nmcompile finds it here, so adding a target touches one folder.

Built-in targets are listed in `BUILTIN` as module paths and imported on first use; other
packages add theirs through the `nmcompile.backends` entry-point group.
"""

from __future__ import annotations

import importlib
import importlib.util
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from .errors import NmcompileError

#: Built-in backends: name -> module path. Each later target adds its line here.
BUILTIN: dict[str, str] = {"emulator": "backends.emulator", "lava": "backends.lava",
                           "verilog": "backends.hdl"}

_loaded: dict[str, Any] = {}


def register_backend(name: str, backend: Any) -> None:
    """Register a backend object (or module) under `name`, replacing any earlier one."""
    _loaded[name] = backend


def available() -> list[str]:
    names = set(BUILTIN) | set(_loaded)
    names |= {ep.name for ep in entry_points(group="nmcompile.backends")}
    return sorted(names)


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


def get_backend(name: str) -> Any:
    if name in _loaded:
        return _loaded[name]
    if name in BUILTIN:
        _check_backends_package()
        backend = importlib.import_module(BUILTIN[name])
    else:
        found = [ep for ep in entry_points(group="nmcompile.backends") if ep.name == name]
        if not found:
            raise NmcompileError(f"unknown backend {name!r}; available: "
                                 f"{', '.join(['float', *available()])}")
        backend = found[0].load()
    _loaded[name] = backend
    return backend
