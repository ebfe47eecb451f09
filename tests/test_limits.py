"""The one memory budget (`nmcompile.limits`): its default, its overrides, its message."""

from __future__ import annotations

import numpy as np
import pytest

import nmcompile
from nmcompile import limits
from nmcompile.errors import LimitError
from nmcompile.ir import IF, Graph, Input, Output


def test_the_default_is_fixed_and_the_overrides_win(monkeypatch) -> None:
    monkeypatch.delenv(limits.ENV, raising=False)
    half = limits.total_memory() // 2
    assert limits.budget() == min(8 << 30, half) > 0
    monkeypatch.setenv(limits.ENV, "3G")
    assert limits.budget() == 3 << 30
    assert limits.budget(max_bytes=1000) == 1000  # the argument wins over the variable
    assert [limits.parse_bytes(t) for t in ("512", "2K", "1.5M", "4GiB", "1T")] == [
        512, 2048, 3 << 19, 4 << 30, 1 << 40]
    for bad in ("lots", "0", "-1G"):
        with pytest.raises(LimitError, match=r"budget|number of bytes"):
            limits.parse_bytes(bad)


def _wide_if() -> Graph:
    """1000 inputs -> 1000 IF neurons -> output: a run's activity is what it holds."""
    g = Graph()
    g.add_node("x", Input((1000,)))
    g.add_node("n", IF())
    g.add_node("o", Output())
    g.add_edge("x", "n")
    g.add_edge("n", "o")
    return g


def test_a_step_over_the_budget_names_itself_the_size_and_the_override(monkeypatch) -> None:
    monkeypatch.setenv(limits.ENV, "1M")
    with pytest.raises(LimitError, match=r"folding 'p' would take 2\.0 TiB \(2,199,023,255,552 "
                       r"bytes\), more than the memory budget of 1\.0 MiB; make the layer "
                       r"smaller, or raise the budget with NMCOMPILE_MAX_BYTES"):
        limits.check_bytes(1 << 41, "folding 'p'")
    g = _wide_if()
    x = np.zeros((100, 2, 1000))
    with pytest.raises(LimitError, match="running 100 steps of batch 2"):
        nmcompile.run(g, x)  # 1.6 MB of activity: over the budget, refused before running
    monkeypatch.setenv(limits.ENV, "1G")
    assert nmcompile.run(g, x).output().shape == (100, 2, 1000)


@pytest.mark.parametrize("quantized", [False, True])
def test_a_run_takes_its_own_budget(monkeypatch, quantized: bool) -> None:
    monkeypatch.setenv(limits.ENV, "1G")
    g = _wide_if()
    g = nmcompile.quantize(g) if quantized else g
    x = np.zeros((100, 2, 1000))
    with pytest.raises(LimitError, match=r"running 100 steps of batch 2.*budget of 1\.0 MiB"):
        nmcompile.run(g, x, max_bytes="1M")
    assert limits.budget() == 1 << 30  # the call's budget ends with the call
    with limits.within("1M"):
        assert limits.budget() == 1 << 20 and limits.budget("2M") == 2 << 20
    assert nmcompile.run(g, x, max_bytes="1G").output().shape == (100, 2, 1000)
