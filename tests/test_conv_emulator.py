"""The emulator's convolution (event by event for sparse input, im2col through BLAS for dense)
against an independent int64 reference written out tap by tap: outputs, synaptic events,
non-zero events and the outputs each event reaches, over random geometries (stride, padding,
dilation, groups), spikes and graded values, negative and positive weight exponents; and
whole runs against the same synapses as a QSparse projection (another code path)."""

from __future__ import annotations

import numpy as np
import pytest

import nmcompile
from backends.emulator import neuron as emu_neuron
from backends.emulator.projections import EVENT_DENSITY, PARALLEL_CONV, projection
from nmcompile.ir import Graph, Input, Output
from nmcompile.ir.quantized import QALIF, QLI, QLIF, QConv2d, QSparse


def reference(x, w, stride, padding, dilation, groups, exp):
    """(conv(x) << exp, events, non-zero events, reached) of x (M, C, H, W), tap by tap in
    int64 on a zero-padded copy (a padded zero sends no event)."""
    m, c_in, h, wd = x.shape
    c_out, cg, kh, kw = w.shape
    (s0, s1), (p0, p1), (d0, d1) = stride, padding, dilation
    ho = (h + 2 * p0 - d0 * (kh - 1) - 1) // s0 + 1
    wo = (wd + 2 * p1 - d1 * (kw - 1) - 1) // s1 + 1
    xp = np.zeros((m, c_in, h + 2 * p0, wd + 2 * p1), np.int64)
    xp[:, :, p0:p0 + h, p1:p1 + wd] = x
    y = np.zeros((m, c_out, ho, wo), np.int64)
    reached = np.zeros((m, c_out, ho, wo), bool)
    events = nonzero = 0
    for co in range(c_out):
        g = co // (c_out // groups)
        for ci in range(cg):
            for ky in range(kh):
                for kx in range(kw):
                    sl = xp[:, g * cg + ci, ky * d0:ky * d0 + s0 * (ho - 1) + 1:s0,
                            kx * d1:kx * d1 + s1 * (wo - 1) + 1:s1]
                    weight = int(w[co, ci, ky, kx])
                    y[:, co] += weight * sl
                    hit = sl != 0
                    events += int(hit.sum())
                    nonzero += int(hit.sum()) if weight else 0
                    reached[:, co] |= hit
    y = y << exp if exp > 0 else y >> -exp
    return y.reshape(m, -1), events, nonzero, reached.reshape(m, -1)


def random_case(seed: int, big: bool = False):
    rng = np.random.default_rng(seed)
    groups = int(rng.integers(1, 3))
    cg, per_group = (int(v) for v in rng.integers(1, 4, 2))
    kh, kw = (int(v) for v in rng.integers(1, 4, 2))
    stride = tuple(int(v) for v in rng.integers(1, 3, 2))
    padding = tuple(int(v) for v in rng.integers(0, 3, 2))
    dilation = tuple(int(v) for v in rng.integers(1, 3, 2))
    hw = (64, 64) if big else tuple(int(v) for v in rng.integers(6, 12, 2))
    wide = rng.random() < 0.3  # large weights: int64 sums, float64 BLAS
    limit = 2**16 if wide else 128
    w = rng.integers(-limit, limit + 1, (groups * per_group, cg, kh, kw))
    w[rng.random(w.shape) < 0.2] = 0
    exp = int(rng.integers(-4, 4))
    node = QConv2d(w, exp, stride, padding, dilation, groups)
    return rng, node, (groups * cg, *hw)


def inputs(rng, rows: int, in_shape, kind: str) -> tuple[np.ndarray, int]:
    shape = (rows, *in_shape)
    if kind == "spikes":
        return (rng.random(shape) < 0.1).astype(np.uint8), 1
    if kind == "dense_spikes":
        return (rng.random(shape) < 0.7).astype(np.uint8), 1
    density = 0.1 if kind == "graded" else 0.8
    values = rng.integers(-300, 301, shape) * (rng.random(shape) < density)
    return values.astype(np.int64), 300


