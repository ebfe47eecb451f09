"""Issue 14, point 4: `.nmc` format 2 is fast and safe. Arrays are stored uncompressed, one
`.npy` member each in their own dtype, streamed to the file without a whole copy and read
back in chunks into their final arrays; sizes are checked before anything is read."""

from __future__ import annotations

import io
import json
import struct
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

import nmcompile
from nmcompile.errors import FormatError, LimitError
from nmcompile.ir import LIF, Dense, Graph, Input, Output, Sparse, npy, serialize
from nmcompile.ir.quantized import QLIF, QDense, QSparse

DTYPES = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float32",
          "float64", "bool"]


def _values(dtype: str, shape=(3, 5)) -> np.ndarray:
    """Values spanning the dtype: its extremes, zero, and some in between."""
    n = int(np.prod(shape))
    if dtype == "bool":
        return (np.arange(n) % 3 == 0).reshape(shape)
    if np.dtype(dtype).kind in "iu":
        info = np.iinfo(dtype)
        picks = [info.min, info.max, 0, 1, info.max // 3, info.min // 7, info.max - 1]
    else:
        info = np.finfo(dtype)
        picks = [float(info.min), float(info.max), float(info.tiny), -0.0, 1.5, -2.25, 1e-3]
    return np.resize(np.array(picks, dtype=dtype), n).reshape(shape)


def _archive(arrays: dict[str, np.ndarray]) -> zipfile.ZipFile:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for key, a in arrays.items():
            npy.write_array(z, f"{key}.npy", a)
    return zipfile.ZipFile(io.BytesIO(buf.getvalue()))


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_dtype_round_trips_in_its_own_dtype(dtype) -> None:
    a = _values(dtype)
    arrays = {"c": a, "f": np.asfortranarray(a), "strided": a[::2, ::-2], "empty": a[:0],
              "scalar": a[1, 1].reshape(()), "big_endian": a.astype(a.dtype.newbyteorder(">"))}
    with _archive(arrays) as z:
        for info in z.infolist():
            assert info.compress_type == zipfile.ZIP_STORED
        back = dict(npy.read_npz(z, npy.Budget(1 << 20, "test"), "test"))
        again = {k: np.load(z.open(f"{k}.npy")) for k in arrays}  # plain numpy reads them too
    for key, want in arrays.items():
        native = want.dtype.newbyteorder("=")
        assert back[key].dtype == native and back[key].shape == want.shape, key
        assert np.array_equal(back[key], want) and np.array_equal(again[key], want), key


def _every_dtype_graph() -> Graph:
    """Nodes holding arrays of several dtypes: float64 weights, int32 sparse indices, and
    quantised mantissas stored int8, uint8, int8 with step 2 and int16, per-neuron int16."""
    rng = np.random.default_rng(0)
    g = Graph(dt=1e-3, metadata={"note": "dtypes"})
    g.add_node("x", Input((6,)))
    g.add_node("fc", Dense(rng.normal(size=(8, 6)), bias=rng.normal(size=8)))
    g.add_node("h", LIF(beta=0.9, threshold=rng.uniform(0.5, 1.5, 8)))
    g.add_node("sp", Sparse([0, 3, 7], [1, 2, 7], [0.5, -1.0, 2.0], (8, 8)))
    g.add_node("h2", LIF(beta=0.8))
    g.add_node("q1", QDense(rng.integers(-100, 100, (5, 8)) * 2))  # even: int8, step 2
    g.add_node("n1", QLIF(vth=np.arange(5) * 100 + 1))  # int16 per neuron
    g.add_node("q2", QDense(rng.integers(0, 250, (4, 5))))  # >= 0: uint8
    g.add_node("n2", QLIF(vth=7))
    g.add_node("qs", QSparse([0, 39_999], [3, 0], [-5, 30_001], (40_000, 4)))  # int16 values
    g.add_node("n3", QLIF(vth=3, reset="subtract"))
    g.add_node("o", Output())
    for a, b in [("x", "fc"), ("fc", "h"), ("h", "sp"), ("sp", "h2"), ("h2", "q1"), ("q1", "n1"),
                 ("n1", "q2"), ("q2", "n2"), ("n2", "qs"), ("qs", "n3"), ("n3", "o")]:
        g.add_edge(a, b)
    return g


def test_a_graph_round_trips_with_every_dtype_and_storage(tmp_path) -> None:
    g = _every_dtype_graph()
    h = nmcompile.load(nmcompile.save(g, tmp_path / "g.nmc"))
    assert h == g  # same dtypes and bits, parameter by parameter
    for name, node in g.nodes.items():
        for k, v in node.params().items():
            if isinstance(v, np.ndarray):
                assert h[name].params()[k].dtype == v.dtype, (name, k)
    with zipfile.ZipFile(tmp_path / "g.nmc") as z:
        assert [(i.filename, i.compress_type) for i in z.infolist()] == [
            ("graph.json", zipfile.ZIP_DEFLATED), ("arrays.npz", zipfile.ZIP_STORED)]
        doc = json.loads(z.read("graph.json"))
        inner = np.load(io.BytesIO(z.read("arrays.npz")))  # an ordinary .npz inside
        stored = {k: inner[k].dtype for k in inner.files}
    assert doc["version"] == serialize.VERSION == 3
    params = {n["name"]: n["params"] for n in doc["nodes"]}
    # sparse indices in the smallest unsigned dtype holding them, the node's dtype recorded;
    # rows that never decrease as one count per row
    assert stored[params["qs"]["cols"]["array"]] == np.int8  # the node's own: 4 columns
    assert params["qs"]["rows"]["runs"] is True
    assert params["qs"]["rows"]["dtype"] == g["qs"].rows.dtype.name
    assert inner[params["qs"]["rows"]["array"]].tolist() == [1] + [0] * 39_998 + [1]
    assert stored[params["sp"]["cols"]["array"]] == np.uint8
    assert params["q1"]["weight"]["step"] == 2
    assert stored[params["q1"]["weight"]["array"]] == np.int8
    assert stored[params["fc"]["weight"]["array"]] == np.float64


def _mlp(hidden: int = 1000) -> Graph:
    """Linear(1000, hidden) -> LIF -> Linear(hidden, 10) -> LIF: 1M synapses at 1/100 scale."""
    rng = np.random.default_rng(1)
    g = Graph(dt=1e-3)
    g.add_node("x", Input((1000,)))
    g.add_node("fc1", Dense(rng.normal(0, 0.1, (hidden, 1000))))
    g.add_node("h1", LIF(beta=0.9))
    g.add_node("fc2", Dense(rng.normal(0, 0.1, (10, hidden))))
    g.add_node("h2", LIF(beta=0.9))
    g.add_node("o", Output())
    for a, b in [("x", "fc1"), ("fc1", "h1"), ("h1", "fc2"), ("fc2", "h2"), ("h2", "o")]:
        g.add_edge(a, b)
    return g


def _traced_peak(fn):
    tracemalloc.start()
    try:
        out = fn()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _refused_peak(error: type[Exception], match: str, fn) -> int:
    """Peak bytes traced while `fn` runs and raises `error` matching `match`."""
    def refused() -> None:
        with pytest.raises(error, match=match):
            fn()

    return _traced_peak(refused)[1]


def test_an_mlp_is_streamed_to_a_file_of_its_raw_size_and_back(tmp_path) -> None:
    g = _mlp()
    raw = sum(n.weight.nbytes for n in g.nodes.values() if isinstance(n, Dense))
    largest = g["fc1"].weight.nbytes  # 8 MB
    path, peak = _traced_peak(lambda: nmcompile.save(g, tmp_path / "mlp.nmc"))
    # no whole copy of an array or of the archive: only graph.json and bounded buffers (format
    # 1 held the whole npz in memory, twice, and deflated it); the array's bytes are written
    # from its own memory in chunks
    assert peak < largest / 8, peak
    assert raw <= path.stat().st_size <= raw + 16_384  # uncompressed: the raw bytes and headers
    h, peak = _traced_peak(lambda: nmcompile.load(path))
    assert h == g
    # read once into its final array (Dense's constructor then takes its own copy of it)
    assert peak < 2 * raw + (1 << 20), peak


def test_a_sparse_graph_takes_at_most_six_bytes_per_synapse(tmp_path) -> None:
    rng = np.random.default_rng(2)
    n, nnz = 60_000, 200_000  # indices beyond int16: stored as uint16
    rows, cols = rng.integers(0, n, nnz), rng.integers(0, n, nnz)
    g = Graph(dt=1e-3)
    g.add_node("x", Input((n,)))
    g.add_node("w", QSparse(rows, cols, rng.integers(-100, 100, nnz), (n, n)))
    g.add_node("h", QLIF(vth=10))
    g.add_node("o", Output())
    for a, b in [("x", "w"), ("w", "h"), ("h", "o")]:
        g.add_edge(a, b)
    path = nmcompile.save(g, tmp_path / "sparse.nmc")
    assert path.stat().st_size <= 6 * nnz, path.stat().st_size / nnz
    h = nmcompile.load(path)
    assert h == g and h["w"].rows.dtype == g["w"].rows.dtype


def _rewrite(src: Path, dst: Path, doc: dict, compress: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(src) as z:
        npz = z.read("arrays.npz")
    with zipfile.ZipFile(dst, "w", compress) as z:
        z.writestr("graph.json", json.dumps(doc))
        z.writestr("arrays.npz", npz)
    return dst


def test_a_newer_version_names_the_version_it_needs(tmp_path) -> None:
    good = nmcompile.save(_every_dtype_graph(), tmp_path / "good.nmc")
    with zipfile.ZipFile(good) as z:
        doc = json.loads(z.read("graph.json"))
    bad = _rewrite(good, tmp_path / "v99.nmc", {**doc, "version": 99})
    with pytest.raises(FormatError, match="needs nmcompile that reads format version 99"):
        nmcompile.load(bad)
    for version in (0, "2", True, None):
        with pytest.raises(FormatError, match="no valid format version"):
            nmcompile.load(_rewrite(good, tmp_path / "v.nmc", {**doc, "version": version}))


def test_a_file_over_the_budget_is_refused_before_reading(tmp_path) -> None:
    path = nmcompile.save(_mlp(), tmp_path / "mlp.nmc")  # 8 MB of arrays
    peak = _refused_peak(LimitError, "more than the limit",
                         lambda: nmcompile.load(path, max_bytes="4M"))
    assert peak < 1 << 20, peak


def _patch_sizes(data: bytes, name: str, size: int, compressed: bool) -> bytes:
    """Rewrite a (zip32) member's declared size, and its stored size too when `compressed`."""
    out = bytearray(data)
    for sig, at in ((b"PK\x03\x04", 18), (b"PK\x01\x02", 20)):
        start = 0
        while (pos := out.find(sig, start)) >= 0:
            name_at = pos + (30 if sig == b"PK\x03\x04" else 46)
            if out[name_at:name_at + len(name)] == name.encode():
                out[pos + at + 4:pos + at + 8] = struct.pack("<I", size)
                if compressed:
                    out[pos + at:pos + at + 4] = struct.pack("<I", size)
            start = pos + 4
    return bytes(out)


@pytest.mark.parametrize("compressed", [False, True], ids=["size", "size and stored size"])
def test_a_stored_member_that_lies_about_its_size_is_refused_from_the_directory(
        tmp_path, compressed) -> None:
    good = nmcompile.save(_mlp(hidden=10), tmp_path / "good.nmc")
    with zipfile.ZipFile(good) as z:
        doc = json.loads(z.read("graph.json"))
    data = _rewrite(good, tmp_path / "z.nmc", doc).read_bytes()  # zip32 headers, stored
    bad = tmp_path / "bad.nmc"
    bad.write_bytes(_patch_sizes(data, "arrays.npz", 3 << 30, compressed))  # 3 GiB
    match = "more than the archive holds" if compressed else "stored uncompressed but declares"
    peak = _refused_peak(FormatError, match, lambda: nmcompile.load(bad))
    assert peak < 1 << 20, peak


def test_a_member_longer_than_its_array_is_refused(tmp_path) -> None:
    good = nmcompile.save(_mlp(hidden=10), tmp_path / "good.nmc")
    with zipfile.ZipFile(good) as z:
        doc = json.loads(z.read("graph.json"))
        inner = zipfile.ZipFile(io.BytesIO(z.read("arrays.npz")))
        members = {i.filename: inner.read(i) for i in inner.infolist()}
    members["a0.npy"] += b"\0" * 8
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    bad = tmp_path / "long.nmc"
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("graph.json", json.dumps(doc))
        z.writestr("arrays.npz", buf.getvalue())
    with pytest.raises(FormatError, match="holds more bytes than its array"):
        nmcompile.load(bad)


def test_a_corrupt_array_fails_its_crc(tmp_path) -> None:
    path = nmcompile.save(_mlp(hidden=10), tmp_path / "g.nmc")
    data = bytearray(path.read_bytes())
    at = data.find(b"a0.npy")
    at = data.find(b"\n", data.find(b"NUMPY", at)) + 100  # inside a0's array bytes
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(FormatError, match="CRC"):
        nmcompile.load(path)
