"""The shared helpers of issue 13, point 3: `assemble_outputs` (every target's
`RunResult.outputs`) and unique names (`nmcompile.ir.names`)."""

from __future__ import annotations

import numpy as np

from nmcompile.ir import Graph, Input
from nmcompile.ir.names import UniqueNames, unique_name
from nmcompile.result import assemble_outputs

# two sources, (T=3, batch=1, n=2); "b" reaches the outputs through a delay of 1
A = np.array([[[1, 0]], [[0, 1]], [[1, 1]]], np.uint8)
B = np.array([[[0, 1]], [[1, 1]], [[1, 0]]], np.uint8)
SUM = np.array([[[1, 0]], [[0, 2]], [[2, 2]]])  # A[t] + B[t - 1], zeros before


def test_spiking_sources_give_uint8_sums() -> None:
    out = assemble_outputs({"out": [("a", 0), ("b", 1)]}, {"a": A, "b": B}, {"a", "b"})
    assert out["out"].dtype == np.uint8
    np.testing.assert_array_equal(out["out"], SUM)


def test_a_non_spiking_source_gives_values_in_the_given_dtype() -> None:
    v = np.array([[[-3, 5]], [[7, 0]], [[2, -1]]], np.int64)
    out = assemble_outputs({"o": [("a", 0), ("v", 1)]}, {"a": A, "v": v}, ["a"])
    assert out["o"].dtype == np.int64
    np.testing.assert_array_equal(out["o"], [[[1, 0]], [[-3, 6]], [[8, 1]]])
    f = assemble_outputs({"o": [("v", 2)]}, {"v": v.astype(np.float64) / 2}, [], np.float64)
    assert f["o"].dtype == np.float64
    np.testing.assert_array_equal(f["o"], [[[0, 0]], [[0, 0]], [[-1.5, 2.5]]])


def test_outputs_are_new_arrays_in_source_order() -> None:
    out = assemble_outputs({"y": [("a", 0)], "x": [("b", 0)]}, {"a": A, "b": B}, {"a", "b"})
    assert list(out) == ["y", "x"]
    assert not np.shares_memory(out["y"], A)
    out["y"][:] = 9
    assert A.max() == 1
    np.testing.assert_array_equal(out["x"], B)


def test_a_delay_past_the_run_gives_zeros() -> None:
    out = assemble_outputs({"o": [("a", 5)]}, {"a": A}, {"a"})
    np.testing.assert_array_equal(out["o"], np.zeros_like(A))


def test_unique_name_numbers_with_each_scheme() -> None:
    taken = {"x", "x_1", "x_2", "x#2"}
    assert unique_name("y", taken) == "y"
    assert unique_name("x", taken) == "x_3"  # default: _2, _3, ...
    assert unique_name("x", taken, sep="_", first=1) == "x_3"
    assert unique_name("x", {"x"}, sep="_", first=1) == "x_1"
    assert unique_name("x", taken, sep="#") == "x#3"
    assert taken == {"x", "x_1", "x_2", "x#2"}  # nothing added
    g = Graph()
    g.add_node("in", Input((1,)))
    assert unique_name("in", g, first=1) == "in_1"  # a Graph is a container of names


def test_unique_names_take_what_they_hand_out() -> None:
    names = UniqueNames(["a"], sep="#")
    assert [names("a"), names("a"), names("b"), names("a#2")] == ["a#2", "a#3", "b", "a#2#2"]
    assert "a#3" in names and "c" not in names


def test_unique_names_fold_case_and_skip_reserved_words() -> None:
    names = UniqueNames(key=str.lower, reserved={"wire"})
    assert [names("A"), names("a"), names("a_2"), names("wire"), names("WIRE")] == [
        "A", "a_2", "a_2_2", "wire_2", "WIRE"]