@pytest.mark.parametrize("kind", ["spikes", "dense_spikes", "graded", "dense_graded"])
@pytest.mark.parametrize("seed", range(12))
def test_conv_projection_equals_reference(seed: int, kind: str) -> None:
    rng, node, in_shape = random_case(seed)
    x, max_in = inputs(rng, 5, in_shape, kind)
    apply, count = projection(node, in_shape, max_in)
    rows = x.reshape(x.shape[0], -1)
    want, events, nonzero, reached = reference(x, node.weight, node.stride, node.padding,
                                               node.dilation, node.groups, node.weight_exp)
    got = apply(rows)
    assert got.dtype.kind == "i"
    assert np.array_equal(got, want)
    n_events, n_nonzero, hit = count(rows)
    assert (n_events, n_nonzero) == (events, nonzero)
    assert np.array_equal(hit, reached)


@pytest.mark.parametrize("seed", range(3))
def test_parallel_conv_kernels_equal_reference(seed: int) -> None:
    """Inputs large enough for the threaded kernels, both routes."""
    rng, node, in_shape = random_case(100 + seed, big=True)
    for kind in ("spikes", "dense_graded"):
        x, max_in = inputs(rng, 16, in_shape, kind)
        rows = x.reshape(x.shape[0], -1)
        assert rows.size >= PARALLEL_CONV
        assert (np.count_nonzero(rows) < EVENT_DENSITY * rows.size) == (kind == "spikes")
        apply, count = projection(node, in_shape, max_in)
        want, events, nonzero, reached = reference(x, node.weight, node.stride, node.padding,
                                                   node.dilation, node.groups,
                                                   node.weight_exp)
        assert np.array_equal(apply(rows), want)
        n_events, n_nonzero, hit = count(rows)
        assert (n_events, n_nonzero) == (events, nonzero)
        assert np.array_equal(hit, reached)


def as_sparse(node: QConv2d, in_shape) -> QSparse:
    """The same synapses, every in-bounds tap (zero weights included), listed by loops."""
    c_out, cg, kh, kw = node.weight.shape
    _, h, wd = in_shape
    _, ho, wo = node.output_shape(in_shape, "conv")
    (s0, s1), (p0, p1), (d0, d1) = node.stride, node.padding, node.dilation
    rows, cols, values = [], [], []
    for co in range(c_out):
        g = co // (c_out // node.groups)
        for ci in range(cg):
            for ky in range(kh):
                for kx in range(kw):
                    for oy in range(ho):
                        for ox in range(wo):
                            iy, ix = oy * s0 - p0 + ky * d0, ox * s1 - p1 + kx * d1
                            if 0 <= iy < h and 0 <= ix < wd:
                                rows.append((co * ho + oy) * wo + ox)
                                cols.append(((g * cg + ci) * h + iy) * wd + ix)
                                values.append(int(node.weight[co, ci, ky, kx]))
    return QSparse(np.array(rows), np.array(cols), np.array(values),
                   (c_out * ho * wo, int(np.prod(in_shape))), node.weight_exp,
                   out_shape=(c_out, ho, wo))


def chain(proj, neuron, in_shape) -> Graph:
    g = Graph()
    g.add_node("x", Input(in_shape))
    g.add_node("p", proj)
    g.add_node("n", neuron)
    g.add_node("out", Output())
    for a, b in [("x", "p"), ("p", "n"), ("n", "out")]:
        g.add_edge(a, b)
    return g


