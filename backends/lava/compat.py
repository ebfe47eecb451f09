"""Make lava-nc 0.10 importable on Python 3.11 without editing site-packages.

Why this exists: lava-nc 0.10.0 declares ``requires-python <3.11``. On 3.11 the import of
``lava.magma.compiler.var_model`` fails, because Python 3.11's ``dataclasses`` refuses any
unhashable default value, and ``CoreEncoder``, ``ChipEncoder`` and ``AxonEncoder`` use
``ByteEncoder()`` (a plain, hence unhashable, ``@dataclass``) as field defaults::

    ValueError: mutable default <class '...var_model.ByteEncoder'> for field x is not
    allowed: use default_factory

Almost every Lava entry point imports that module (the compiler, ``AbstractProcess.run``), so
nothing in Lava works. The fix is one token: declare ``ByteEncoder`` as
``@dataclass(frozen=True)``, which makes it hashable. ``ByteEncoder`` is only used by the
Loihi-hardware (NC) compiler paths, which are not part of the open-source release, and nothing
in lava-nc 0.10.0 assigns to its fields, so freezing it changes no behaviour we rely on.

How: :func:`install` puts a :class:`importlib.abc.MetaPathFinder` at the front of
``sys.meta_path``. For exactly that one module it returns a spec whose loader reads the
original source, applies the textual patch and compiles the result. The patch lives in the
loader's ``get_code`` rather than ``get_data`` because pip byte-compiles installed packages:
``SourceFileLoader.get_code`` would otherwise load the unpatched ``__pycache__/*.pyc`` without
ever reading the source. The patched code is never written back to a ``.pyc``.

Lava starts its workers with ``fork``, so the children inherit the already-imported, patched
module from the parent; installing the hook in the parent process is enough.

The hook is gated: it is installed only on Python >= 3.11 with lava-nc 0.10.x. Anything else
(older Python, another Lava release, Lava not installed) leaves the import system untouched.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.metadata
import multiprocessing
import sys
from collections.abc import Sequence
from types import CodeType, ModuleType

__all__ = ["PATCHED_MODULE", "LavaUnavailable", "import_lava", "install", "is_needed"]

#: The one module whose source is patched.
PATCHED_MODULE = "lava.magma.compiler.var_model"

#: Exact text in lava-nc 0.10.0's var_model.py, and its replacement.
_ORIGINAL = "@dataclass\nclass ByteEncoder:\n"
_PATCHED = "@dataclass(frozen=True)\nclass ByteEncoder:\n"

_DISTRIBUTION = "lava-nc"
_INSTALL_HINT = (
    "install it with `pip install --no-deps --ignore-requires-python lava-nc==0.10.0` "
    "(see LAVA_NOTES.md)"
)


class LavaUnavailable(ImportError):  # noqa: N818  (name fixed by the design)
    """Lava cannot be imported: not installed, or its source is not the one the shim patches."""


def _lava_version() -> str | None:
    try:
        return importlib.metadata.version(_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None


def is_needed(version_info: Sequence[int] | None = None, lava_version: str | None = None) -> bool:
    """Whether the shim applies: Python >= 3.11 and lava-nc 0.10.x.

    Arguments default to the running interpreter and the installed lava-nc; they exist so
    the gate itself can be tested.
    """
    py = tuple(sys.version_info[:2] if version_info is None else version_info[:2])
    lv = _lava_version() if lava_version is None else lava_version
    if lv is None or py < (3, 11):
        return False
    parts = lv.split(".")
    return len(parts) >= 2 and parts[0] == "0" and parts[1] == "10"


def patch_source(source: str, origin: str = PATCHED_MODULE) -> str:
    """Return ``source`` with ``ByteEncoder`` frozen; fail loudly if the text is not there.

    Already-frozen source (a fixed Lava build) is returned unchanged.
    """
    if _PATCHED in source:
        return source
    count = source.count(_ORIGINAL)
    if count != 1:
        raise LavaUnavailable(
            f"nmcompile's Lava shim expected exactly one {_ORIGINAL!r} in {origin} "
            f"(lava-nc {_lava_version()}), found {count}. This Lava is not the 0.10.0 source "
            f"the shim was written for; {_INSTALL_HINT}, or update backends/lava/compat.py."
        )
    return source.replace(_ORIGINAL, _PATCHED)


class _PatchedSourceLoader(importlib.machinery.SourceFileLoader):
    """Source loader that always compiles the patched source and ignores the ``.pyc``."""

    def get_code(self, fullname: str) -> CodeType:
        path = self.get_filename(fullname)
        try:
            source = self.get_data(path).decode("utf-8")
        except OSError as exc:
            raise LavaUnavailable(
                f"nmcompile's Lava shim could not read the source of {fullname} at {path}: "
                f"{exc}; {_INSTALL_HINT}."
            ) from exc
        return self.source_to_code(patch_source(source, path).encode("utf-8"), path)


class _VarModelFinder(importlib.abc.MetaPathFinder):
    """Finds ``lava.magma.compiler.var_model`` and hands it to the patching loader."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != PATCHED_MODULE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not isinstance(spec.loader, importlib.machinery.SourceFileLoader):
            raise LavaUnavailable(
                f"nmcompile's Lava shim found no Python source for {fullname} "
                f"(found {spec!r}); {_INSTALL_HINT}."
            )
        assert spec.origin is not None  # a SourceFileLoader spec always has one
        spec.loader = _PatchedSourceLoader(fullname, spec.origin)
        return spec


