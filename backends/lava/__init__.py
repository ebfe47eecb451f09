"""Lava backend: lowering the quantised IR to Lava processes and running them.

Importing this package installs the Python 3.11 import shim for lava-nc 0.10 (see
:mod:`backends.lava.compat`), so any later ``import lava...`` works, and nothing else: the
backend's members (`capabilities`, `check`, `run`, `run_many`, `compile`, `build`, `lower`)
are loaded on first use from `backends.lava.api`, and Lava itself only where a Lava process
is built. This keeps `import backends.lava` cheap, and lets the Lava worker interpreter
(`backends.lava.worker`) start without nmcompile's heavier imports.
"""

from typing import Any

from backends.lava import compat

compat.install()

_API = ("capabilities", "check", "run", "run_many", "compile", "build", "lower")
name = "lava"


def __getattr__(name: str) -> Any:
    if name in _API:
        from backends.lava import api

        return getattr(api, name)
    raise AttributeError(f"module 'backends.lava' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
