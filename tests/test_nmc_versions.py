"""Every `.nmc` format version nmcompile ever wrote still loads, to the graph that version's
code built (`tests/data/nmc-v<N>/`, written by `tests/nmc_files.py`), and runs the same."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from nmc_files import NIR, ROOT, graphs

import nmcompile
from nmcompile.ir import Graph
from nmcompile.ir.quantized import QConv2d, QDense, QSparse, int_array

DATA = ROOT / "tests" / "data"
VERSIONS = sorted(DATA.glob("nmc-v*"))


def reduced(graph: Graph) -> Graph:
    """`graph` with each projection's weights' common power of two moved into its exponent:
    the same arithmetic (`(2W @ x) << e == (W @ x) << (e + 1)`). The quantiser has stored a
    mixed-sign Loihi matrix as its 8-bit mantissas m since format 2 was current; files from
    before hold 2m with the exponent one lower. The quantiser's record of its source's digest
    (`metadata.quantization.source`, added for `verify --reference`) is provenance, not
    arithmetic, and files from before it lack it: it is left out of the comparison."""
    g = copy.deepcopy(graph)
    g.metadata.get("quantization", {}).pop("source", None)
    for node in g.nodes.values():
        if isinstance(node, (QDense, QSparse, QConv2d)):
            field = "values" if isinstance(node, QSparse) else "weight"
            w = getattr(node, field).astype(np.int64)
            k = 0
            while w.any() and not (w & 1).any():
                w, k = w >> 1, k + 1
            if k:
                setattr(node, field, int_array(w, field))
                node.weight_exp += k
    return g


def test_every_earlier_version_is_kept() -> None:
    from nmcompile.ir.serialize import VERSION

    # version 1's files were written before the first change; each change adds the previous
    assert [p.name for p in VERSIONS] == [f"nmc-v{v}" for v in range(1, max(VERSION - 1, 1) + 1)]


@pytest.mark.skipif(not NIR.exists(), reason="the workplace's shared fixtures are absent")
@pytest.mark.parametrize("folder", VERSIONS, ids=lambda p: p.name)
def test_committed_files_load_to_the_graphs_their_code_built(folder) -> None:
    for name, graph in graphs().items():
        loaded = nmcompile.load(folder / name)
        assert reduced(loaded) == reduced(graph), (folder.name, name)
        x = (np.random.default_rng(0).random((8, 2, *graph[graph.inputs[0]].shape)) < 0.3)
        a, b = nmcompile.run(loaded, x, record=True), nmcompile.run(graph, x, record=True)
        for layer, spikes in b.spikes.items():
            assert np.array_equal(a.spikes[layer], spikes), (folder.name, name, layer)
