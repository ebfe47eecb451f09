"""Issue 12, defects 6 and 8 and the minor ones: hostile files cost memory in proportion to
their bytes, never read another file's bytes, and fail as one named nmcompile error.

Every hostile file is made here, small on disk; memory is measured with tracemalloc (numpy
and zlib allocations are traced), so a guard that allocates first and checks later fails.
"""

from __future__ import annotations

import io
import json
import struct
import tracemalloc
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

import nmcompile
from nmcompile import datasets
from nmcompile.cli import main
from nmcompile.errors import FormatError, LimitError, NmcompileError
from nmcompile.ir import LIF, Dense, Graph, Input, Output

MB = 1 << 20


def _graph() -> Graph:
    g = Graph(dt=1e-3, metadata={"note": "plain"})
    g.add_node("x", Input((4,)))
    g.add_node("fc", Dense(np.arange(12.0).reshape(3, 4) / 10))
    g.add_node("h", LIF(beta=0.9))
    g.add_node("o", Output())
    for a, b in (("x", "fc"), ("fc", "h"), ("h", "o")):
        g.add_edge(a, b)
    return g


def _parts(path: Path) -> tuple[dict, bytes]:
    with zipfile.ZipFile(path) as z:
        return json.loads(z.read("graph.json")), z.read("arrays.npz")


def _zip(path: Path, members: dict[str, bytes], compress: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compress) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def _peak(fn) -> int:
    """Peak bytes traced while `fn` runs (it must raise an NmcompileError)."""
    tracemalloc.start()
    try:
        with pytest.raises(NmcompileError) as err:
            fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        print(err.value)


def _npy_header(shape: tuple[int, ...], dtype: str = "<f8") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False,
                                               "shape": shape})
    return buf.getvalue()


@pytest.fixture
def good(tmp_path: Path) -> Path:
    return nmcompile.save(_graph(), tmp_path / "good.nmc")


def test_an_array_header_larger_than_its_data_is_refused_before_allocating(good, tmp_path):
    doc, _ = _parts(good)
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as z:  # a0: the Dense weight, declared 1 GiB
        z.writestr("a0.npy", _npy_header((1 << 27,)) + b"\0" * 4096)
    bad = _zip(tmp_path / "huge.nmc", {"graph.json": json.dumps(doc).encode(),
                                       "arrays.npz": inner.getvalue()})
    assert bad.stat().st_size < 10_000
    assert _peak(lambda: nmcompile.load(bad)) < 4 * MB
    with pytest.raises(FormatError, match="truncated or hostile"):
        nmcompile.load(bad)
    huge = tmp_path / "7tib.npy"  # the same through --input: a 7 TiB header
    huge.write_bytes(_npy_header((1 << 40, 7)) + b"\0" * 64)
    assert _peak(lambda: main(["--debug", "run", str(good), "--input", str(huge)])) < 4 * MB


def _lying_sizes(data: bytes, name: str, declared: int) -> bytes:
    """Rewrite a zip's local and central headers so that `name` declares `declared` bytes."""
    out = bytearray(data)
    for sig, size_at in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        start = 0
        while (at := out.find(sig, start)) >= 0:
            name_at = at + (30 if sig == b"PK\x03\x04" else 46)
            if out[name_at:name_at + len(name)] == name.encode():
                out[at + size_at:at + size_at + 4] = struct.pack("<I", declared)
            start = at + 4
    return bytes(out)


@pytest.mark.parametrize("member", ["graph.json", "arrays.npz"])
def test_a_member_that_inflates_past_its_declared_size_stops_there(good, tmp_path, member):
    doc, npz = _parts(good)
    members = {"graph.json": json.dumps(doc).encode(), "arrays.npz": npz}
    members[member] += b" " * (64 * MB)  # inflates to 64 MB, declares 1,000 bytes
    bomb = tmp_path / "bomb.nmc"
    bomb.write_bytes(_lying_sizes(_zip(tmp_path / "b.zip", members).read_bytes(), member, 1000))
    assert bomb.stat().st_size < 1 * MB
    assert _peak(lambda: nmcompile.load(bomb)) < 8 * MB


def test_a_member_claiming_more_than_deflate_can_give_is_refused(good, tmp_path) -> None:
    doc, npz = _parts(good)
    data = _zip(tmp_path / "b.zip", {"graph.json": json.dumps(doc).encode(),
                                     "arrays.npz": npz}).read_bytes()
    bad = tmp_path / "claims.nmc"
    bad.write_bytes(_lying_sizes(data, "arrays.npz", 3 << 30))  # 3 GiB from ~1 kB
    with pytest.raises(FormatError, match="more than deflate can produce"):
        nmcompile.load(bad)


