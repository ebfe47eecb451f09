"""The structural fold (issue 14, point 1): every chain is composed operator by operator at a
cost in proportion to its result, and must give the numbers of the identity method (an
identity pushed through the chain; kept here as an independent oracle), the same spikes on
every layer, a `Conv2d` wherever the chain is one convolution, and a `LimitError` naming the
layers (never an allocation failure) where the result would not fit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import nmcompile
from nmcompile import nn as snn
from nmcompile.cli import main
from nmcompile.errors import LimitError
from nmcompile.ir import (
    IF,
    LIF,
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
)
from nmcompile.ir.quantized import QConv2d
from nmcompile.passes import fold, fold_linear

# ---- the oracle: the identity method, written independently of the pass ---------------------


def _apply(node, x: torch.Tensor) -> torch.Tensor:
    """One node of a chain on a batch (B, ...), without its bias."""
    b = x.shape[0]
    if isinstance(node, Dense):
        y = x.reshape(b, -1) @ torch.as_tensor(node.weight).T
        return y.reshape(b, *(node.out_shape or (y.shape[1],)))
    if isinstance(node, Sparse):
        w = np.zeros(node.shape)
        np.add.at(w, (node.rows, node.cols), node.values)
        y = x.reshape(b, -1) @ torch.as_tensor(w).T
        return y.reshape(b, *(node.out_shape or (y.shape[1],)))
    if isinstance(node, Conv2d):
        return F.conv2d(x, torch.as_tensor(node.weight), None, node.stride, node.padding,
                        node.dilation, node.groups)
    if isinstance(node, AvgPool2d):
        return F.avg_pool2d(x, node.kernel_size, node.stride, node.padding)
    if isinstance(node, SumPool2d):
        return F.avg_pool2d(x, node.kernel_size, node.stride, node.padding, divisor_override=1)
    if isinstance(node, Flatten):
        return x.flatten(node.start_dim + 1, node.end_dim if node.end_dim < 0 else
                         node.end_dim + 1)
    if isinstance(node, Scale):
        return x * torch.as_tensor(np.asarray(node.scale))
    raise AssertionError(type(node))


def _identity_method(nodes: list, in_shape: tuple[int, ...]) -> np.ndarray:
    n = int(np.prod(in_shape))
    x = torch.eye(n, dtype=torch.float64).reshape(n, *in_shape)
    for node in nodes:
        x = _apply(node, x)
    return x.reshape(n, -1).T.numpy()


def _matrix_of(proj, in_shape: tuple[int, ...]) -> np.ndarray:
    """The folded projection as a matrix."""
    return proj.weight if isinstance(proj, Dense) else _identity_method([proj], in_shape)


# ---- chains -----------------------------------------------------------------------------------

def _w(rng, *shape):
    return rng.normal(size=shape)


def _ch(rng, c):
    return rng.uniform(0.5, 2.0, (c, 1, 1)) * rng.choice([-1, 1], (c, 1, 1))


# name -> (input shape, nodes given rng, expected kind of the folded projection)
CHAINS = {
    "pool-flatten-dense": ((3, 8, 8), lambda r: [AvgPool2d(2), Flatten(), Dense(_w(r, 5, 48))],
                           Dense),
    "padded sumpool-flatten-dense": ((2, 7, 7), lambda r: [SumPool2d(3, 2, 1), Flatten(),
                                                            Dense(_w(r, 4, 32))], Dense),
    "pool2-conv3 pad1": ((2, 8, 8), lambda r: [AvgPool2d(2), Conv2d(_w(r, 3, 2, 3, 3),
                                                                   padding=1)], Conv2d),
    "pool2-conv3 stride2": ((2, 8, 8), lambda r: [AvgPool2d(2), Conv2d(_w(r, 3, 2, 3, 3),
                                                                      stride=2)], Conv2d),
    "pool3 s2 pad1-conv3": ((2, 9, 9), lambda r: [AvgPool2d(3, 2, 1), Conv2d(_w(r, 3, 2, 3, 3))],
                            Conv2d),
    "pool3 s2 pad1-conv3 pad1 (no closed form)": (
        (2, 8, 8), lambda r: [AvgPool2d(3, 2, 1), Conv2d(_w(r, 3, 2, 3, 3), padding=1)], Dense),
    "pool2 s1-conv3 pad1 (no closed form)": (
        (2, 7, 7), lambda r: [AvgPool2d(2, 1), Conv2d(_w(r, 3, 2, 3, 3), padding=1)], Dense),
    "pool2 odd input-conv3 pad1 (no closed form)": (
        (2, 9, 9), lambda r: [AvgPool2d(2), Conv2d(_w(r, 3, 2, 3, 3), padding=1)], Dense),
    "sumpool2-grouped dilated conv": (
        (4, 12, 12), lambda r: [SumPool2d(2), Conv2d(_w(r, 6, 2, 3, 3), padding=2, dilation=2,
                                                     groups=2)], Conv2d),
    "rectangular pool-conv": ((2, 8, 5), lambda r: [AvgPool2d((2, 1)), Conv2d(
        _w(r, 3, 2, 3, 1), padding=(1, 0))], Conv2d),
    "pool-pool": ((3, 8, 8), lambda r: [AvgPool2d(2), SumPool2d(2)], Conv2d),
    "conv-pool": ((2, 8, 8), lambda r: [Conv2d(_w(r, 3, 2, 3, 3), padding=1), AvgPool2d(2)],
                  Conv2d),
    "grouped conv-grouped conv": ((4, 9, 9), lambda r: [Conv2d(_w(r, 4, 2, 3, 3), groups=2),
                                                        Conv2d(_w(r, 6, 2, 2, 2), stride=2,
                                                               groups=2)], Conv2d),
    "depthwise conv-conv": ((3, 8, 8), lambda r: [Conv2d(_w(r, 3, 1, 3, 3), groups=3),
                                                  Conv2d(_w(r, 4, 3, 3, 3))], Conv2d),
    "conv-depthwise conv": ((2, 8, 8), lambda r: [Conv2d(_w(r, 3, 2, 3, 3), stride=2),
                                                  Conv2d(_w(r, 3, 1, 2, 2), groups=3)], Conv2d),
    "conv pad1-conv pad1 (no closed form)": (
        (2, 8, 8), lambda r: [Conv2d(_w(r, 3, 2, 3, 3), padding=1),
                              Conv2d(_w(r, 4, 3, 3, 3), padding=1)], Dense),
    "conv-flatten-dense": ((2, 6, 6), lambda r: [Conv2d(_w(r, 3, 2, 3, 3), stride=2, padding=1),
                                                 Flatten(), Dense(_w(r, 5, 27))], Dense),
    "pool-conv-flatten-dense": ((2, 8, 8), lambda r: [AvgPool2d(2), Conv2d(_w(r, 3, 2, 3, 3)),
                                                      Flatten(), Dense(_w(r, 4, 12))], Dense),
    "conv-flatten": ((2, 5, 5), lambda r: [Conv2d(_w(r, 3, 2, 3, 3)), Flatten()], Dense),
    "dense-scale-dense": ((7,), lambda r: [Dense(_w(r, 9, 7)), Scale(0.5), Dense(_w(r, 4, 9))],
                          Dense),
    "dense to image-conv": ((7,), lambda r: [Dense(_w(r, 50, 7), out_shape=(2, 5, 5)),
                                             Conv2d(_w(r, 3, 2, 3, 3))], Dense),
    "channel scales around pool-conv": (
        (2, 8, 8), lambda r: [Scale(_ch(r, 2)), AvgPool2d(2), Scale(-0.5),
                              Conv2d(_w(r, 3, 2, 3, 3), padding=1), Scale(_ch(r, 3))], Conv2d),
    "spatial scale between pool and conv": (
        (2, 8, 8), lambda r: [AvgPool2d(2), Scale(_w(r, 4, 4)), Conv2d(_w(r, 3, 2, 3, 3),
                                                                      padding=1)], Dense),
    "scaled pool": ((2, 6, 6), lambda r: [Scale(0.25), SumPool2d(2), Scale(3.0)], Conv2d),
    "scaled conv": ((2, 6, 6), lambda r: [Conv2d(_w(r, 3, 2, 3, 3), stride=2), Scale(1.5)],
                    Conv2d),
    "flatten-dense-scale": ((2, 3, 3), lambda r: [Flatten(), Dense(_w(r, 4, 18)),
                                                  Scale(_w(r, 4))], Dense),
    "scale-flatten-dense": ((2, 3, 3), lambda r: [Scale(_w(r, 3, 3)), Flatten(),
                                                  Dense(_w(r, 4, 18))], Dense),
    "sparse-dense": ((6,), lambda r: [Sparse([0, 1, 2, 2], [5, 0, 3, 3], _w(r, 4), (4, 6)),
                                      Dense(_w(r, 3, 4))], Dense),
    "scaled sparse": ((6,), lambda r: [Sparse([0, 1, 2, 2], [5, 0, 3, 3], _w(r, 4), (4, 6)),
                                       Scale(2.0)], Sparse),  # stays sparse
    "scale only": ((2, 3, 3), lambda r: [Scale(_ch(r, 2))], Dense),
}


def _chain_graph(in_shape, nodes, threshold=0.3, source="n0"):
    """x -> n0 (IF) -> chain -> n1 (IF) -> out; with source="x", x -> chain -> n1 -> out."""
    g = Graph()
    g.add_node("x", Input(in_shape))
    if source == "n0":
        g.add_node("n0", IF(0.5))
        g.add_edge("x", "n0")
    prev = source
    for i, node in enumerate(nodes):
        g.add_node(f"p{i}", node)
        g.add_edge(prev, f"p{i}")
        prev = f"p{i}"
    g.add_node("n1", IF(threshold))
    g.add_edge(prev, "n1")
    g.add_node("out", Output())
    g.add_edge("n1", "out")
    return g


def _spikes(shape, seed=0, p=0.6, T=6, B=2):
    return (np.random.default_rng(seed).random((T, B, *shape)) < p).astype(np.uint8)


def _same_spikes(g: Graph, f: Graph, x: np.ndarray) -> None:
    a, b = nmcompile.run(g, x, record=True), nmcompile.run(f, x, record=True)
    assert min(a.margins.values()) > 1e-9  # no near-tie that rounding could flip
    assert set(a.spikes) == set(b.spikes)
    for layer in a.spikes:
        assert np.array_equal(a.spikes[layer], b.spikes[layer]), layer


def _close(new: np.ndarray, old: np.ndarray) -> None:
    assert new.shape == old.shape
    np.testing.assert_allclose(new, old, rtol=1e-12, atol=1e-12 * np.abs(old).max())


@pytest.mark.parametrize("case", sorted(CHAINS))
@pytest.mark.parametrize("seed", [0, 1])
def test_every_chain_folds_to_the_identity_methods_numbers(case: str, seed: int) -> None:
    in_shape, make, kind = CHAINS[case]
    nodes = make(np.random.default_rng(seed))
    g = _chain_graph(in_shape, nodes)
    f = fold_linear(g)
    proj = f["n1.from_n0"]
    assert type(proj) is kind
    _close(_matrix_of(proj, in_shape), _identity_method(nodes, in_shape))
    _same_spikes(g, f, _spikes(in_shape, seed))


def test_pooling_then_convolution_is_one_strided_convolution() -> None:
    """AvgPool2d(2) then a 3x3 convolution (padding 1): a 6x6 kernel of stride 2 and padding 2,
    each conv tap spread over the 2x2 pixels it averaged, divided by 4."""
    w = np.random.default_rng(0).normal(size=(3, 2, 3, 3))
    proj = fold_linear(_chain_graph((2, 8, 8), [AvgPool2d(2), Conv2d(w, padding=1)]))["n1.from_n0"]
    assert isinstance(proj, Conv2d)
    assert (proj.stride, proj.padding, proj.dilation, proj.groups) == ((2, 2), (2, 2), (1, 1), 1)
    np.testing.assert_allclose(proj.weight, np.repeat(np.repeat(w, 2, 2), 2, 3) / 4, rtol=1e-15)


def test_single_convolutions_and_poolings_fold_as_before() -> None:
    """The chains that gave a Conv2d before (one convolution or pooling and scalar scales)
    give the same Conv2d, bit for bit."""
    w = np.random.default_rng(0).normal(size=(3, 2, 3, 3))
    conv = fold_linear(_chain_graph((2, 6, 6), [Scale(0.5), Conv2d(w, stride=2, padding=1,
                                                                   dilation=1)]))["n1.from_n0"]
    assert np.array_equal(conv.weight, w * 0.5) and conv.stride == (2, 2) and conv.padding == (1, 1)
    avg = fold_linear(_chain_graph((2, 6, 6), [AvgPool2d(3, 1, 1), Scale(3.0)]))["n1.from_n0"]
    assert avg.groups == 2 and avg.weight.shape == (2, 1, 3, 3) and np.all(avg.weight == 3.0 / 9)


def test_a_lone_dense_is_taken_as_is() -> None:
    """No identity: a 8 x 20000 Dense folds within a 4 MiB budget (the identity method would
    push a 3.2 GB identity through it), to its own weights, scaled."""
    w = np.random.default_rng(0).normal(size=(8, 20000))
    g = _chain_graph((20000,), [Dense(w)], source="x")
    f = fold_linear(g, max_bytes="4M")
    assert np.array_equal(f["n1.from_x"].weight, w) and f["n1.from_x"].weight is not w
    assert g["p0"].weight is f["n1.from_x"].weight  # unscaled: shared, not copied
    g = _chain_graph((2, 100, 100), [Scale(0.5), Flatten(), Dense(w)], source="x")
    f = fold_linear(g, max_bytes="4M")
    assert np.array_equal(f["n1.from_x"].weight, w * 0.5)
    assert not hasattr(fold, "MAX_DENSE")


def test_a_real_size_pooled_readout_folds_through_the_adjoint() -> None:
    """AvgPool2d(4) -> Flatten -> Linear(32768, 11) on a 32x128x128 map: the identity method
    would push a 524288 x 524288 identity (2 TiB); the fold computes the 11 x 524288 matrix
    from the Linear's rows within 256 MiB."""
    rng = np.random.default_rng(0)
    g = Graph()
    g.add_node("l2", Input((32, 128, 128)))
    for a, b, node in (("l2", "pool", AvgPool2d(4)), ("pool", "flat", Flatten()),
                       ("flat", "fc", Dense(rng.normal(size=(11, 32768)))),
                       ("fc", "l3", LIF(0.9)), ("l3", "out", Output())):
        g.add_node(b, node)
        g.add_edge(a, b)
    proj = fold_linear(g, max_bytes="256M")["l3.from_l2"]
    assert isinstance(proj, Dense) and proj.weight.shape == (11, 524288)
    x = rng.random((3, 32, 128, 128))
    expected = F.avg_pool2d(torch.as_tensor(x), 4).reshape(3, -1).numpy() @ g["fc"].weight.T
    _close(x.reshape(3, -1) @ proj.weight.T, expected)


