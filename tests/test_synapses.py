"""nmcompile.ir.synapses against brute force: convolutions unrolled by explicit loops over
every (output, input channel, tap), and fan-outs counted entry by entry."""

from __future__ import annotations

import numpy as np
import pytest

from nmcompile.ir import synapses as syn


def brute_conv(weight, in_shape, stride, padding, dilation, groups):
    """(out_shape, [(src, dst, weight)] in kernel order), by loops."""
    c_out, cg, kh, kw = weight.shape
    _, h, w = in_shape
    ho = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    wo = (w + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    found = []
    for o in range(c_out):
        for c in range(cg):
            for k in range(kh):
                for m in range(kw):
                    for y in range(ho):
                        for x in range(wo):
                            iy = y * stride[0] - padding[0] + k * dilation[0]
                            ix = x * stride[1] - padding[1] + m * dilation[1]
                            if 0 <= iy < h and 0 <= ix < w:
                                ch = o // (c_out // groups) * cg + c
                                found.append(((ch * h + iy) * w + ix, (o * ho + y) * wo + x,
                                              int(weight[o, c, k, m])))
    return (c_out, ho, wo), found


def random_conv(seed: int):
    rng = np.random.default_rng(seed)
    groups = int(rng.integers(1, 3))
    cg, per_group = (int(v) for v in rng.integers(1, 3, 2))
    kh, kw = (int(v) for v in rng.integers(1, 4, 2))
    stride = tuple(int(v) for v in rng.integers(1, 3, 2))
    padding = tuple(int(v) for v in rng.integers(0, 3, 2))
    dilation = tuple(int(v) for v in rng.integers(1, 3, 2))
    in_shape = (groups * cg, int(rng.integers(5, 8)), int(rng.integers(5, 8)))
    weight = rng.integers(-2, 3, (groups * per_group, cg, kh, kw))  # some zeros
    return weight, in_shape, stride, padding, dilation, groups


@pytest.mark.parametrize("seed", range(8))
def test_a_convolution_unrolls_as_by_loops(seed: int) -> None:
    weight, in_shape, stride, padding, dilation, groups = random_conv(seed)
    geometry = (stride, padding, dilation)
    out_shape, found = brute_conv(weight, in_shape, *geometry, groups)
    assert syn.conv_output_hw(in_shape[1:], weight.shape[2:], *geometry) == out_shape[1:]
    src, dst, w = syn.conv_synapses(weight, in_shape, out_shape, *geometry, groups)
    assert list(zip(src.tolist(), dst.tolist(), w.tolist(), strict=True)) == found
    by_out = syn.conv_synapses(weight, in_shape, out_shape, *geometry, groups, order="output")
    by_out = list(zip(*(a.tolist() for a in by_out), strict=True))
    assert sorted(by_out) == sorted(found)
    assert [d for _, d, _ in by_out] == sorted(d for _, d, _ in found)
    n_in, n_out = int(np.prod(in_shape)), int(np.prod(out_shape))
    assert syn.window_pairs(in_shape[1:], out_shape[1:], weight.shape[2:], *geometry) * \
        weight.shape[0] * weight.shape[1] == len(found)
    fan = np.bincount([s for s, _, _ in found], minlength=n_in)
    nz = np.bincount([s for s, _, v in found if v], minlength=n_in)
    into = np.bincount([d for _, d, _ in found], minlength=n_out)
    assert np.array_equal(syn.conv_fanout(weight, in_shape, out_shape, *geometry, groups), fan)
    assert np.array_equal(syn.conv_fanout(weight, in_shape, out_shape, *geometry, groups,
                                          nonzero=True), nz)
    assert np.array_equal(syn.conv_fanin(weight, in_shape, out_shape, *geometry, groups), into)
    lists = syn.source_lists(n_in, src, dst, w)
    for i, (d, v) in enumerate(lists):
        assert list(zip(d.tolist(), v.tolist(), strict=True)) == \
            [(b, c) for a, b, c in found if a == i]
    for first, stop in ((0, n_in), (0, 1), (n_in // 3, n_in // 2 + 1), (n_in - 1, n_in)):
        d, v = syn.conv_source_synapses(weight, in_shape, out_shape, *geometry, groups,
                                        first, stop)
        assert list(zip(d.tolist(), v.tolist(), strict=True)) == \
            [(b, c) for i in range(first, stop) for a, b, c in found if a == i]


def test_axis_taps_mark_what_some_output_reads() -> None:
    size, out, kernel, stride, pad, dil = 7, 3, 3, 2, 1, 2
    want = np.zeros((kernel, size), np.int64)
    for o in range(out):
        for k in range(kernel):
            if 0 <= o * stride - pad + k * dil < size:
                want[k, o * stride - pad + k * dil] = 1
    assert np.array_equal(syn.axis_taps(size, out, kernel, stride, pad, dil), want)
    assert syn.conv_output_size(size, kernel, stride, pad, dil) == 3


def test_dense_and_sparse_fanout_count_entry_by_entry() -> None:
    rng = np.random.default_rng(3)
    w = rng.integers(-1, 2, (4, 6))
    assert syn.matrix_fanout(w).tolist() == [4] * 6
    assert syn.matrix_fanout(w, nonzero=True).tolist() == [
        sum(1 for r in range(4) if w[r, c] != 0) for c in range(6)]
    _, cols = np.nonzero(rng.random((4, 6)) < 0.5)
    values = rng.integers(-1, 2, len(cols))  # listed entries, some of them zero
    assert syn.sparse_fanout(cols, values, 6).tolist() == [
        sum(1 for c in cols if c == j) for j in range(6)]
    assert syn.sparse_fanout(cols, values, 6, nonzero=True).tolist() == [
        sum(1 for c, v in zip(cols, values, strict=True) if c == j and v) for j in range(6)]
    assert syn.sparse_fanout(cols, values, 6).dtype == np.int64