def test_a_nir_dataset_that_stores_nothing_is_refused(tmp_path) -> None:
    path = tmp_path / "net.nir"
    nmcompile.to_nir(_graph(), path)
    with h5py.File(path, "a") as f:
        del f["node/nodes/fc/weight"]
        f.create_dataset("node/nodes/fc/weight", shape=(3, 48_000_000), dtype="f4")  # 576 MB
    assert path.stat().st_size < 100_000
    peak = _peak(lambda: nmcompile.from_nir(path, dt=1e-3))
    assert peak < 8 * MB
    with pytest.raises(FormatError, match="declares 576,000,000 bytes but stores 0"):
        nmcompile.from_nir(path, dt=1e-3)


SECRET = np.arange(12, dtype="<f8").reshape(3, 4) * 1e6 + 424242.0  # "another local file"


@pytest.mark.parametrize("kind", ["external storage", "external link", "virtual dataset"])
def test_a_nir_file_never_reads_another_file(tmp_path, kind) -> None:
    secret = tmp_path / "secret.bin"
    secret.write_bytes(SECRET.tobytes())
    path = tmp_path / "net.nir"
    nmcompile.to_nir(_graph(), path)
    with h5py.File(path, "a") as f:
        del f["node/nodes/fc/weight"]
        if kind == "external storage":
            f.create_dataset("node/nodes/fc/weight", shape=(3, 4), dtype="<f8",
                             external=[(str(secret), 0, SECRET.nbytes)])
        elif kind == "external link":
            with h5py.File(tmp_path / "other.h5", "w") as other:
                other["w"] = SECRET
            f["node/nodes/fc/weight"] = h5py.ExternalLink(str(tmp_path / "other.h5"), "w")
        else:
            layout = h5py.VirtualLayout(shape=(3, 4), dtype="<f8")
            with h5py.File(tmp_path / "other.h5", "w") as other:
                other["w"] = SECRET
            layout[:] = h5py.VirtualSource(str(tmp_path / "other.h5"), "w", shape=(3, 4))
            f["node/nodes/fc"].create_virtual_dataset("weight", layout)
    with pytest.raises(FormatError, match=kind.split()[-1]):
        nmcompile.from_nir(path, dt=1e-3)
    assert main(["compile", str(path), "--dt", "1e-3", "--target", "lava",
                 "-o", str(tmp_path / "out")]) == 1
    assert not (tmp_path / "out").exists()