def _dvs_cnn() -> tuple[nn.Module, torch.Tensor]:
    """The DVS gesture CNN at 1/100 scale: 2x16x16 events, two 3x3 convolutions, a 4x4 average
    pooling and an 11-way readout."""
    torch.manual_seed(0)
    step = nn.Sequential(nn.Conv2d(2, 8, 3, padding=1), snn.LIF(0.9, 0.5),
                         nn.Conv2d(8, 8, 3, padding=1), snn.LIF(0.9, 0.5), nn.AvgPool2d(4),
                         nn.Flatten(), nn.Linear(8 * 4 * 4, 11), snn.LIF(0.9, 0.2))
    with torch.no_grad():
        for m in step.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                m.weight.mul_(3.0)
    x = (torch.rand(12, 2, 2, 16, 16, generator=torch.Generator().manual_seed(0)) < 0.3)
    return snn.TimeLoop(step).double().eval(), x.double()


def test_the_dvs_cnn_keeps_every_spike_and_its_structure() -> None:
    model, x = _dvs_cnn()
    g = nmcompile.from_torch(model, x)
    f = fold_linear(g)
    projections = {name: node for name, node in f.nodes.items() if node.kind == "projection"}
    kinds = sorted(type(p).__name__ for p in projections.values())
    assert kinds == ["Conv2d", "Conv2d", "Dense"]
    (readout,) = (p for p in projections.values() if isinstance(p, Dense))
    assert readout.weight.shape == (11, 8 * 16 * 16)
    pool, flat, fc = (name for name, node in g.nodes.items()
                      if isinstance(node, (AvgPool2d, Flatten, Dense)))
    _close(readout.weight, _identity_method([g[pool], g[flat], g[fc]], (8, 16, 16)))
    a = nmcompile.run(g, x.numpy(), record=True)
    _same_spikes(g, f, x.numpy())
    assert all(s.any() for s in a.spikes.values())  # every layer spikes


