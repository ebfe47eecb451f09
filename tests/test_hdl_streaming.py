"""The Verilog program's synapse memories are made block by block while written (issue 14):
the `.hex` files equal a straightforward construction from the whole unrolled lists, and a
convolution of about two million synapses is built and streamed in a few megabytes."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from backends.hdl import program as program_mod
from backends.hdl.hexfiles import write_memories
from backends.hdl.limits import CoreLimits
from backends.hdl.program import build_program, synapse_words
from nmcompile.ir import Graph, Input, Output
from nmcompile.ir.quantized import QLIF, QConv2d, QDense, QSparse
from nmcompile.ir.synapses import conv_output_hw, conv_synapses


def mixed_graph() -> Graph:
    """x -conv-> c, then c -dense-> o and c -sparse-> o: two list projections and a dense
    one, so the layout (lists first) and the common power of two (4 for the conv) show."""
    rng = np.random.default_rng(0)
    g = Graph(metadata={"quantization": {"profile": "loihi2"}})
    g.add_node("x", Input((4, 9, 9)))
    g.add_node("conv", QConv2d(4 * rng.integers(-30, 30, (6, 2, 3, 3)), 0, (2, 1), (1, 2),
                               (1, 2), 2))
    g.add_node("c", QLIF(vth=40))
    n_c = 6 * 5 * 9  # (6, 5, 9): stride (2, 1), padding (1, 2), dilation (1, 2)
    g.add_node("fc", QDense(rng.integers(-100, 100, (5, n_c))))
    rows, cols = rng.integers(0, 5, 300), rng.integers(0, n_c, 300)
    g.add_node("sp", QSparse(rows, cols, 2 * rng.integers(-50, 50, 300), (5, n_c)))
    g.add_node("o", QLIF(vth=60))
    g.add_node("out", Output())
    for a, b in (("x", "conv"), ("conv", "c"), ("c", "fc"), ("fc", "o"), ("c", "sp"),
                 ("sp", "o"), ("o", "out")):
        g.add_edge(a, b)
    return g


def by_source(src, dst, w, n_src):
    """(targets, weights, lengths): the synapses grouped by source, each source's in the
    order listed."""
    order = np.argsort(src, kind="stable")
    return dst[order], w[order], np.bincount(src, minlength=n_src)


def shifted(w: np.ndarray) -> np.ndarray:
    nz = np.abs(w[w != 0])
    shift = 0 if nz.size == 0 else min(int(np.bitwise_and(nz, -nz).min()).bit_length() - 1, 8)
    return w >> shift


def reference_memories(g: Graph) -> dict[str, np.ndarray]:
    """The four synapse memories from the whole lists: conv, then sparse (list projections,
    in projection order), then the dense rows, whose targets are implied."""
    conv, fc, sp = g["conv"], g["fc"], g["sp"]
    geometry = (conv.stride, conv.padding, conv.dilation)
    in_shape = (4, 9, 9)
    out_shape = (6, *conv_output_hw(in_shape[1:], conv.weight.shape[2:], *geometry))
    src, dst, w = conv_synapses(conv.weight.astype(np.int64), in_shape, out_shape, *geometry,
                                conv.groups)
    lists = {"conv": by_source(src, dst, w, 4 * 81),
             "sp": by_source(sp.cols.astype(np.int64), sp.rows.astype(np.int64),
                             sp.values.astype(np.int64), fc.weight.shape[1])}
    n_out, n_in = fc.weight.shape
    dense = by_source(np.tile(np.arange(n_in), n_out), np.repeat(np.arange(n_out), n_in),
                      fc.weight.astype(np.int64).ravel(), n_in)
    base = {"conv": 0, "sp": len(lists["conv"][1]),
            "fc": len(lists["conv"][1]) + len(lists["sp"][1])}
    rows = {k: v[2] for k, v in lists.items()} | {"fc": dense[2]}
    # rows in projection order: c's projection, then o's (fc before sp, as the edges go)
    order = ["conv", "fc", "sp"]
    return {
        "weights": np.concatenate([shifted(lists["conv"][1]), shifted(lists["sp"][1]),
                                   shifted(dense[1])]),
        "targets": np.concatenate([lists["conv"][0], lists["sp"][0]]),
        "row_start": np.concatenate([base[k] + np.cumsum(rows[k]) - rows[k] for k in order]),
        "row_len": np.concatenate([rows[k] for k in order]),
    }


@pytest.mark.parametrize("chunk", [1 << 16, 20, 1])
def test_synapse_hex_files_equal_the_whole_list_construction(chunk, monkeypatch, tmp_path: Path
                                                              ) -> None:
    # small blocks: sources one or a few at a time, so block boundaries fall everywhere
    monkeypatch.setattr(program_mod, "CHUNK", chunk)
    g = mixed_graph()
    prog = build_program(g)
    widths = {"weights": ("WW", "W_DEPTH"), "targets": ("IW", "T_DEPTH"),
              "row_start": ("WAW", "ROW_DEPTH"), "row_len": ("LENW", "ROW_DEPTH")}
    write_memories(prog, prog.params, tmp_path)
    for name, want in reference_memories(g).items():
        width, depth = (prog.params[k] for k in widths[name])
        digits = (width + 3) // 4
        words = [*(int(v) & ((1 << width) - 1) for v in want), *[0] * (depth - len(want))]
        assert (tmp_path / f"{name}.hex").read_text() == "".join(
            f"{v:0{digits}x}\n" for v in words), name
    assert [p.exp for p in prog.projections] == [2, 0, 1]  # conv x4, dense odd, sparse x2


def test_a_two_million_synapse_convolution_is_built_in_bounded_memory() -> None:
    rng = np.random.default_rng(5)
    g = Graph(metadata={"quantization": {"profile": "loihi2"}})
    g.add_node("x", Input((16, 32, 32)))
    g.add_node("conv", QConv2d(rng.integers(-100, 100, (16, 16, 3, 3)), 0, 1, 1))
    g.add_node("c", QLIF(vth=50))
    g.add_node("out", Output())
    for a, b in (("x", "conv"), ("conv", "c"), ("c", "out")):
        g.add_edge(a, b)
    limits = CoreLimits("big", 1 << 20, 1 << 24, 9)
    tracemalloc.start()
    try:
        prog = build_program(g, limits=limits)
        n = {name: sum(len(block) for block in synapse_words(prog, name))
             for name in ("weights", "targets")}  # what write_memories formats, block by block
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    synapses = 16 * 16 * 94 * 94
    assert n == {"weights": synapses, "targets": synapses} == {
        "weights": prog.params["W_DEPTH"], "targets": prog.params["T_DEPTH"]}
    whole = 2 * 8 * synapses  # the int64 targets and weights as two whole arrays: 36 MB
    assert peak < whole / 4, f"peak {peak / 1e6:.1f} MB"  # measured: about 5 MB
