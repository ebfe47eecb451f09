"""The user's own input data (issue 17, point 3): event arrays binned to spike frames by hand-
derived rules, the `--input` formats (`.npy`, `.npz` with labels, an `.npz` of events, a tonic
folder), and their errors: bad fields named with the fix, sizes refused before allocating, and
a tonic folder without its data refused without any download."""

from __future__ import annotations

import tracemalloc
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import nmcompile
import nmcompile.datasets  # imported once here, not inside a measured call
from nmcompile.errors import LimitError, NmcompileError, ShapeError
from nmcompile.events import EventError, bin_events, load_tonic, sensor
from nmcompile.ir import LIF, Dense, Graph, Input, Output
from nmcompile.user_input import parse_tonic, read_input

XYTP = np.dtype([("x", np.int64), ("y", np.int64), ("t", np.int64), ("p", np.int64)])


def events(*rows: tuple[int, int, int, int]) -> np.ndarray:
    """A tonic-layout structured array from (x, y, t, p) rows."""
    return np.array(list(rows), dtype=XYTP)


def frames(steps: int, sensor_wh: tuple[int, int], *ones: tuple[int, int, int, int]
           ) -> np.ndarray:
    """The expected (T, 2, H, W) frames: 1 at each (k, p, y, x)."""
    out = np.zeros((steps, 2, sensor_wh[1], sensor_wh[0]), np.uint8)
    for k, p, y, x in ones:
        out[k, p, y, x] = 1
    return out


# ---- bin_events -------------------------------------------------------------------------------


def test_even_bins_follow_the_equation_and_clip_counts() -> None:
    # T = 3 over t in [0, 3000]: k = min(floor(3 t / 3000), 2) -> 0, 1, 1, 1, 2
    ev = events((0, 0, 0, 1), (2, 1, 1000, 0), (3, 0, 1500, 1), (3, 0, 1999, 1), (1, 1, 3000, 0))
    got = bin_events(ev, (4, 2), num_steps=3)
    assert got.dtype == np.uint8
    # the two events at (3, 0), polarity 1, in bin 1 make one spike: counts are clipped to 1
    assert np.array_equal(got, frames(3, (4, 2), (0, 1, 0, 0), (1, 0, 1, 2), (1, 1, 0, 3),
                                      (2, 0, 1, 1)))
    # a dict of arrays, polarities -1/1, and a float time axis bin the same
    as_dict = {"x": ev["x"], "y": ev["y"], "t": ev["t"] / 1e6, "p": 2 * ev["p"] - 1}
    assert np.array_equal(bin_events(as_dict, (4, 2, 2), num_steps=3), got)
    assert np.array_equal(bin_events({**as_dict, "p": ev["p"].astype(bool)}, (4, 2),
                                     num_steps=3), got)


def test_one_instant_is_bin_zero_and_one_polarity_merges() -> None:
    ev = events((1, 0, 7, 0), (0, 1, 7, 1))
    assert np.array_equal(bin_events(ev, (2, 2), num_steps=4),
                          frames(4, (2, 2), (0, 0, 0, 1), (0, 1, 1, 0)))
    merged = bin_events(ev, (2, 2, 1), num_steps=1)
    assert merged.shape == (1, 1, 2, 2) and merged[0, 0].tolist() == [[0, 1], [1, 0]]
    # an audio-like sensor one row high with one polarity needs neither y nor p (tonic's SHD)
    audio = bin_events({"x": [3, 0], "t": [0, 10]}, (5, 1, 1), num_steps=2)
    assert audio[:, 0, 0].tolist() == [[0, 0, 0, 1, 0], [1, 0, 0, 0, 0]]


def test_a_bin_width_gives_t_from_the_longest_sample() -> None:
    a = events((0, 0, 100, 1), (1, 0, 104, 1), (1, 0, 111, 0))  # k = (t - 100) // 5: 0, 0, 2
    b = events((0, 1, 5, 0))  # its own first event is its time zero: k = 0
    got = bin_events([a, b], (2, 2), dt_us=5)
    assert got.shape == (3, 2, 2, 2, 2)
    assert np.array_equal(got[:, 0], frames(3, (2, 2), (0, 1, 0, 0), (0, 1, 0, 1), (2, 0, 0, 1)))
    assert np.array_equal(got[:, 1], frames(3, (2, 2), (0, 0, 1, 0)))
    assert np.array_equal(bin_events([a, b], (2, 2), num_steps=3)[:, 1], got[:, 1])