def test_quantize_keeps_pooling_then_convolution_a_qconv2d() -> None:
    w = np.random.default_rng(0).normal(size=(4, 2, 3, 3))
    g = _chain_graph((2, 8, 8), [AvgPool2d(2), Conv2d(w, padding=1)], threshold=0.5)
    q = nmcompile.quantize(g)
    assert isinstance(q["n1.from_n0"], QConv2d)
    assert q["n1.from_n0"].weight.shape == (4, 2, 6, 6)
    x = _spikes((2, 8, 8), T=10)
    assert nmcompile.run(q, x).output().shape == nmcompile.run(g, x).output().shape


def _huge(kind: str) -> Graph:
    """Chains on a 64-channel 1024x1024 map whose fold has no closed form: terabytes."""
    g = Graph()
    if kind == "flatten":
        g.add_node("x", Input((64, 1024, 1024)))
        chain = [("pool", AvgPool2d(2)), ("flat", Flatten())]
    else:  # an odd size: the pooling's last window leaves a pixel that padding would not
        g.add_node("x", Input((64, 1025, 1025)))
        chain = [("pool", AvgPool2d(2)), ("conv", Conv2d(np.zeros((64, 64, 3, 3)), padding=1))]
    prev = "x"
    for name, node in [*chain, ("lif", LIF(0.9)), ("out", Output())]:
        g.add_node(name, node)
        g.add_edge(prev, name)
        prev = name
    return g


