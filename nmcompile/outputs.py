"""Output paths: what nmcompile may replace, and how it replaces it without losing anything.

The rule (docs/reliability.md): nmcompile replaces only what it wrote itself.
- A folder output (`compile -o DIR`, `demo --out DIR`) is written into a fresh temporary
  folder beside DIR and renamed into place. An existing DIR is replaced only when it is empty
  or carries the marker file `.nmcompile-artefact` that every such folder gets; anything else
  needs `force`. A symlink, a file where a folder is wanted, and a DIR that is or holds one of
  the inputs are refused even with `force`.
- A file output (`.nmc`, `run -o OUT.npz`) is written to a temporary file beside it and
  renamed over it; an existing file is replaced only when `is_ours` recognises it (an `.nmc`
  by its format tag, an `.npz` by its marker entry), else it needs `force`.
Temporary names carry the writer's pid, so that a later run removes the leftovers of a writer
that was killed (SIGKILL leaves no chance to clean up) and never those of a live one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO

from .errors import NmcompileError

MARKER = ".nmcompile-artefact"
_TMP = "nmcompile-tmp"
_OLD = "nmcompile-old"


class OutputError(NmcompileError):
    """An output path that nmcompile refuses to write or replace."""


def _refuse(path: Path, why: str, fix: str) -> OutputError:
    return OutputError(f"refusing to write {path}: {why}; {fix}")


_FORCE = "choose another output path, or pass --force (force=True) to replace it"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _clear_stale(parent: Path, name: str) -> None:
    """Remove `.NAME.nmcompile-{tmp,old}-PID-*` left by writers that are no longer running."""
    for kind in (_TMP, _OLD):
        for entry in parent.glob(f".{name}.{kind}-*"):
            pid = entry.name[len(f".{name}.{kind}-"):].split("-", 1)[0]
            if not pid.isdigit() or _alive(int(pid)) or entry.is_symlink():
                continue
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


def _scratch_prefix(path: Path, kind: str) -> str:
    return f".{path.name}.{kind}-{os.getpid()}-"


def _inside(inner: Path, outer: Path) -> bool:
    try:
        return inner.resolve() == outer.resolve() or outer.resolve() in inner.resolve().parents
    except OSError:
        return False


def is_artefact(folder: Path, legacy: Iterable[Iterable[str]] = ()) -> bool:
    """True when `folder` is empty, carries the marker, or holds every file of one of the
    `legacy` sets: how a folder written before the marker existed is recognised."""
    entries = {p.name for p in folder.iterdir()}
    return not entries or MARKER in entries or _is_legacy(entries, legacy)


def _is_legacy(entries: set[str], legacy: Iterable[Iterable[str]]) -> bool:
    return MARKER not in entries and any(set(files) <= entries for files in legacy if files)


def check_folder(out: str | os.PathLike, *, force: bool = False,
                 inputs: Iterable[str | os.PathLike] = (),
                 legacy: Iterable[Iterable[str]] = ()) -> Path:
    """Refuse `out` (raise `OutputError`) unless nmcompile may write a folder there."""
    out = Path(os.path.abspath(out))
    for source in inputs:
        if _inside(Path(source), out):
            raise _refuse(out, f"it is or contains the input {source}",
                          "write the output somewhere else")
    if out.is_symlink():
        raise _refuse(out, "it is a symbolic link (nmcompile never follows or removes one)",
                      "give the real folder's path, or another output path")
    if out.exists() and not out.is_dir():
        raise _refuse(out, "it exists and is not a folder", "choose another output path")
    if out.is_dir() and not force and not is_artefact(out, legacy):
        raise _refuse(out, f"it is a folder that nmcompile did not write (no {MARKER} "
                      f"marker in it)", _FORCE)
    return out


def write_marker(folder: Path, what: str) -> None:
    from . import __version__

    (folder / MARKER).write_text(json.dumps({"written_by": f"nmcompile {__version__}",
                                             "what": what}) + "\n")


def replace_folder(out: str | os.PathLike, build: Callable[[Path], object], what: str, *,
                   force: bool = False, inputs: Iterable[str | os.PathLike] = ()) -> Path:
    """Call `build(tmp)` on a fresh folder beside `out`, mark it, then move it to `out`.

    A failed or interrupted build leaves `out` as it was; a killed one leaves a temporary
    folder that the next write to the same `out` removes."""
    out = check_folder(out, force=force, inputs=inputs)
    out.parent.mkdir(parents=True, exist_ok=True)
    _clear_stale(out.parent, out.name)
    tmp = Path(tempfile.mkdtemp(prefix=_scratch_prefix(out, _TMP), dir=out.parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's 0700 is for the scratch, not the result
        write_marker(tmp, what)
        build(tmp)
        out = check_folder(out, force=force, inputs=inputs)  # it may have changed meanwhile
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=_scratch_prefix(out, _OLD), dir=out.parent))
            os.rename(out, old / out.name)
            os.rename(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def claim_folder(out: str | os.PathLike, what: str, *, force: bool = False,
                 legacy: Iterable[Iterable[str]] = ()) -> Path:
    """Make `out` a folder that nmcompile writes into file by file (the demo's): create it or
    check that it is ours, and mark it. A `legacy` folder (recognised by its files, written
    before the marker existed, so its subfolders carry no marker either) is replaced by an
    empty one."""
    legacy = [tuple(files) for files in legacy]
    out = check_folder(out, force=force, legacy=legacy)
    if out.is_dir() and _is_legacy({p.name for p in out.iterdir()}, legacy):
        old = Path(tempfile.mkdtemp(prefix=_scratch_prefix(out, _OLD), dir=out.parent))
        os.rename(out, old / out.name)
        shutil.rmtree(old, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    if not (out / MARKER).exists():
        write_marker(out, what)
    return out


NPZ_MARKER = "nmcompile_run"


def is_run_npz(path: Path) -> bool:
    """An `.npz` that `nmcompile run -o` wrote: it holds the marker entry."""
    try:
        with zipfile.ZipFile(path) as z:
            return f"{NPZ_MARKER}.npy" in z.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def replace_path(path: str | os.PathLike, write: Callable[[Path], object],
                 is_ours: Callable[[Path], bool], *, force: bool = False) -> Path:
    """Write a file through `write(tmp_path)` to a temporary file beside `path`, then rename
    it over `path`. An existing `path` is replaced only when `is_ours(path)` or `force`; a
    symlink or a folder never."""
    path = Path(os.path.abspath(path))
    if path.is_symlink():
        raise _refuse(path, "it is a symbolic link (nmcompile never follows or removes one)",
                      "give the real file's path, or another output path")
    if path.exists():
        if path.is_dir():
            raise _refuse(path, "it is a folder", "give a file name")
        if not force and not is_ours(path):
            raise _refuse(path, "it exists and is not a file that nmcompile wrote", _FORCE)
    path.parent.mkdir(parents=True, exist_ok=True)
    _clear_stale(path.parent, path.name)
    fd, tmp = tempfile.mkstemp(prefix=_scratch_prefix(path, _TMP), dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 is for the scratch, not the result
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def replace_file(path: str | os.PathLike, write: Callable[[IO[bytes]], object],
                 is_ours: Callable[[Path], bool], *, force: bool = False) -> Path:
    """`replace_path` for a writer that takes an open binary file."""
    def to_path(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            write(f)

    return replace_path(path, to_path, is_ours, force=force)


#: PNG text chunk that marks nmcompile's figures (matplotlib writes it from `metadata=`).
PNG_METADATA = {"Software": "nmcompile"}


def is_png(path: Path) -> bool:
    """A figure nmcompile wrote: a PNG whose text chunks (before the image data) name us."""
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
    except OSError:
        return False
    body = head.split(b"IDAT", 1)[0]
    return head.startswith(b"\x89PNG\r\n\x1a\n") and b"Software\x00nmcompile" in body


def save_figure(fig, path: str | os.PathLike, *, force: bool = False, dpi: int = 100) -> Path:
    """Save a matplotlib figure as a marked PNG, atomically, replacing only our own."""
    return replace_path(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format="png",
                                                      metadata=PNG_METADATA),
                        is_png, force=force)


def is_nir(path: Path) -> bool:
    """A NIR file that nmcompile wrote: HDF5 with nmcompile's graph metadata group (reached
    through hard links only: a hostile file's external link is not followed)."""
    try:
        import h5py

        with h5py.File(path, "r") as f:
            group = f
            for part in ("node", "metadata", "nmcompile"):
                if not isinstance(group.get(part, getlink=True), h5py.HardLink):
                    return False
                group = group[part]
                if not isinstance(group, h5py.Group):
                    return False
            return True
    except (OSError, ValueError, KeyError, ImportError):
        return False


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write a text file atomically inside a folder that nmcompile owns (a claimed one)."""
    return replace_file(path, lambda f: f.write(text.encode()), lambda _: True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
