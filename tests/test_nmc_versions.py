"""Every `.nmc` format version nmcompile ever wrote still loads, to the graph that version's
code built (`tests/data/nmc-v<N>/`, written by `tests/nmc_files.py`), and runs the same."""

from __future__ import annotations

import numpy as np
import pytest
from nmc_files import NIR, ROOT, graphs

import nmcompile

DATA = ROOT / "tests" / "data"
VERSIONS = sorted(DATA.glob("nmc-v*"))


def test_every_earlier_version_is_kept() -> None:
    from nmcompile.ir.serialize import VERSION

    # version 1's files were written before the first change; each change adds the previous
    assert [p.name for p in VERSIONS] == [f"nmc-v{v}" for v in range(1, max(VERSION - 1, 1) + 1)]


@pytest.mark.skipif(not NIR.exists(), reason="the workplace's shared fixtures are absent")
@pytest.mark.parametrize("folder", VERSIONS, ids=lambda p: p.name)
def test_committed_files_load_to_the_graphs_their_code_built(folder) -> None:
    for name, graph in graphs().items():
        loaded = nmcompile.load(folder / name)
        assert loaded == graph, (folder.name, name)
        x = (np.random.default_rng(0).random((8, 2, *graph[graph.inputs[0]].shape)) < 0.3)
        a, b = nmcompile.run(loaded, x, record=True), nmcompile.run(graph, x, record=True)
        for layer, spikes in b.spikes.items():
            assert np.array_equal(a.spikes[layer], spikes), (folder.name, name, layer)
