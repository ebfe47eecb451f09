"""The graph IR: node types, shapes, validation errors, delays and cycles, the .nmc format."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

import nmcompile
from nmcompile.errors import FormatError, GraphError, LimitError, ShapeError
from nmcompile.ir import (
    ALIF,
    IF,
    LI,
    LIF,
    NODE_TYPES,
    AvgPool2d,
    Conv2d,
    Dense,
    Flatten,
    Graph,
    Input,
    Output,
    Scale,
    Sparse,
    SumPool2d,
    serialize,
)


def every_node_graph(seed: int = 0) -> Graph:
    """A graph that uses every node type once, with delays and a recurrent cycle."""
    rng = np.random.default_rng(seed)
    g = Graph(dt=1e-3, metadata={"dataset": {"name": "random", "seed": seed}})
    g.add_node("img", Input((2, 8, 8)))
    g.add_node("conv", Conv2d(rng.normal(size=(4, 1, 3, 3)), rng.normal(size=4), stride=1,
                              padding=1, dilation=1, groups=2))
    g.add_node("lif", LIF(beta=rng.uniform(0.5, 1, (4, 1, 1)), threshold=0.8, alpha=0.3,
                          reset="subtract"))
    g.add_node("sum", SumPool2d(2))
    g.add_node("if", IF(threshold=1.5, bias=0.01))
    g.add_node("avg", AvgPool2d(2, padding=1))
    g.add_node("flat", Flatten())
    g.add_node("scale", Scale(rng.uniform(0.5, 2, 36)))
    g.add_node("fc", Dense(rng.normal(size=(10, 36))))
    g.add_node("alif", ALIF(beta=0.9, threshold=1.0, rho=0.95, adapt_step=0.2))
    rows, cols = np.nonzero(rng.random((10, 10)) < 0.5)
    g.add_node("rec", Sparse(rows, cols, rng.normal(size=rows.size) * 0.3, (10, 10)))
    g.add_node("li", LI(beta=0.8, alpha=0.5))
    g.add_node("spikes", Output())
    g.add_node("volts", Output())
    for u, v, d in [("img", "conv", 0), ("conv", "lif", 0), ("lif", "sum", 0), ("sum", "if", 2),
                    ("if", "avg", 0), ("avg", "flat", 0), ("flat", "scale", 0),
                    ("scale", "fc", 0), ("fc", "alif", 1), ("alif", "rec", 1),
                    ("rec", "alif", 0), ("alif", "li", 0), ("alif", "spikes", 0),
                    ("li", "volts", 0)]:
        g.add_edge(u, v, d)
    return g


def test_every_node_type_is_covered_and_shapes_infer() -> None:
    g = every_node_graph()
    used = {type(n).__name__ for n in g.nodes.values()}
    floats = {name for name, cls in NODE_TYPES.items() if not cls.quantized}
    assert used == floats  # this graph exercises every float node type
    shapes = g.validate()
    assert shapes["conv"] == (4, 8, 8)
    assert shapes["sum"] == (4, 4, 4)
    assert shapes["avg"] == (4, 3, 3)  # (4 + 2*1 - 2) // 2 + 1
    assert shapes["flat"] == (36,)
    assert shapes["alif"] == shapes["rec"] == (10,)
    assert shapes["volts"] == (10,)


def test_schedule_is_deterministic_and_respects_instant_edges() -> None:
    g = every_node_graph()
    order = g.schedule()
    pos = {n: i for i, n in enumerate(order)}
    for u, v, d in g.edges():
        if d == 0:
            assert pos[u] < pos[v]
    # the same graph built in another order schedules identically
    h = Graph(dt=g.dt, metadata=g.metadata)
    for name in reversed(list(g.nodes)):
        h.add_node(name, g[name])
    for u, v, d in reversed(g.edges()):
        h.add_edge(u, v, d)
    assert h.schedule() == order
    assert h == g


def test_zero_delay_cycle_is_named() -> None:
    g = Graph()
    g.add_node("x", Input((3,)))
    g.add_node("a", LIF(beta=0.9))
    g.add_node("w", Dense(np.eye(3)))
    g.add_node("o", Output())
    g.add_edge("x", "a")
    g.add_edge("a", "w", 0)
    g.add_edge("w", "a", 0)
    g.add_edge("a", "o")
    with pytest.raises(GraphError, match=r"cycle with total delay 0: .*a -> w -> a|w -> a -> w"):
        g.validate()
    g.nx.edges["a", "w"]["delay"] = 1
    assert g.validate()["w"] == (3,)


@pytest.mark.parametrize("bad, message", [
    (lambda g: g.add_edge("x", "nope"), "no node named 'nope'"),
    (lambda g: g.add_edge("x", "fc", -1), "delay must be an integer >= 0"),
    (lambda g: g.add_edge("x", "fc", 1.5), "delay must be an integer >= 0"),
    (lambda g: g.add_node("fc", LIF(beta=0.5)), "already exists"),
    (lambda g: g.add_node("1bad name", LIF(beta=0.5)), "invalid node name"),
])
def test_building_errors(bad, message) -> None:
    g = Graph()
    g.add_node("x", Input((4,)))
    g.add_node("fc", Dense(np.ones((2, 4))))
    with pytest.raises(GraphError, match=message):
        bad(g)


def _chain(*nodes, shape=(4,)) -> Graph:
    g = Graph()
    g.add_node("x", Input(shape))
    prev = "x"
    for i, node in enumerate(nodes):
        g.add_node(f"n{i}", node)
        g.add_edge(prev, f"n{i}")
        prev = f"n{i}"
    g.add_node("out", Output())
    g.add_edge(prev, "out")
    return g


@pytest.mark.parametrize("nodes, shape, message", [
    ((Dense(np.ones((2, 5))),), (4,), r"'n0' \(Dense\) expects an input of 5 values"),
    ((Conv2d(np.ones((2, 3, 3, 3))),), (2, 8, 8), r"'n0' \(Conv2d\) expects input"),
    ((Conv2d(np.ones((2, 1, 9, 9))),), (1, 4, 4), "does not fit"),
    ((SumPool2d(2),), (4,), "expects input"),
    ((Flatten(2),), (3, 4), "do not fit"),
    ((LIF(beta=np.ones(3)),), (4,), r"'n0': parameter 'beta' has shape \(3,\)"),
    ((Scale(np.ones(5)),), (4,), "'scale'"),
])
def test_shape_errors_name_the_node(nodes, shape, message) -> None:
    with pytest.raises(ShapeError, match=message):
        _chain(*nodes, shape=shape).validate()


def test_mismatched_sum_is_an_error() -> None:
    g = Graph()
    g.add_node("a", Input((3,)))
    g.add_node("b", Input((4,)))
    g.add_node("lif", LIF(beta=0.9))
    g.add_node("o", Output())
    g.add_edge("a", "lif")
    g.add_edge("b", "lif")
    g.add_edge("lif", "o")
    with pytest.raises(ShapeError, match="'lif' sums inputs of different shapes"):
        g.validate()


@pytest.mark.parametrize("make, message", [
    (lambda: LIF(beta=1.5), "must lie in"),
    (lambda: LIF(beta=0.5, reset="hold"), "reset must be one of"),
    (lambda: Dense(np.ones(3)), "2 dimensions"),
    (lambda: Conv2d(np.ones((3, 1, 2, 2)), groups=2), "divisible"),
    (lambda: Input(()), "non-empty"),
])
def test_parameter_errors(make, message) -> None:
    with pytest.raises(GraphError, match=message):
        make()


def test_missing_ports_are_errors() -> None:
    g = Graph()
    g.add_node("x", Input((2,)))
    with pytest.raises(GraphError, match="no Output"):
        g.validate()


def test_save_load_round_trip_is_exact(tmp_path) -> None:
    g = every_node_graph(3)
    path = nmcompile.save(g, tmp_path / "net.nmc")
    h = nmcompile.load(path)
    assert h == g
    assert h.dt == g.dt and h.metadata == g.metadata
    for name in g:
        for k, v in g[name].params().items():
            w = h[name].params()[k]
            assert type(v) is type(w)
            if isinstance(v, np.ndarray):
                assert v.dtype == w.dtype and np.array_equal(v, w)
    # equal graphs run identically
    x = (np.random.default_rng(0).random((6, 2, 2, 8, 8)) < 0.5).astype(np.int8)
    a, b = nmcompile.run(g, x), nmcompile.run(h, x)
    assert all(np.array_equal(a.outputs[k], b.outputs[k]) for k in a.outputs)
    # a changed value breaks equality
    h["fc"].weight[0, 0] += 1e-12
    assert h != g
    # nothing is left behind besides the file
    assert [p.name for p in tmp_path.iterdir()] == ["net.nmc"]


def test_file_contains_only_json_and_npz(tmp_path) -> None:
    path = nmcompile.save(every_node_graph(), tmp_path / "net.nmc")
    with zipfile.ZipFile(path) as z:
        assert sorted(z.namelist()) == ["arrays.npz", "graph.json"]
        doc = json.loads(z.read("graph.json"))
    assert doc["format"] == "nmcompile-graph" and doc["version"] == serialize.VERSION
    assert {e["delay"] for e in doc["edges"]} == {0, 1, 2}


def _write_zip(path, files: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)


def test_hostile_files_are_refused(tmp_path) -> None:
    good = tmp_path / "good.nmc"
    nmcompile.save(every_node_graph(), good)
    with zipfile.ZipFile(good) as z:
        doc, npz = json.loads(z.read("graph.json")), z.read("arrays.npz")
    # a pickled object array inside arrays.npz
    buf = io.BytesIO()
    np.savez(buf, a0=np.array([{"x": 1}], dtype=object))
    _write_zip(tmp_path / "pickle.nmc", {"graph.json": json.dumps(doc).encode(),
                                         "arrays.npz": buf.getvalue()})
    with pytest.raises(FormatError, match="dtype object are not read"):
        nmcompile.load(tmp_path / "pickle.nmc")
    # a newer format version
    _write_zip(tmp_path / "v9.nmc", {"graph.json": json.dumps({**doc, "version": 9}).encode(),
                                     "arrays.npz": npz})
    with pytest.raises(FormatError, match="version 9"):
        nmcompile.load(tmp_path / "v9.nmc")
    # an unknown node type
    bad = {**doc, "nodes": [{**doc["nodes"][0], "type": "os.system"}, *doc["nodes"][1:]]}
    _write_zip(tmp_path / "type.nmc", {"graph.json": json.dumps(bad).encode(), "arrays.npz": npz})
    with pytest.raises(FormatError, match=r"unknown type 'os\.system'"):
        nmcompile.load(tmp_path / "type.nmc")
    # a declared size over the limit is refused before decompressing
    with pytest.raises(LimitError, match="more than the limit"):
        nmcompile.load(good, max_bytes=100)
    # not a zip at all
    (tmp_path / "junk.nmc").write_bytes(b"not a zip")
    with pytest.raises(FormatError, match=r"not a valid \.nmc"):
        nmcompile.load(tmp_path / "junk.nmc")
    with pytest.raises(FormatError, match="no such file"):
        nmcompile.load(tmp_path / "missing.nmc")
