"""The folding pass and the quantiser: structure, exactness of the fold, the integers chosen,
their survival of Lava's weight preparation, errors, and accuracy against float."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_frontend_equivalence import random_model

import nmcompile
from nmcompile.errors import NmcompileError, UnsupportedError
from nmcompile.ir import (
    IF,
    LI,
    LIF,
    AvgPool2d,
    Conv2d,
    Dense,
    Flatten,
    Graph,
    Input,
    Neuron,
    Output,
    Scale,
    SumPool2d,
)
from nmcompile.ir.quantized import QLIF, QConv2d, QDense, QSparse
from nmcompile.passes import fold_linear
from nmcompile.quantization import PROFILES


def _graph(edges, nodes, shape):
    g = Graph()
    g.add_node("x", Input(shape))
    for name, node in nodes.items():
        g.add_node(name, node)
    g.add_node("out", Output())
    for e in edges:
        g.add_edge(*e)
    return g


def _spikes(shape, seed=0, p=0.3, T=12, B=3):
    return (np.random.default_rng(seed).random((T, B, *shape)) < p).astype(np.uint8)


def _neuron_projection_neuron(g: Graph) -> None:
    for name, node in g.nodes.items():
        kinds = {type(g[src]).__name__ for src, _ in g.predecessors(name)}
        if isinstance(node, Neuron):
            assert all(g[src].kind == "projection" for src, _ in g.predecessors(name))
        elif node.kind == "projection":
            assert all(isinstance(g[s], (Input, Neuron)) for s, _ in g.predecessors(name)), kinds


FOLDABLE = [s for s in range(24) if s % 8 not in (4, 7)]  # cuba layers fed by biased Linear


@pytest.mark.parametrize("seed", FOLDABLE)
def test_fold_keeps_every_spike_of_random_models(seed: int) -> None:
    model, x = random_model(seed)
    g = nmcompile.from_torch(model, x)
    f = fold_linear(g)
    _neuron_projection_neuron(f)
    a = nmcompile.run(g, x.numpy(), record=True)
    b = nmcompile.run(f, x.numpy(), record=True)
    assert min(a.margins.values()) > 1e-9  # no near-tie that rounding could flip
    for layer in a.spikes:
        assert np.array_equal(a.spikes[layer], b.spikes[layer]), layer
    np.testing.assert_allclose(a.output().astype(float), b.output().astype(float), atol=1e-12)


def test_pooling_becomes_a_convolution_and_chains_a_matrix() -> None:
    rng = np.random.default_rng(0)
    g = _graph([("x", "avg"), ("avg", "a"), ("a", "sum"), ("sum", "scale"), ("scale", "b"),
                ("b", "conv"), ("conv", "pool"), ("pool", "flat"), ("flat", "fc"),
                ("fc", "c"), ("c", "out")],
               {"avg": AvgPool2d(2), "a": IF(0.2), "sum": SumPool2d(2), "scale": Scale(0.5),
                "b": IF(0.2), "conv": Conv2d(rng.normal(size=(3, 2, 3, 3)), padding=1),
                "pool": AvgPool2d(2), "flat": Flatten(), "fc": Dense(rng.normal(size=(4, 3))),
                "c": IF(0.1)}, (2, 8, 8))
    f = fold_linear(g)
    avg, summed = f["a.from_x"], f["b.from_a"]
    assert isinstance(avg, Conv2d) and avg.groups == 2 and np.all(avg.weight == 0.25)
    assert isinstance(summed, Conv2d) and np.all(summed.weight == 0.5)  # SumPool * Scale(0.5)
    assert isinstance(f["c.from_b"], Dense) and f["c.from_b"].weight.shape == (4, 2 * 2 * 2)
    x = _spikes((2, 8, 8), p=0.6)
    a, b = nmcompile.run(g, x, record=True), nmcompile.run(f, x, record=True)
    assert min(a.margins.values()) > 1e-9
    assert all(np.array_equal(a.spikes[k], b.spikes[k]) for k in a.spikes)


def test_skip_paths_delays_and_direct_inputs() -> None:
    rng = np.random.default_rng(1)
    g = _graph([("x", "n1"), ("n1", "w1", 1), ("w1", "n2", 2), ("x", "w2"), ("w2", "n2"),
                ("n1", "w3", 3), ("w3", "n2"), ("n2", "out")],
               {"n1": IF(0.5), "w1": Dense(rng.normal(size=(3, 4))),
                "w2": Dense(rng.normal(size=(3, 4))), "w3": Dense(rng.normal(size=(3, 4))),
                "n2": LIF(0.9, 0.3)}, (4,))
    f = fold_linear(g)
    assert isinstance(f["n1.from_x"], Dense) and np.array_equal(f["n1.from_x"].weight, np.eye(4))
    assert ("n1", "n2.from_n1.d3", 3) in f.edges()  # delay 1 + 2 on one path, 3 on the other
    np.testing.assert_allclose(f["n2.from_n1.d3"].weight, g["w1"].weight + g["w3"].weight)
    x = _spikes((4,), p=0.5, T=20)
    assert np.array_equal(nmcompile.run(g, x).output(), nmcompile.run(f, x).output())


def test_biases_move_into_the_neuron_or_are_refused() -> None:
    g = _graph([("x", "fc"), ("fc", "n"), ("n", "out")],
               {"fc": Dense(np.ones((2, 3)), bias=[0.25, -0.5]), "n": LIF(0.9, bias=0.125)},
               (3,))
    f = fold_linear(g)
    assert f["n"].bias.tolist() == [0.375, -0.375] and f["n.from_x"].bias is None
    g.nx.nodes["n"]["node"] = LIF(0.9, alpha=0.5)
    with pytest.raises(UnsupportedError, match="'n', whose synaptic current"):
        fold_linear(g)


def _toy(beta=0.75, threshold=1.0, weight=0.5, alpha=0.0):
    return _graph([("x", "fc"), ("fc", "n"), ("n", "out")],
                  {"fc": Dense([[weight]]), "n": LIF(beta, threshold, alpha=alpha)}, (1,))


def test_quantised_integers_by_hand() -> None:
    q, report = nmcompile.quantize(_toy(), report=True)
    fc, n = q["n.from_x"], q["n"]
    assert isinstance(fc, QDense) and isinstance(n, QLIF)
    scale = report.layers[0].scale
    assert n.vth * 64 / scale == 1.0  # the threshold is exact
    assert fc.weight[0, 0] * 2.0 ** fc.weight_exp * 64 / scale == 0.5  # 0.5 is representable
    assert (n.du, n.dv) == (4095, 1024)  # alpha 0 -> du 4095; beta 0.75 -> dv 4096/4
    assert -8 <= fc.weight_exp <= 7 and 0 < fc.weight[0, 0] <= 255


@pytest.mark.parametrize("seed", FOLDABLE)
def test_weights_survive_lavas_preparation(seed: int) -> None:
    """What the lowering gives Lava survives Lava's own weight preparation unchanged, within
    Loihi's exponents, and applies the IR's weights: a mixed matrix's 8-bit mantissas (int8)
    doubled, with the exponent one lower."""
    from backends.lava import compat
    from backends.lava.lowering.projections import lava_weights

    compat.import_lava()
    from lava.utils.weightutils import SignMode, clip_weights, truncate_weights

    model, x = random_model(seed)
    q = nmcompile.quantize(nmcompile.from_torch(model, x))
    for name, node in q.nodes.items():
        if isinstance(node, (QDense, QSparse)):
            w = (node.weight if isinstance(node, QDense) else node.dense()).astype(np.int64)
            given, exp, mode = lava_weights(name, w, node.weight_exp)
            sign = {"mixed": SignMode.MIXED, "excitatory": SignMode.EXCITATORY,
                    "inhibitory": SignMode.INHIBITORY}[mode]
            prepared = truncate_weights(clip_weights(given, sign, num_bits=8), sign, 8)
            assert np.array_equal(prepared, given), name
            assert -8 <= exp <= 7 and exp <= node.weight_exp, name
            assert np.array_equal(given, w << (node.weight_exp - exp)), name
            if w.min() < 0 < w.max():
                assert node.weight.dtype == np.int8 and exp == node.weight_exp - 1, name


def test_quantised_random_models_track_float() -> None:
    agree = []
    for seed in FOLDABLE:
        model, x = random_model(seed)
        g = nmcompile.from_torch(model, x)
        spikes = x.numpy().astype(np.uint8)
        q = nmcompile.quantize(g, calibration=spikes)
        r = nmcompile.run(q, spikes)
        assert sum(r.counters["unsafe_updates"].values()) == 0, seed
        f = nmcompile.run(g, spikes)
        if f.output().dtype == np.uint8:
            agree.append(np.mean(f.output() == r.output()))
    print("float vs quantised output bins equal:", np.round(agree, 3))
    assert np.mean(agree) > 0.95


def test_quantised_graphs_save_and_load_exactly(tmp_path) -> None:
    model, x = random_model(1)  # a conv model
    q = nmcompile.quantize(nmcompile.from_torch(model, x))
    assert any(isinstance(n, QConv2d) for n in q.nodes.values())
    assert nmcompile.is_quantized(q)
    h = nmcompile.load(nmcompile.save(q, tmp_path / "q.nmc"))
    assert h == q
    spikes = x.numpy().astype(np.uint8)
    assert np.array_equal(nmcompile.run(q, spikes).output(), nmcompile.run(h, spikes).output())


def test_sparse_matrices_become_qsparse() -> None:
    w = np.zeros((20, 20))
    w[np.arange(20), np.arange(20)] = 0.7
    g = _graph([("x", "fc"), ("fc", "n"), ("n", "out")], {"fc": Dense(w), "n": IF(1.0)}, (20,))
    q = nmcompile.quantize(g)
    assert isinstance(q["n.from_x"], QSparse) and len(q["n.from_x"].values) == 20
    x = _spikes((20,), p=0.7, T=10)
    assert np.array_equal(nmcompile.run(g, x).output(), nmcompile.run(q, x).output())


def test_wider_profile_rounds_less() -> None:
    g = _toy(weight=0.123456789)
    errors = {}
    for profile in ("loihi2", "fpga16"):
        _, rep = nmcompile.quantize(g, profile, report=True)
        errors[profile] = rep.layers[0].projections[0].worst_error
    assert errors["fpga16"] < errors["loihi2"] / 20
    assert set(PROFILES) >= {"loihi2", "fpga16"}


@pytest.mark.parametrize("make, error, message", [
    (lambda: _toy(threshold=-1.0), NmcompileError, "layer 'n': thresholds must be > 0"),
    (lambda: _graph([("x", "fc"), ("fc", "out")], {"fc": Dense([[1.0]])}, (1,)),
     UnsupportedError, "output 'out' is fed by a projection"),
    (lambda: _graph([("x", "li"), ("li", "fc"), ("fc", "n"), ("n", "out")],
                    {"li": LI(0.5), "fc": Dense([[1.0]]), "n": IF()}, (1,)),
     UnsupportedError, "fed by the voltage of LI layer 'li'"),
])
def test_unrepresentable_values_name_the_layer(make, error, message) -> None:
    with pytest.raises(error, match=message):
        nmcompile.quantize(make())


def test_lossy_decays_are_reported() -> None:
    _, rep = nmcompile.quantize(_toy(beta=0.0), report=True)
    assert any("beta" in w for w in rep.layers[0].warnings)
    assert "warning: layer 'n'" in rep.table()


def test_a_decay_that_rounds_to_no_decay_is_reported() -> None:
    """1 - beta = 1e-5 < 1/8192: dv rounds to 0, so v would never leak; beta = 0.9998
    (1 - beta = 2e-4 > 1/8192) rounds to dv = 1 and is not reported."""
    q, rep = nmcompile.quantize(_toy(beta=0.99999), report=True)
    assert q["n"].dv == 0
    assert any("rounds to no decay" in w for w in rep.layers[0].warnings)
    q, rep = nmcompile.quantize(_toy(beta=0.9998), report=True)
    assert q["n"].dv == 1 and not rep.layers[0].warnings


def test_calibration_measures_peaks() -> None:
    g = _toy(weight=3.0, threshold=2.0)
    x = torch.zeros(10, 2, 1)
    x[::2] = 1
    _, bound = nmcompile.quantize(g, report=True)
    _, measured = nmcompile.quantize(g, calibration=x.numpy(), report=True)
    assert measured.layers[0].calibrated and not bound.layers[0].calibrated
    assert measured.layers[0].peak > 0
