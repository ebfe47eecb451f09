"""Arrays from untrusted files in bounded memory: `.npy` streams and `.npz` archives.

`numpy.load` trusts a file's header: a 1 kB `.npy` declaring a 7 TiB shape is a MemoryError,
a zip member that inflates past its declared size is read whole before its CRC fails, and an
`.npz` held in memory is one more copy. Here every header is checked before anything is
allocated: an array may not be larger than the bytes its member declares, all arrays together
may not exceed the caller's budget, a zip member may not claim more than deflate can produce
from its compressed bytes, and members are read in bounded chunks straight into the final
array. Only plain numeric dtypes are read (bool, integers, floats); other byte orders are
converted to the machine's.

Writing is the mirror image (`write_array`): a `.npy` header, then the array's own bytes in
chunks straight to a zip member, never a whole copy. A member stored uncompressed holding an
archive (an `.nmc` file's `arrays.npz`) is opened in place (`open_archive`), not copied.
"""

from __future__ import annotations

import contextlib
import io
import os
import struct
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
    """Refuse a zip whose members declare more than the budget, more than their compressed
    bytes can inflate to, a stored size other than their size, or bytes past the end of the
    archive (all from the zip directory, before anything is read)."""
    total = 0
    end = getattr(z, "start_dir", None)  # where the directory starts: every member ends before
    for info in z.infolist():
        total += info.file_size
        if (info.compress_type != zipfile.ZIP_STORED and info.file_size > _SMALL
                and info.file_size > MAX_RATIO * max(info.compress_size, 1)):
            raise FormatError(f"{where}: member {info.filename!r} declares {info.file_size:,} "
                              f"bytes from {info.compress_size:,} compressed ones, more than "
                              f"deflate can produce: the file is corrupt or hostile")
        if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
            raise FormatError(f"{where}: member {info.filename!r} is stored uncompressed but "
                              f"declares {info.file_size:,} bytes in {info.compress_size:,}: "
                              f"the file is corrupt or hostile")
        if end is not None and info.header_offset + 30 + info.compress_size > end:
            raise FormatError(f"{where}: member {info.filename!r} declares "
                              f"{info.compress_size:,} stored bytes, more than the archive "
                              f"holds: the file is truncated or hostile")
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
            array = read_array(f, info.file_size, budget, f"{where}:{info.filename}")
            if f.read(1):  # also reads to the member's end, where zipfile checks its CRC
                raise FormatError(f"{where}: member {info.filename!r} holds more bytes than "
                                  f"its array")
            yield info.filename[:-4], array


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


WRITE_CHUNK = 4 << 20  # bytes per write: larger than CHUNK only to cut per-call overhead


def npy_header(shape: tuple[int, ...], fortran: bool, dtype: np.dtype) -> bytes:
    """The `.npy` header (format 1.0, or 2.0 when the shape needs it) of an array."""
    fields = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
              "fortran_order": bool(fortran), "shape": tuple(int(d) for d in shape)}
    buf = io.BytesIO()
    try:
        np.lib.format.write_array_header_1_0(buf, fields)
    except ValueError:  # a header over 64 KiB
        buf = io.BytesIO()
        np.lib.format.write_array_header_2_0(buf, fields)
    return buf.getvalue()


def _byte_chunks(array: np.ndarray, dtype: np.dtype, order: str, shift: int = 0
                 ) -> Iterator[memoryview]:
    """The array's elements in `order`, shifted right by `shift` bits (integers whose low bits
    are all zero), as `dtype`, in chunks of about WRITE_CHUNK bytes: views of its own memory
    when it is contiguous in that order and already `dtype`, else one converted chunk at a
    time."""
    step = max(1, WRITE_CHUNK // max(array.dtype.itemsize, dtype.itemsize))
    if array.flags.c_contiguous if order == "C" else array.flags.f_contiguous:
        flat = array.reshape(-1, order=order)  # a view: no copy
        for start in range(0, flat.size, step):
            part = flat[start:start + step]
            if shift:
                part = part >> shift  # exact: the caller checked the low bits are zero
            if part.dtype != dtype:
                part = part.astype(dtype)  # one chunk, checked lossless by the caller
            yield memoryview(part.view(np.uint8))
        return
    if array.size == 0:
        return
    with np.nditer(array, flags=["external_loop", "buffered", "zerosize_ok"],
                   buffersize=step, order=order) as it:
        for part in it:
            yield memoryview(np.ascontiguousarray(part >> shift if shift else part,
                                                  dtype=dtype).view(np.uint8))


def write_array(z: zipfile.ZipFile, name: str, array: np.ndarray,
                dtype: np.dtype | None = None, shift: int = 0) -> int:
    """Stream `array` to a new member `name` of `z` (open for writing) as an `.npy`: the
    header, then its bytes in chunks (`dtype`, when given, must hold every value shifted
    right by `shift`: the caller narrows integer arrays). Returns the member's size."""
    dtype = array.dtype if dtype is None else np.dtype(dtype)
    fortran = bool(array.flags.f_contiguous and not array.flags.c_contiguous)
    header = npy_header(array.shape, fortran, dtype)
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_STORED
    size = len(header)
    with z.open(info, "w", force_zip64=True) as f:
        f.write(header)
        for chunk in _byte_chunks(array, dtype, "F" if fortran else "C", shift):
            f.write(chunk)
            size += len(chunk)
    return size


class _Slice(io.RawIOBase):
    """Bytes [start, start + size) of an open binary file, as a read-only seekable file."""

    def __init__(self, f: IO[bytes], start: int, size: int) -> None:
        super().__init__()
        self._f, self._start, self._size, self._pos = f, start, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = (0, self._pos, self._size)[whence]
        if base + offset < 0:
            raise OSError("seek before the start of the member")
        self._pos = base + offset
        return self._pos

    def readinto(self, b) -> int:
        n = min(len(b), self._size - self._pos)
        if n <= 0:
            return 0
        self._f.seek(self._start + self._pos)
        got = self._f.readinto(memoryview(b).cast("B")[:n]) or 0
        self._pos += got
        return got


@contextlib.contextmanager
def open_archive(z: zipfile.ZipFile, name: str, where: str) -> Iterator[zipfile.ZipFile]:
    """The zip archive held in member `name` of `z` (whose members `check_members` has
    checked). A stored member is opened in place, as a slice of the outer file: nothing is
    copied, and its own members' CRCs are checked as they are read. A compressed one (what
    format 1 wrote) is copied in chunks to a temporary file first (`spool_member`)."""
    info = z.getinfo(name)
    if info.compress_type != zipfile.ZIP_STORED:
        with spool_member(z, name, where) as spool, zipfile.ZipFile(spool) as inner:
            yield inner
        return
    if info.flag_bits & 0x1:
        raise FormatError(f"{where}: member {name!r} is encrypted")
    fp = z.fp
    fp.seek(info.header_offset)
    head = fp.read(30)
    if len(head) != 30 or head[:4] != b"PK\x03\x04":
        raise FormatError(f"{where}: member {name!r} has no valid local header")
    name_len, extra_len = struct.unpack("<HH", head[26:30])
    start = info.header_offset + 30 + name_len + extra_len
    end = getattr(z, "start_dir", None)
    if end is not None and start + info.compress_size > end:
        raise FormatError(f"{where}: member {name!r} extends past the end of the archive")
    with zipfile.ZipFile(_Slice(fp, start, info.compress_size)) as inner:
        yield inner