def _installed() -> bool:
    return any(isinstance(f, _VarModelFinder) for f in sys.meta_path)


_MESSAGING = "lava.magma.runtime.message_infrastructure.multiprocessing"  # sets 'fork' at import


def install() -> None:
    """Install the import hook if this Python and this Lava need it; safe to call repeatedly.

    Does nothing when the gate is closed (see :func:`is_needed`), when the hook is already
    installed, or when ``var_model`` was already imported (then it imported fine, somehow).
    """
    if _installed() or not is_needed():
        return
    if PATCHED_MODULE in sys.modules:
        return
    sys.meta_path.insert(0, _VarModelFinder())


def uninstall() -> None:
    """Remove the hook (for tests); an already-imported patched module stays imported."""
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _VarModelFinder)]


def import_lava() -> ModuleType:
    """Install the shim, import Lava's core and return the ``lava`` package.

    Imports the patched module eagerly, so a Lava that cannot work fails here with a
    :class:`LavaUnavailable` naming the cause, not later inside a run.
    """
    install()
    fixed = multiprocessing.get_start_method(allow_none=True)
    if fixed == "fork" and _MESSAGING not in sys.modules:
        # Something already fixed the start method to the platform default (numba does, when the
        # emulator's parallel kernels start their threads); Lava sets that same 'fork' again and
        # multiprocessing refuses. Un-fixing it changes nothing: Lava fixes it back to 'fork'.
        multiprocessing.set_start_method(None, force=True)
    try:
        importlib.import_module(PATCHED_MODULE)
        importlib.import_module("lava.magma.core.process.process")
    except LavaUnavailable:
        raise
    except ImportError as exc:
        raise LavaUnavailable(f"Lava could not be imported ({exc}); {_INSTALL_HINT}.") from exc
    except RuntimeError as exc:
        if "context has already been set" not in str(exc):
            raise
        raise LavaUnavailable(
            "Lava calls multiprocessing.set_start_method('fork') when it is first imported, "
            f"and this process had already chosen {multiprocessing.get_start_method()!r}. Lava "
            "needs 'fork': do not set another start method before running the Lava backend."
        ) from exc
    except ValueError as exc:  # the unpatched dataclass error, if the gate let it through
        raise LavaUnavailable(
            f"Lava {_lava_version()} failed to import on Python "
            f"{sys.version_info.major}.{sys.version_info.minor}: {exc}. nmcompile's shim "
            f"only patches lava-nc 0.10.x; {_INSTALL_HINT}."
        ) from exc
    return importlib.import_module("lava")