@pytest.mark.parametrize(("ev", "match"), [
    ({"x": [0], "y": [0], "t": [0]}, r"no field p.*rename"),
    (events((4, 0, 0, 0)), r"x = 4 at event 0 is outside \[0, 4\).*width.*sensor_size"),
    (events((0, -1, 0, 0)), r"y = -1 at event 0 is outside \[0, 2\).*height"),
    ({"x": [0.5], "y": [0], "t": [0], "p": [0]}, r"x = 0.5 .*not an integer.*np.floor"),
    (events((0, 0, 5, 0), (0, 0, 3, 0)), r"t goes back from 5 to 3 at event 1.*argsort"),
    ({"x": [0], "y": [0], "t": [float("nan")], "p": [0]}, r"t = nan.*finite"),
    (events(), r"no events \(t is empty\).*allow_empty"),
    (events((0, 0, 0, 2)), r"p = 2 at event 0; polarities are 0/1, -1/1 or booleans"),
    ({"x": [0, 0], "y": [0, 0], "t": [0, 1], "p": [0, -1]}, r"p = -1 at event 1.*mix of 0 and"),
    ({"x": [[0]], "y": [0], "t": [0], "p": [0]}, r"field x has shape \(1, 1\).*1-D"),
    ({"x": [0, 1], "y": [0], "t": [0], "p": [0]}, r"different lengths"),
    (np.zeros((3, 4)), r"structured array with fields x, y, t, p"),
])
def test_bad_events_name_the_field_and_the_fix(ev, match: str) -> None:
    with pytest.raises(EventError, match=match):
        bin_events(ev, (4, 2), num_steps=2)


def test_bad_binning_and_sensor_are_refused() -> None:
    ev = events((0, 0, 0, 0))
    for kwargs in ({}, {"num_steps": 2, "dt_us": 5}):
        with pytest.raises(EventError, match=r"exactly one of num_steps.*and dt_us"):
            bin_events(ev, (4, 2), **kwargs)
    with pytest.raises(EventError, match="num_steps = 0"):
        bin_events(ev, (4, 2), num_steps=0)
    with pytest.raises(EventError, match="dt_us = -1"):
        bin_events(ev, (4, 2), dt_us=-1)
    for bad in ((4,), (4, 0), (4, 2, 3), "big", (4.5, 2)):
        with pytest.raises(EventError, match="sensor_size"):
            sensor(bad)
    assert sensor(np.array([34, 34, 2])).frame == (2, 34, 34)
    assert bin_events([events(), ev], (4, 2), num_steps=2, allow_empty=True)[:, 0].sum() == 0


@pytest.mark.parametrize(("size", "kwargs"), [
    ((1 << 20, 1 << 20), {"num_steps": 1}),  # a huge sensor
    ((34, 34), {"num_steps": 1 << 40}),  # a huge T
    ((34, 34), {"dt_us": 1e-3}),  # T follows from t: 10^9 bins of one recording
])
def test_sizes_over_the_limit_are_refused_before_allocating(size, kwargs) -> None:
    ev = events((0, 0, 0, 0), (1, 1, 1_000_000, 1))
    tracemalloc.start()
    try:
        with pytest.raises(LimitError, match=r"more than 268,435,456"):
            bin_events(ev, size, **kwargs)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20  # nothing of the refused size was allocated


# ---- read_input: arrays ------------------------------------------------------------------------