@pytest.mark.parametrize("seed", range(6))
def test_conv_runs_equal_sparse_runs(seed: int) -> None:
    rng, node, in_shape = random_case(200 + seed)
    node.weight = np.clip(node.weight, -200, 200)  # keep the neurons in their safe range
    node.weight_exp = min(node.weight_exp, 0)
    graded = seed % 2 == 1
    T, B = 6, 2
    if graded:
        x = rng.integers(-3, 4, (T, B, *in_shape)) * (rng.random((T, B, *in_shape)) < 0.3)
    else:
        x = (rng.random((T, B, *in_shape)) < 0.2).astype(np.uint8)
    neuron = QLIF(vth=int(rng.integers(50, 400)), du=1024, dv=512) if seed % 3 else QLI(du=512)
    sparse = as_sparse(node, in_shape)
    r_conv = nmcompile.run(chain(node, neuron, in_shape), x, record=True)
    r_sparse = nmcompile.run(chain(sparse, neuron, in_shape), x, record=True)
    assert np.array_equal(r_conv.output(), r_sparse.output())
    assert np.array_equal(r_conv.states["n"]["v"], r_sparse.states["n"]["v"])
    assert r_conv.counters == r_sparse.counters
    _, events, nonzero, _ = reference(x.reshape(T * B, *in_shape), node.weight, node.stride,
                                      node.padding, node.dilation, node.groups, 0)
    assert r_conv.counters["synaptic_events"]["p"] == events
    assert r_conv.counters["synaptic_events_nonzero"]["p"] == nonzero


@pytest.mark.parametrize("neuron", [QLIF(vth=300, du=700, dv=300, bias_mant=5),
                                    QALIF(vth=200, vth_step=50, da=100, du=500, dv=200,
                                          reset="subtract"),
                                    QLI(du=300, dv=100, bias_mant=-3)])
def test_parallel_neuron_update_equals_serial(neuron) -> None:
    """The threaded neuron kernel (blocks of neurons over all steps) equals the serial one."""
    rng = np.random.default_rng(7)
    n, batch, T = 3000, 3, 12  # blocks that straddle samples
    a = rng.integers(-40, 60, (T, batch * n)) * (rng.random((T, batch * n)) < 0.4)
    runs = []
    for kernel in (emu_neuron.update, emu_neuron.update_parallel):
        layer = emu_neuron.NeuronLayer(neuron, batch, n, (n,))
        out = np.empty((T, batch * n), np.uint8 if layer.spiking else np.int64)
        u_out, v_out = (np.empty((T, batch * n), np.int64) for _ in range(2))
        kernel(a, layer.u, layer.v, layer.th, layer.du, layer.dv, layer.vth, layer.bias,
               layer.vth_step, layer.da, layer.spiking, layer.adaptive, layer.subtract, out,
               u_out, v_out, True, layer.unsafe)
        runs.append((out, u_out, v_out, layer.u, layer.v, layer.th, layer.unsafe))
    for got, want in zip(*runs, strict=True):
        assert np.array_equal(got, want)


@pytest.mark.parametrize("density", [0.05, 0.9])
def test_conv_wide_sums_in_int64(density: float) -> None:
    """Sums beyond int32 (after the shift) and beyond float32's 2^24: int64 accumulators,
    float64 BLAS; both routes."""
    rng = np.random.default_rng(int(density * 100))
    w = rng.integers(2**15, 2**16 + 1, (4, 3, 3, 3)) * rng.choice([-1, 1], (4, 3, 3, 3))
    node = QConv2d(w, 5, (1, 2), (1, 2), (2, 1), 1)
    in_shape = (3, 9, 10)
    x = rng.integers(-2**12, 2**12 + 1, (6, *in_shape)) * (rng.random((6, *in_shape)) < density)
    apply, count = projection(node, in_shape, 2**12)
    rows = x.reshape(6, -1)
    want, events, nonzero, reached = reference(x, w, node.stride, node.padding, node.dilation,
                                               node.groups, node.weight_exp)
    assert np.abs(want).max() >= 2**31
    got = apply(rows)
    assert got.dtype == np.int64 and np.array_equal(got, want)
    n_events, n_nonzero, hit = count(rows)
    assert (n_events, n_nonzero) == (events, nonzero) and np.array_equal(hit, reached)


def test_serial_and_parallel_builds_are_cached_apart() -> None:
    """numba's cache keys a function by its qualified name: a parallel build sharing the
    serial one's name would load whichever was cached first."""
    from backends.emulator import projections as proj

    for serial, parallel in [(proj.accumulate, proj.accumulate_parallel),
                             (proj.conv_accumulate, proj.conv_accumulate_parallel),
                             (proj.conv_count, proj.conv_count_parallel),
                             (emu_neuron.update, emu_neuron.update_parallel)]:
        assert serial.py_func.__qualname__ != parallel.py_func.__qualname__
