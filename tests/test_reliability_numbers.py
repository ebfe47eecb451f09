"""Issue 12, defects 3 and 7 and the node-name minor: bounded delays, bounded Lava process
counts, and no bad number (inf, nan, a wrapped integer, a string, a complex or datetime
array, a negative dt) ever runs as silent garbage. Each is a named nmcompile error raised
before anything is built. Every file is made here, in tmp_path.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hygiene import children

import nmcompile
from backends.hdl.limits import CoreLimits
from backends.lava import lowering
from nmcompile.cli import main
from nmcompile.errors import GraphError, LimitError, NmcompileError
from nmcompile.ir import LIF, Dense, Graph, Input, Output
from nmcompile.ir.graph import MAX_DELAY
from nmcompile.ir.quantized import QLIF, QDense, QSparse
from nmcompile.quantization.profiles import PROFILES


def _float_graph(delay: int = 0, beta: float = 0.9) -> Graph:
    g = Graph(dt=1e-3)
    g.add_node("x", Input((4,)))
    g.add_node("fc", Dense(np.arange(12.0).reshape(3, 4) / 10))
    g.add_node("h", LIF(beta=beta))
    g.add_node("o", Output())
    g.add_edge("x", "fc", delay)
    g.add_edge("fc", "h")
    g.add_edge("h", "o")
    return g


def _q_graph(weight=None, delay: int = 0, weight_exp: int = 0) -> Graph:
    g = Graph()
    w = np.ones((2, 4), np.int64) if weight is None else weight
    g.add_node("x", Input((w.shape[1],)))
    g.add_node("w", QDense(w, weight_exp=weight_exp))
    g.add_node("n", QLIF(vth=10))
    g.add_node("o", Output())
    g.add_edge("x", "w", delay)
    g.add_edge("w", "n")
    g.add_edge("n", "o")
    return g


def _edit_json(path: Path, edit) -> Path:
    """Rewrite graph.json of a saved .nmc through `edit(doc)`, keeping arrays.npz."""
    with zipfile.ZipFile(path) as z:
        doc, npz = json.loads(z.read("graph.json")), z.read("arrays.npz")
    edit(doc)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("graph.json", json.dumps(doc))
        z.writestr("arrays.npz", npz)
    return path


def _cli_error(capsys, argv: list[str]) -> str:
    """Run the CLI in-process; it must exit 1 with exactly one line on stderr."""
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("nmcompile: error: "), err
    return err


# -- defect 3: bounded delays ---------------------------------------------------------------

def test_an_edge_delay_beyond_2_16_is_refused_by_add_edge_and_validate() -> None:
    g = _float_graph(delay=MAX_DELAY)  # 2^16 itself is allowed
    assert MAX_DELAY == 2**16 and g.edges()[0][2] == 2**16
    with pytest.raises(LimitError, match=r"delay 65,537 steps.*MAX_DELAY = 65,536"):
        _float_graph(delay=2**16 + 1)
    g.nx.edges["x", "fc"]["delay"] = 10**12  # set behind add_edge's back
    with pytest.raises(LimitError, match=r"'x' -> 'fc'.*1,000,000,000,000"):
        g.validate()


def test_a_nmc_with_a_delay_beyond_2_16_is_refused_on_load(tmp_path, capsys) -> None:
    path = nmcompile.save(_float_graph(delay=1), tmp_path / "g.nmc")

    def stretch(doc):
        doc["edges"][0]["delay"] = 2**16 + 1

    _edit_json(path, stretch)
    with pytest.raises(LimitError, match="MAX_DELAY"):
        nmcompile.load(path)
    np.save(tmp_path / "x.npy", np.zeros((2, 1, 4)))
    assert "65,537" in _cli_error(capsys, ["run", str(path), "--input", str(tmp_path / "x.npy")])


def test_quantize_refuses_a_delay_over_the_profiles_max_delay() -> None:
    assert PROFILES["loihi2"].max_delay == 4095
    with pytest.raises(LimitError, match=r"'x' -> 'fc'.*5,000 steps.*max_delay=4095"):
        nmcompile.quantize(_float_graph(delay=5000), "loihi2")
    longer = dataclasses.replace(PROFILES["loihi2"], name="long", max_delay=5000)
    q = nmcompile.quantize(_float_graph(delay=5000), longer)
    assert [d for u, _, d in q.edges() if u == "x"] == [5000]
    # The Verilog core's delay ring is sized by the same field, whatever chip sizes the core.
    assert CoreLimits.of("fpga-mesh", longer).max_delay == 5000
    with pytest.raises(NmcompileError, match="max_delay"):
        dataclasses.replace(PROFILES["loihi2"], max_delay=2**17)


def test_lava_refuses_more_than_128_processes_before_any_worker_starts(tmp_path) -> None:
    g = _q_graph(delay=64 * 130)  # about 130 delay lines of 64 steps
    x = np.zeros((2, 1, 4), np.int64)
    before = children()
    start = time.perf_counter()
    with pytest.raises(LimitError, match=r"needs 13\d Lava processes.*max_processes=128"):
        nmcompile.run(g, x, backend="lava")
    with pytest.raises(LimitError, match=r"max_processes=100;"):
        nmcompile.run(g, x, backend="lava", max_processes=100)
    assert time.perf_counter() - start < 2.0  # nothing started: no Lava import, no worker
    assert children() == before
    # The option lets the same graph through the lowering, which counted what it builds.
    plan = lowering.lower(g, max_processes=200)
    assert 128 < len(plan.procs) + len(plan.layers) + len(plan.inputs) <= 140
    # The same bound and option for the Lava program that `compile` writes.
    with pytest.raises(LimitError, match="max_processes=128"):
        nmcompile.compile(g, tmp_path / "lava", "lava")
    assert not (tmp_path / "lava").exists()
    out = nmcompile.compile(g, tmp_path / "lava", "lava", max_processes=200)
    assert (out / "network.py").exists()


# -- defect 7: bad numbers ------------------------------------------------------------------

def test_an_inf_spike_is_refused_not_cast(tmp_path, capsys) -> None:
    q = _q_graph()
    x = np.zeros((2, 1, 4))
    x[1, 0, 2] = np.inf
    with pytest.raises(NmcompileError, match=r"input 'x'.*non-finite"):
        nmcompile.run(q, x)
    model = nmcompile.save(q, tmp_path / "q.nmc")
    np.save(tmp_path / "x.npy", x)
    err = _cli_error(capsys, ["run", str(model), "--input", str(tmp_path / "x.npy")])
    assert "'x'" in err and "non-finite" in err


def test_spikes_that_would_wrap_in_int64_are_refused() -> None:
    q = _q_graph()
    for x in (np.full((2, 1, 4), 2**63, np.uint64), np.full((2, 1, 4), -(2**63), np.int64)):
        with pytest.raises(LimitError, match=r"input 'x'.*2\^53"):
            nmcompile.run(q, x)
    with pytest.raises(NmcompileError, match=r"input 'x'.*non-integer"):
        nmcompile.run(q, np.full((2, 1, 4), 0.5))


def test_quantised_mantissas_and_exponents_are_bounded() -> None:
    for bad in (np.full((2, 4), 2**62), np.full((2, 4), np.iinfo(np.uint64).max, np.uint64)):
        with pytest.raises(GraphError, match=r"'weight' must lie in \[-65536, 65536\]"):
            QDense(bad)
    with pytest.raises(GraphError, match="'values' must lie in"):
        QSparse([0], [0], [2**40], (1, 1))
    with pytest.raises(GraphError, match=r"'weight' holds non-finite"):
        QDense(np.array([[np.inf]]))
    with pytest.raises(GraphError, match=r"'weight_exp' must lie in \[-16, 15\]"):
        QDense(np.ones((1, 1)), weight_exp=40)
    with pytest.raises(GraphError, match="'weight_exp' must be an integer"):
        QDense(np.ones((1, 1)), weight_exp=2.5)


def test_the_emulator_refuses_sums_its_int64_state_cannot_hold() -> None:
    # Legal mantissas and exponent, but 8 graded inputs near 2^23 reach 2^63 after << 6:
    # refused naming the layer, instead of wrapping with no unsafe update counted.
    q = _q_graph(weight=np.full((1, 8), 2**16), weight_exp=15)
    with pytest.raises(LimitError, match=r"neuron layer 'n'.*2\^62"):
        nmcompile.run(q, np.full((1, 1, 8), 2**23 - 1, np.int64))
    r = nmcompile.run(q, np.full((1, 1, 8), 1, np.int64))  # spikes: well inside
    assert r.counters["unsafe_updates"]["n"] > 0  # 2^40 into u: counted, not hidden


def test_the_float_interpreter_refuses_nan_and_inf() -> None:
    with pytest.raises(GraphError, match="'weight' holds non-finite"):
        Dense(np.array([[1.0, np.nan]]))
    with pytest.raises(GraphError, match="'bias' holds non-finite"):
        Dense(np.ones((1, 2)), bias=np.array([np.inf]))
    with pytest.raises(GraphError, match="'threshold' holds non-finite"):
        LIF(beta=0.9, threshold=np.inf)
    with pytest.raises(NmcompileError, match=r"input 'x'.*non-finite"):
        nmcompile.run(_float_graph(), np.full((2, 1, 4), np.nan))


NON_NUMERIC = {
    "complex": np.ones((3, 4), np.complex128),
    "datetime": np.zeros((3, 4), "datetime64[s]"),
    "timedelta": np.zeros((3, 4), "timedelta64[s]"),
    "str": np.full((3, 4), "1"),
    "bytes": np.full((3, 4), b"1"),
    "object": np.full((3, 4), 1.0, object),
}


@pytest.mark.parametrize("kind", NON_NUMERIC)
def test_non_numeric_arrays_are_refused_by_name(kind: str) -> None:
    arr = NON_NUMERIC[kind]
    dtype = re.escape(str(arr.dtype))
    with pytest.raises(GraphError, match=rf"parameter 'weight' must be numeric, got dtype "
                                         rf"{dtype}"):
        Dense(arr)
    with pytest.raises(NmcompileError, match=rf"input 'x': expected a numeric array.*{dtype}"):
        nmcompile.run(_float_graph(), arr[:2].reshape(2, 1, 4))


def test_a_string_where_a_number_belongs_names_the_node(tmp_path, capsys) -> None:
    with pytest.raises(GraphError, match=r"'beta' must be a number, got the string '0.9'"):
        LIF(beta="0.9")
    path = nmcompile.save(_float_graph(), tmp_path / "g.nmc")

    def stringify(doc):
        doc["nodes"][2]["params"]["beta"] = "0.9"

    _edit_json(path, stringify)
    with pytest.raises(GraphError, match=r"node 'h' \(LIF\): parameter 'beta'.*'0.9'"):
        nmcompile.load(path)
    np.save(tmp_path / "x.npy", np.zeros((2, 1, 4)))
    err = _cli_error(capsys, ["run", str(path), "--input", str(tmp_path / "x.npy")])
    assert "node 'h'" in err and "'beta'" in err


@pytest.mark.parametrize("dt", [-1, 0, float("nan"), float("inf"), "0.001", True])
def test_dt_must_be_finite_and_positive(tmp_path, dt) -> None:
    with pytest.raises(GraphError, match="dt must be"):
        Graph(dt=dt)
    path = nmcompile.save(_float_graph(), tmp_path / "g.nmc")

    def set_dt(doc):
        doc["dt"] = dt

    if isinstance(dt, float) and not np.isfinite(dt):
        return  # JSON has no nan or inf; Graph(dt=...) above covers them
    _edit_json(path, set_dt)
    with pytest.raises(GraphError, match="dt must be"):
        nmcompile.load(path)


def test_none_and_positive_dt_are_kept() -> None:
    assert Graph().dt is None and Graph(dt=1).dt == 1.0 and Graph(dt=np.float32(0.5)).dt == 0.5


# -- minor: node names ----------------------------------------------------------------------

@pytest.mark.parametrize("name", ["a\n", "a\nb", "", "1a", "a" * 129])
def test_a_node_name_must_match_entirely(name: str) -> None:
    with pytest.raises(GraphError, match="invalid node name"):
        Graph().add_node(name, Input((1,)))