def small(shape: tuple[int, ...] = (3,), steps: int | None = None) -> Graph:
    g = Graph(metadata={"encoding": {"num_steps": steps}} if steps else None)
    g.add_node("x", Input(shape))
    n = int(np.prod(shape))
    g.add_node("fc", Dense(np.linspace(0.1, 0.9, 2 * n).reshape(2, n)))
    g.add_node("h", LIF(0.9, 0.5))
    g.add_node("out", Output())
    for a, b in (("x", "fc"), ("fc", "h"), ("h", "out")):
        g.add_edge(a, b)
    return g


def test_npy_and_npz_with_labels(tmp_path: Path) -> None:
    x = (np.random.default_rng(0).random((4, 6, 3)) < 0.5).astype(np.uint8)  # (B, T, 3)
    np.save(tmp_path / "x.npy", x)
    got = read_input(tmp_path / "x.npy", "BTC", {"x": (3,)})
    assert np.array_equal(got.spikes, x.swapaxes(0, 1)) and got.labels is None
    assert got.source == f"file {tmp_path / 'x.npy'} (T=6, B=4)" and got.kind == "arrays"
    np.savez(tmp_path / "d.npz", x=x.swapaxes(0, 1), labels=np.array([3, 1, 4, 1]))
    got = read_input(tmp_path / "d.npz", input_shapes={"x": (3,)}, n=3)
    assert set(got.spikes) == {"x"} and got.spikes["x"].shape == (6, 3, 3)
    assert got.labels.dtype == np.int64 and got.labels.tolist() == [3, 1, 4]
    assert got.source.endswith("(T=6, B=3, labels)")
    assert got.to_json() == {"kind": "arrays", "random": False, "description": got.source}
    np.savez(tmp_path / "bad.npz", x=x.swapaxes(0, 1), labels=np.array([1, 2]))
    for n in (None, 1):  # checked against the whole file, not only the first n
        with pytest.raises(ShapeError, match="2 labels for 4 samples"):
            read_input(tmp_path / "bad.npz", input_shapes={"x": (3,)}, n=n)
    np.savez(tmp_path / "float.npz", x=x.swapaxes(0, 1), labels=np.ones(4))
    with pytest.raises(NmcompileError, match=r"labels has dtype float64.*one integer class"):
        read_input(tmp_path / "float.npz")
    with pytest.raises(NmcompileError, match="not events: num_steps and dt_us bin events"):
        read_input(tmp_path / "x.npy", num_steps=6)
    assert read_input(tmp_path / "x.npy", "BTC", default_steps=6).spikes.shape == (6, 4, 3)
    with pytest.raises(NmcompileError, match="no such file"):
        read_input(tmp_path / "missing.npy")
    with pytest.raises(NmcompileError, match=r"a folder.*tonic:NAME:FOLDER"):
        read_input(tmp_path)


def test_the_batch_first_check_still_refuses_what_read_input_returns(tmp_path: Path) -> None:
    g = small(steps=25)
    np.save(tmp_path / "x.npy", np.zeros((4, 25, 3), np.uint8))  # (B, T, 3)
    with pytest.raises(ShapeError, match=r"batch-first.*--layout BTC"):
        nmcompile.run(g, read_input(tmp_path / "x.npy").spikes, backend="float")
    spikes = read_input(tmp_path / "x.npy", "BTC").spikes
    assert nmcompile.run(g, spikes, backend="float").output().shape == (25, 4, 2)


# ---- read_input: events ------------------------------------------------------------------------


