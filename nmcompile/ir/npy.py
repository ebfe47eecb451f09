"""Arrays from untrusted files in bounded memory: `.npy` streams and `.npz` archives.

`numpy.load` trusts a file's header: a 1 kB `.npy` declaring a 7 TiB shape is a MemoryError,
a zip member that inflates past its declared size is read whole before its CRC fails, and an
`.npz` held in memory is one more copy. Here every header is checked before anything is
allocated: an array may not be larger than the bytes its member declares, all arrays together
may not exceed the caller's budget, a zip member may not claim more than deflate can produce
from its compressed bytes, and members are read in bounded chunks straight into the final
array. Only plain numeric dtypes are read (bool, integers, floats); other byte orders are
converted to the machine's.
"""

from __future__ import annotations

import os
import tempfile
import tokenize
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np

from ..errors import FormatError, LimitError

CHUNK = 1 << 20
#: deflate's largest expansion is about 1032:1; a member declaring more is not a real one
MAX_RATIO = 1100
_SMALL = 1 << 16  # members this small are not held to MAX_RATIO
KINDS = "biuf"


class Budget:
    """Bytes that may still be allocated for one file's arrays (every copy counts)."""

    def __init__(self, max_bytes: int, what: str) -> None:
        self.left, self.max_bytes, self.what = int(max_bytes), int(max_bytes), what

    def take(self, nbytes: int, where: str) -> None:
        if nbytes > self.left:
            raise LimitError(f"{where}: reading {self.what} would allocate more than "
                             f"{self.max_bytes:,} bytes; pass a larger max_bytes to load it "
                             f"if you trust it")
        self.left -= nbytes


def check_members(z: zipfile.ZipFile, budget: Budget, where: str) -> None:
    """Refuse a zip whose members declare more than the budget, or more than their
    compressed bytes can inflate to (before anything is decompressed)."""
    total = 0
    for info in z.infolist():
        total += info.file_size
        if (info.compress_type != zipfile.ZIP_STORED and info.file_size > _SMALL
                and info.file_size > MAX_RATIO * max(info.compress_size, 1)):
            raise FormatError(f"{where}: member {info.filename!r} declares {info.file_size:,} "
                              f"bytes from {info.compress_size:,} compressed ones, more than "
                              f"deflate can produce: the file is corrupt or hostile")
    if total > budget.left:
        raise LimitError(f"{where} declares {total:,} bytes uncompressed, more than the limit "
                         f"of {budget.left:,}; pass a larger max_bytes to load it if you trust "
                         f"it")


def _chunks(z: zipfile.ZipFile, name: str, where: str) -> Iterator[bytes]:
    """A member's bytes in bounded chunks: never more than its declared size."""
    info = z.getinfo(name)
    size = 0
    with z.open(info) as f:
        while chunk := f.read(CHUNK):
            size += len(chunk)
            if size > info.file_size:  # zipfile stops at the declared size; keep it so
                raise FormatError(f"{where}: member {name!r} is longer than it declares")
            yield chunk


def read_member(z: zipfile.ZipFile, name: str, where: str) -> bytes:
    """A small member's bytes, read in chunks."""
    return b"".join(_chunks(z, name, where))


def _header(f: IO[bytes], where: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise FormatError(f"{where}: .npy format version {version} is not supported")
    except (ValueError, SyntaxError, TypeError, OverflowError, tokenize.TokenError) as exc:
        # numpy parses the header dict with Python's tokenizer: a cut-off one is a TokenError
        raise FormatError(f"{where}: not a valid .npy array ({exc})") from None
    if dtype.kind not in KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise FormatError(f"{where}: arrays of dtype {dtype} are not read (only booleans, "
                          f"integers and floats)")
    if any(not isinstance(d, int) or d < 0 for d in shape):
        raise FormatError(f"{where}: invalid shape {shape!r}")
    return tuple(shape), bool(fortran), dtype


def read_array(f: IO[bytes], size: int, budget: Budget, where: str) -> np.ndarray:
    """One `.npy` stream of at most `size` bytes (header included), in native byte order."""
    shape, fortran, dtype = _header(f, where)
    count = 1
    for d in shape:
        count *= d  # Python ints: no overflow
    nbytes = count * dtype.itemsize
    if nbytes > size:
        raise FormatError(f"{where}: the header declares {nbytes:,} bytes of data, more than "
                          f"the {size:,} bytes stored: the file is truncated or hostile")
    native = dtype.newbyteorder("=")
    budget.take(nbytes * (1 if native == dtype else 2), where)
    out = np.empty(count, dtype)
    view, pos = memoryview(out).cast("B"), 0
    while pos < nbytes:
        got = f.readinto(view[pos:pos + CHUNK])
        if not got:
            raise FormatError(f"{where}: the array data ends after {pos:,} of {nbytes:,} bytes")
        pos += got
    out = out.reshape(shape, order="F" if fortran else "C")
    return out.astype(native) if native != dtype else out


def read_npz(z: zipfile.ZipFile, budget: Budget, where: str) -> Iterator[tuple[str, np.ndarray]]:
    """Every `NAME.npy` member of an open `.npz` archive, checked and read one at a time."""
    check_members(z, budget, where)
    for info in z.infolist():
        if not info.filename.endswith(".npy"):
            raise FormatError(f"{where}: member {info.filename!r} is not an .npy array")
        with z.open(info) as f:
            yield info.filename[:-4], read_array(f, info.file_size, budget,
                                                 f"{where}:{info.filename}")


def load(path: str | os.PathLike, max_bytes: int) -> np.ndarray | dict[str, np.ndarray]:
    """An `.npy` file's array, or an `.npz` file's arrays by name, within `max_bytes`."""
    path = Path(path)
    budget = Budget(max_bytes, str(path))
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                return dict(read_npz(z, budget, str(path)))
        with open(path, "rb") as f:
            return read_array(f, path.stat().st_size, budget, str(path))
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise FormatError(f"cannot read arrays from {path}: {exc}") from None


def spool_member(z: zipfile.ZipFile, name: str, where: str) -> IO[bytes]:
    """A member copied, in chunks, to a temporary file (kept in memory while small), so that
    an archive inside an archive can be opened without holding it twice in memory."""
    spool = tempfile.SpooledTemporaryFile(max_size=64 << 20)  # noqa: SIM115 - returned open
    try:
        for chunk in _chunks(z, name, where):
            spool.write(chunk)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return spool