@pytest.mark.parametrize("kind, message", [
    ("flatten", r"folding 'pool' -> 'flat' into a 16777216 x 67108864 matrix would take "
                r"[\d,.]+ TiB"),
    ("conv", r"folding 'pool' -> 'conv' into a 16777216 x 67240000 matrix would take"),
])
def test_a_fold_of_terabytes_is_refused_naming_its_layers(kind: str, message: str) -> None:
    with pytest.raises(LimitError, match=message):
        fold_linear(_huge(kind))


def test_the_even_size_of_a_huge_chain_is_one_convolution() -> None:
    g = _huge("conv")
    g.nx.nodes["x"]["node"] = Input((64, 1024, 1024))
    proj = fold_linear(g, max_bytes="16M")["lif.from_x"]
    assert isinstance(proj, Conv2d) and proj.weight.shape == (64, 64, 6, 6)


def test_the_budget_reaches_the_fold_through_quantize() -> None:
    g = _chain_graph((20000,), [Dense(np.ones((8, 20000)))], source="x")
    with pytest.raises(LimitError, match=r"folding 'p0' into a 8 x 20000 matrix"):
        nmcompile.quantize(g, max_bytes="1M")


def test_the_cli_refuses_a_terabyte_fold_in_one_line(tmp_path, capsys) -> None:
    model, out = tmp_path / "huge.nmc", tmp_path / "q.nmc"
    nmcompile.save(_huge("flatten"), model)
    assert main(["quantize", str(model), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("nmcompile: error: folding 'pool' -> 'flat' into a 16777216 x ")
    assert not out.exists()


@pytest.mark.parametrize("gain", [0.1, 1.0, 3.0])
def test_loihi2_convolutions_keep_a_stock_lava_conv(gain: float) -> None:
    """On the Loihi profile (8-bit mantissas) the layer scale that the 24-bit state allows
    already puts every convolution's weight exponent at >= 0, so Lava lowers it as a stock
    `Conv` (a negative exponent would unroll it into a sparse matrix)."""
    from backends.lava.lowering.projections import conv_stock

    model, x = _dvs_cnn()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.mul_(gain)
    g = nmcompile.from_torch(model, x)
    for calibration in (None, x.numpy()):
        q = nmcompile.quantize(g, profile="loihi2", calibration=calibration)
        convs = [q[n] for n in q.nodes if isinstance(q[n], QConv2d)]
        assert len(convs) == 2
        assert all(c.weight_exp >= 0 and conv_stock(c) for c in convs)