def _events_npz(path: Path, **extra: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two samples of a 3x2 sensor, concatenated, split by offsets."""
    a = events((0, 0, 0, 1), (2, 1, 9, 0))
    b = events((1, 0, 50, 0), (1, 1, 60, 1), (2, 0, 70, 1))
    both = np.concatenate([a, b])
    np.savez(path, **{k: both[k] for k in "xytp"}, offsets=np.array([0, 2, 5]),
             labels=np.array([7, 2]), **extra)
    return a, b


def test_an_events_npz_is_binned_to_the_model_input(tmp_path: Path) -> None:
    a, b = _events_npz(tmp_path / "ev.npz")
    want = np.stack([frames(2, (3, 2), (0, 1, 0, 0), (1, 0, 1, 2)),
                     frames(2, (3, 2), (0, 0, 0, 1), (1, 1, 1, 1), (1, 1, 0, 2))], axis=1)
    got = read_input(tmp_path / "ev.npz", input_shapes={"x": (2, 2, 3)}, num_steps=2)
    assert got.kind == "events" and got.labels.tolist() == [7, 2]
    assert np.array_equal(got.spikes, want)  # the sensor came from the input shape (P, H, W)
    assert got.source == f"events {tmp_path / 'ev.npz'} binned to T=2 steps (B=2, sensor " \
                         f"3x2x2, labels)"
    # a flat input takes the frames flattened (p*H*W + y*W + x); it needs the stored sensor
    with pytest.raises(NmcompileError, match=r"no sensor_size stored.*sensor_size=\[W, H, P\]"):
        read_input(tmp_path / "ev.npz", input_shapes={"x": (12,)}, num_steps=2)
    _events_npz(tmp_path / "flat.npz", sensor_size=np.array([3, 2]), num_steps=np.array(2))
    flat = read_input(tmp_path / "flat.npz", input_shapes={"x": (12,)})  # num_steps stored
    assert np.array_equal(flat.spikes, want.reshape(2, 2, 12))
    # the binning: the caller's, else the file's, else the model's recorded num_steps
    assert read_input(tmp_path / "flat.npz", num_steps=5, default_steps=3).spikes.shape[0] == 5
    assert read_input(tmp_path / "flat.npz", default_steps=3).spikes.shape[0] == 2
    assert read_input(tmp_path / "ev.npz", input_shapes={"x": (2, 2, 3)},
                      default_steps=3).spikes.shape[0] == 3
    assert nmcompile.run(small((12,)), flat.spikes, backend="float").output().shape == (2, 2, 2)
    with pytest.raises(ShapeError, match=r"input 'x' has shape \(10,\).*\(2, 2, 3\) or \(12,\)"):
        read_input(tmp_path / "flat.npz", input_shapes={"x": (10,)})
    # a per-event sample index gives the same as offsets, events of a sample in their order
    both = np.concatenate([b, a])
    np.savez(tmp_path / "idx.npz", **{k: both[k] for k in "xytp"},
             sample=np.array([1, 1, 1, 0, 0]), labels=np.array([7, 2]))
    assert np.array_equal(read_input(tmp_path / "idx.npz", input_shapes={"x": (2, 2, 3)},
                                     num_steps=2).spikes, want)
    one = read_input(tmp_path / "flat.npz", n=1)  # no model: frames (T, B, P, H, W)
    assert one.spikes.shape == (2, 1, 2, 2, 3) and one.labels.tolist() == [7]


def test_events_npz_errors(tmp_path: Path) -> None:
    _events_npz(tmp_path / "ev.npz")
    shapes = {"x": (2, 2, 3)}
    with pytest.raises(NmcompileError, match=r"no axes to swap.*drop --layout BTC"):
        read_input(tmp_path / "ev.npz", "BTC", shapes, num_steps=2)
    with pytest.raises(EventError, match="exactly one of num_steps"):
        read_input(tmp_path / "ev.npz", input_shapes=shapes)
    with pytest.raises(NmcompileError, match="event data feeds one input"):
        read_input(tmp_path / "ev.npz", input_shapes={"a": (2, 2, 3), "b": (1,)}, num_steps=2)
    ev = events((0, 0, 0, 1), (2, 1, 9, 0))
    np.savez(tmp_path / "off.npz", **{k: ev[k] for k in "xytp"}, offsets=np.array([0, 3]))
    with pytest.raises(NmcompileError, match=r"offsets must be B \+ 1 non-decreasing"):
        read_input(tmp_path / "off.npz", input_shapes=shapes, num_steps=2)
    np.savez(tmp_path / "out.npz", **{k: ev[k] for k in "xytp"}, sensor_size=np.array([2, 2]))
    with pytest.raises(EventError, match=r"x = 2 at event 1 is outside \[0, 2\)"):
        read_input(tmp_path / "out.npz", num_steps=2)


# ---- tonic -------------------------------------------------------------------------------------


def nmnist_bytes(*rows: tuple[int, int, int, int]) -> bytes:
    """N-MNIST's binary format, 5 bytes an event: x, y, then polarity in bit 7 of byte 2 and a
    23-bit time in microseconds over bytes 2-4 (big-endian). y = 240 marks a time overflow:
    tonic's reader adds 2^13 to every later time stamp."""
    out = bytearray()
    for x, y, t, p in rows:
        out += bytes([x, y, (p << 7) | (t >> 16) & 0x7F, (t >> 8) & 0xFF, t & 0xFF])
    return bytes(out)


OVERFLOW = (0, 240, 0, 0)


@pytest.fixture(scope="module")
def nmnist(tmp_path_factory) -> Path:
    """A folder laid out as tonic's N-MNIST download leaves it: `NMNIST/test.zip` (tonic
    checks only that the archive exists, it does not hash it again) and its extracted
    `NMNIST/Test/<digit>/<id>.bin`, at least 10,000 of them (tonic's check that the split was
    extracted); three hand-made recordings come first in tonic's sorted walk, the rest empty."""
    root = tmp_path_factory.mktemp("data")
    test = root / "NMNIST" / "Test"
    for d in range(10):
        (test / str(d)).mkdir(parents=True)
    (root / "NMNIST" / "test.zip").write_bytes(b"")
    (test / "0" / "00000.bin").write_bytes(nmnist_bytes(
        (0, 0, 0, 1), (33, 33, 1000, 0), (5, 7, 1000, 1), (5, 7, 1001, 1), (10, 20, 3000, 0)))
    (test / "0" / "00001.bin").write_bytes(nmnist_bytes((1, 2, 100, 0), OVERFLOW, (3, 4, 50, 1)))
    (test / "1" / "00002.bin").write_bytes(nmnist_bytes((2, 3, 7, 1)))
    for i in range(3, 10_000):
        (test / str(2 + i % 8) / f"{i:05d}.bin").touch()
    return root


def nmnist_expected() -> np.ndarray:
    """T = 3: sample 0 spans t in [0, 3000] (k = 0, 1, 1, 1, 2; two events share a bin);
    sample 1 spans [100, 50 + 8192] after the overflow (k = 0, 2); sample 2 is one instant."""
    want = np.zeros((3, 3, 2, 34, 34), np.uint8)
    for k, b, p, y, x in ((0, 0, 1, 0, 0), (1, 0, 0, 33, 33), (1, 0, 1, 7, 5), (2, 0, 0, 20, 10),
                          (0, 1, 0, 2, 1), (2, 1, 1, 4, 3), (0, 2, 1, 3, 2)):
        want[k, b, p, y, x] = 1
    return want


@pytest.fixture
def no_network(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("a download was attempted")
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def test_nmnist_is_read_through_tonic(nmnist: Path, no_network) -> None:
    spikes, labels = load_tonic("NMNIST", nmnist, n=3, num_steps=3)
    assert spikes.dtype == np.uint8 and labels.dtype == np.int64
    assert np.array_equal(spikes, nmnist_expected())
    assert labels.tolist() == [0, 0, 1]
    # the same through --input, naming tonic's own NMNIST folder, into a flat model input
    got = read_input(f"tonic:NMNIST:test:{nmnist / 'NMNIST'}", input_shapes={"x": (2312,)},
                     default_steps=3, n=3)  # the model's recorded num_steps
    assert np.array_equal(got.spikes, nmnist_expected().reshape(3, 3, 2312))
    assert got.kind == "tonic" and got.labels.tolist() == [0, 0, 1]
    assert got.source == (f"tonic NMNIST test split in {nmnist / 'NMNIST'} (first 3 of 10000 "
                          f"samples, T=3, sensor 34x34x2)")
    with pytest.raises(EventError, match=r"sample 3: no events.*allow_empty"):
        load_tonic("NMNIST", nmnist, n=4, num_steps=3)
    with pytest.raises(LimitError, match=r"10,000 samples.*--samples"):
        load_tonic("NMNIST", nmnist, num_steps=10_000)  # refused before reading a sample


def test_a_folder_without_the_data_is_refused_without_downloading(nmnist: Path, tmp_path: Path,
                                                                  no_network) -> None:
    with pytest.raises(NmcompileError, match=r"never downloads.*NMNIST/train.zip.*Train"):
        load_tonic("NMNIST", nmnist, train=True, num_steps=3)  # only the test split is there
    with pytest.raises(NmcompileError, match=rf"found no data in {tmp_path}/NMNIST.*test.zip"):
        read_input(f"tonic:NMNIST:{tmp_path}", num_steps=3)
    assert list(tmp_path.iterdir()) == []  # and wrote nothing there
    with pytest.raises(NmcompileError, match=r"never downloads.*DVSGesture"):
        load_tonic("DVSGesture", tmp_path, num_steps=3)  # the generic path: any tonic class
    with pytest.raises(NmcompileError, match=r"no data set 'MNIST'.*NMNIST"):
        load_tonic("MNIST", tmp_path, num_steps=3)
    with pytest.raises(NmcompileError, match="no such folder"):
        load_tonic("NMNIST", tmp_path / "nowhere", num_steps=3)


def test_tonic_specs_parse() -> None:
    assert parse_tonic("tonic:NMNIST:/data") == ("NMNIST", None, "/data")
    assert parse_tonic("tonic:NMNIST:train:/data") == ("NMNIST", "train", "/data")
    assert parse_tonic("tonic:NMNIST:/a:b") == ("NMNIST", None, "/a:b")
    with pytest.raises(NmcompileError, match="tonic:NAME:FOLDER"):
        parse_tonic("tonic:NMNIST")


# ---- through the CLI -------------------------------------------------------------------------


def _flat_model(n_in: int):
    import nmcompile
    from nmcompile.ir import LIF, Dense, Graph, Input, Output

    g = Graph(dt=1e-3)
    g.add_node("x", Input((n_in,)))
    g.add_node("fc", Dense(np.random.default_rng(0).normal(0.5, 0.2, (3, n_in))))
    g.add_node("h", LIF(0.9, 0.5))
    g.add_node("out", Output())
    for a, b in (("x", "fc"), ("fc", "h"), ("h", "out")):
        g.add_edge(a, b)
    return nmcompile, g


def test_the_cli_reads_labels_from_an_npz(tmp_path: Path, capsys) -> None:
    import json

    from nmcompile.cli import main

    nmcompile, g = _flat_model(4)
    nmcompile.save(g, tmp_path / "g.nmc")
    spikes = (np.random.default_rng(1).random((6, 5, 4)) < 0.5).astype(np.uint8)
    labels = np.array([0, 1, 2, 0, 1])
    np.savez(tmp_path / "x.npz", x=spikes, labels=labels)
    assert main(["verify", str(tmp_path / "g.nmc"), "--input", str(tmp_path / "x.npz"),
                 "--json", "--quiet"]) == 0
    info = json.loads(capsys.readouterr().out)
    counts = nmcompile.run(g, spikes).output().sum(axis=0)
    assert info["accuracy"]["float"] == pytest.approx(np.mean(counts.argmax(1) == labels))
    assert info["input"]["random"] is False and "labels" in info["input"]["description"]


def test_the_cli_runs_a_tonic_folder(nmnist: Path, no_network, tmp_path: Path, capsys) -> None:
    import json

    from nmcompile.cli import main

    nmcompile, g = _flat_model(2 * 34 * 34)
    nmcompile.save(g, tmp_path / "g.nmc")
    assert main(["run", str(tmp_path / "g.nmc"), "--input", f"tonic:NMNIST:{nmnist}",
                 "--samples", "3", "--bin-steps", "3", "--json", "--quiet"]) == 0
    info = json.loads(capsys.readouterr().out)
    want = nmcompile.run(g, nmnist_expected().reshape(3, 3, -1)).output()
    assert info["input"]["kind"] == "tonic" and want.sum() > 0
    assert info["outputs"]["out"] == {"kind": "spikes", "shape": [3, 3, 3],
                                      "total": float(want.sum())}