def test_metadata_sizes_are_bounded_and_only_asked_samples_are_encoded() -> None:
    meta = {"dataset": {"name": "sklearn-digits", "test_size": 0.2, "seed": 0},
            "encoding": {"name": "poisson", "num_steps": 5000, "rate": 1.0, "seed": 1}}
    datasets.test_inputs({**meta, "encoding": {**meta["encoding"], "num_steps": 1}}, 1)
    tracemalloc.start()  # after the data set itself is loaded once
    try:
        spikes, labels = datasets.test_inputs(meta, 1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert spikes.shape == (5000, 1, 64) and labels.shape == (1,)
    assert peak < 16 * MB  # all 360 samples would be 115 MB of uint8 (and 460 MB of floats)
    full, _ = datasets.test_inputs({**meta, "encoding": {**meta["encoding"], "num_steps": 30}})
    head, _ = datasets.test_inputs({**meta, "encoding": {**meta["encoding"], "num_steps": 30}}, 3)
    assert np.array_equal(full[:, :3], head)  # a prefix, bit for bit
    with pytest.raises(LimitError, match=r"encoding\.num_steps"):
        datasets.test_inputs({**meta, "encoding": {**meta["encoding"], "num_steps": 10**9}}, 1)
    with pytest.raises(NmcompileError, match=r"encoding\.num_steps = '25'"):
        datasets.test_inputs({**meta, "encoding": {**meta["encoding"], "num_steps": "25"}}, 1)


def test_sample_counts_must_be_positive(good, capsys) -> None:
    for argv in (["verify", str(good), "--samples", "-3"],
                 ["estimate", str(good), "--samples", "0"],
                 ["quantize", str(good), "-o", "x.nmc", "--calibrate", "-1"]):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2
        assert "must be at least 1" in capsys.readouterr().err


def test_inspect_escapes_control_characters(tmp_path, capsys) -> None:
    g = _graph()
    g.metadata = {"title\x1b[2J": "\x1b[31mred\rover\x07"}
    assert main(["inspect", str(nmcompile.save(g, tmp_path / "m.nmc"))]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\r" not in out and "\x07" not in out
    assert "metadata title\\x1b[2J: \\x1b[31mred\\rover\\x07" in out


def test_a_big_endian_input_is_converted(good, tmp_path) -> None:
    x = (np.random.default_rng(0).random((6, 2, 4)) < 0.5)
    np.save(tmp_path / "be.npy", x.astype(">f8"))
    np.save(tmp_path / "le.npy", x.astype("u1"))
    for name in ("be", "le"):
        assert main(["run", str(good), "--input", str(tmp_path / f"{name}.npy"),
                     "-o", str(tmp_path / f"{name}.npz")]) == 0
    with np.load(tmp_path / "be.npz") as a, np.load(tmp_path / "le.npz") as b:
        assert np.array_equal(a["output/o"], b["output/o"])


def _mutations(doc: dict):
    """graph.json with one value at each level replaced by values of the wrong type."""
    wrong = [None, [], {}, "x", -1, 1e308, [[[]]], {"array": []}, {"tuple": 3}]
    for value in wrong:
        yield {**doc, "nodes": value}
        yield {**doc, "edges": value}
        yield {**doc, "metadata": value}
        yield {**doc, "dt": value}
    for k in range(len(doc["nodes"])):
        for key in ("name", "type", "params"):
            for value in wrong:
                nodes = [dict(n) for n in doc["nodes"]]
                nodes[k][key] = value
                yield {**doc, "nodes": nodes}
        for param in doc["nodes"][k]["params"]:
            for value in wrong:
                nodes = [dict(n, params=dict(n["params"])) for n in doc["nodes"]]
                nodes[k]["params"][param] = value
                yield {**doc, "nodes": nodes}
    for k in range(len(doc["edges"])):
        for key in ("src", "dst", "delay"):
            for value in wrong:
                edges = [dict(e) for e in doc["edges"]]
                edges[k][key] = value
                yield {**doc, "edges": edges}
    yield [doc]
    yield {**doc, "metadata": {"deep": "REPLACE"}}  # replaced by deep nesting below


def test_malformed_graph_json_is_always_a_named_error(good, tmp_path) -> None:
    """About 300 wrong-typed documents: each loads, or fails as an NmcompileError; never a
    bare AttributeError, TypeError or RecursionError."""
    doc, npz = _parts(good)
    outcomes = {"loaded": 0, "refused": 0}
    for k, bad in enumerate(_mutations(doc)):
        text = json.dumps(bad)
        if '"REPLACE"' in text:
            text = text.replace('"REPLACE"', "[" * 100_000 + "]" * 100_000)
        path = _zip(tmp_path / f"m{k}.nmc", {"graph.json": text.encode(), "arrays.npz": npz})
        try:
            nmcompile.load(path)
            outcomes["loaded"] += 1
        except NmcompileError:
            outcomes["refused"] += 1
        path.unlink()
    print(outcomes)
    assert outcomes["refused"] > 250


def test_an_unknown_nir_node_type_is_named(tmp_path) -> None:
    path = tmp_path / "net.nir"
    nmcompile.to_nir(_graph(), path)
    with h5py.File(path, "a") as f:
        del f["node/nodes/h/type"]
        f["node/nodes/h/type"] = np.bytes_("Teleporter")
    with pytest.raises(FormatError, match="Teleporter"):
        nmcompile.from_nir(path, dt=1e-3)


def test_cut_off_headers_and_text_shapes_are_named_errors(good, tmp_path, capsys) -> None:
    """Found by fuzzing: a .npy header cut off mid-dict (numpy's tokenizer raised a bare
    TokenError) and a NIR Input shape stored as text (a bare ValueError from int())."""
    cut = b"\x93NUMPY\x01\x00\x30\x00{'descr':'<i8','fortran_order':False,'shape':(-1,)}\n"
    (tmp_path / "cut.npy").write_bytes(cut)
    assert main(["run", str(good), "--input", str(tmp_path / "cut.npy")]) != 0
    assert "not a valid .npy array" in capsys.readouterr().err
    path = tmp_path / "net.nir"
    nmcompile.to_nir(_graph(), path)
    with h5py.File(path, "a") as f:
        del f["node/nodes/x/shape"]
        f["node/nodes/x/shape"] = np.bytes_("four")
    with pytest.raises(FormatError, match="NIR Input node 'x' has shape"):
        nmcompile.from_nir(path, dt=1e-3)
