"""`from_stdp`: the IR float interpreter on the exported graph reproduces the STDP network's
inference pass spike for spike (excitatory and inhibitory layers, readout scores), for frozen
and adaptive thresholds, every inhibition delay, both resets, patches, random and trained
networks; the file format keeps all of it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import nmcompile
from nmcompile import datasets
from nmcompile.errors import NmcompileError
from nmcompile.ir import ALIF, IF, LI, LIF, Dense
from nmcompile.stdp import (
    AdaptiveLIF,
    Inhibition,
    PairSTDP,
    Patches,
    STDPNetwork,
    assign_labels,
    class_scores,
    encode_data,
    responses,
    train,
)
from nmcompile.stdp.demo import digits_network

D = torch.float64


def random_network(seed: int) -> STDPNetwork:
    """An untrained network with random weights, thresholds, delays, reset and patches, and
    random class assignments, tuned so that its layers spike but not always."""
    rng = np.random.default_rng(seed)
    patches = [None, Patches((3, 3), (1, 1), shared=True), Patches((2, 3), (2, 3))][seed % 3]
    delays = [(1, 1), (0, 2), (2, 0), (1, 3)][seed % 4]
    L = 24 if patches is None else patches.size[0] * patches.size[1]  # inputs per neuron
    net = STDPNetwork(
        (4, 6), int(rng.integers(3, 7)),
        neuron=AdaptiveLIF(beta=float(rng.uniform(0.8, 1.0)),
                           threshold=float(rng.uniform(0.25, 0.5) * L),
                           rho=float(rng.uniform(0.7, 0.99)),
                           adapt_step=float(rng.uniform(0.1, 0.6)),
                           reset=["zero", "subtract"][seed % 2]),
        inhibition=Inhibition(w_ie=float(rng.uniform(0.1, 0.3) * L), w_ei=float(rng.uniform(1, 2)),
                              threshold=float(rng.uniform(0.2, 0.9)), delay_ei=delays[0],
                              delay_ie=delays[1]),
        patches=patches, seed=seed, init=1.0)
    net.theta = torch.as_tensor(rng.uniform(0, 0.1 * L, net.n_excitatory))
    net.assignments = rng.integers(-1, 4, net.n_excitatory)
    net.n_classes = 4
    return net


def inputs(net: STDPNetwork, seed: int, batch: int = 5, T: int = 30) -> np.ndarray:
    rng = np.random.default_rng(seed + 1000)
    return (rng.random((T, batch, net.n_inputs)) < 0.35).astype(np.uint8)


def check_equal(net: STDPNetwork, spikes: np.ndarray, frozen: bool) -> nmcompile.RunResult:
    graph = nmcompile.from_stdp(net, frozen_thresholds=frozen)
    result = nmcompile.run(graph, spikes, record=True)
    ref = net.run(spikes, "frozen" if frozen else "adaptive")
    for layer in ("exc", "inh"):
        np.testing.assert_array_equal(result.spikes[layer], ref[layer].numpy().astype(np.uint8),
                                      err_msg=layer)
    if net.assignments is not None:
        scores = class_scores(net, ref["exc"])
        np.testing.assert_array_equal(result.output()[-1], scores)  # bit for bit
        # and the readout is the mean spike count of each class's neurons
        counts = ref["exc"].numpy().sum(0)
        np.testing.assert_allclose(scores, counts @ net.readout_weights().T, rtol=1e-12)
    return result


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("frozen", [True, False])
def test_random_networks_equal_their_graphs(seed: int, frozen: bool) -> None:
    net = random_network(seed)
    result = check_equal(net, inputs(net, seed), frozen)
    exc = result.spikes["exc"]
    assert 0 < exc.mean() < 0.5, "the test network should spike, but not always"


def test_graph_structure_frozen_and_adaptive() -> None:
    net = random_network(1)
    g = nmcompile.from_stdp(net)
    assert isinstance(g["exc"], LIF) and isinstance(g["inh"], IF) and isinstance(g["classes"], LI)
    np.testing.assert_array_equal(g["exc"].threshold, net.neuron.threshold + net.theta.numpy())
    np.testing.assert_array_equal(g["w_in"].weight, net.input_weights().numpy())
    d_ei, d_ie = net.inhibition.delay_ei, net.inhibition.delay_ie
    assert dict(g.predecessors("w_ei")) == {"exc": d_ei}
    assert dict(g.predecessors("w_ie")) == {"inh": d_ie}
    assert dict(g.predecessors("exc")) == {"w_ie": 0, "w_in": 0}
    assert g.outputs == ["output"] and g.metadata["thresholds"] == "frozen"
    a = nmcompile.from_stdp(net, frozen_thresholds=False)["exc"]
    assert isinstance(a, ALIF) and a.rho == net.neuron.rho and a.adapt_step == \
        net.neuron.adapt_step
    net.assignments = None
    bare = nmcompile.from_stdp(net)
    assert "classes" not in bare and dict(bare.predecessors("output")) == {"exc": 0}
    net.inhibition = None
    assert set(nmcompile.from_stdp(net)) == {"input", "w_in", "exc", "output"}
    with pytest.raises(NmcompileError, match="STDPNetwork"):
        nmcompile.from_stdp(torch.nn.Linear(2, 2))


def test_without_inhibition_and_with_pair_rule_after_training() -> None:
    x = np.random.default_rng(0).random((40, 12))
    for net in (STDPNetwork((12,), 5, neuron=AdaptiveLIF(beta=0.9, threshold=1.5),
                            inhibition=None, num_steps=15, seed=1),
                STDPNetwork((3, 4), 4, neuron=AdaptiveLIF(beta=0.95, threshold=2.0),
                            rule=PairSTDP(), normalize=2.0, num_steps=15, seed=2,
                            patches=Patches((2, 2), (1, 2)))):
        w0 = net.w.clone()
        train(net, x, epochs=1, batch_size=8, progress=False)
        assert not torch.equal(net.w, w0) and (net.theta > 0).any()
        if net.normalize:
            torch.testing.assert_close(net.w.sum(-1), torch.full(net.w.shape[:2], 2.0,
                                                                 dtype=D))
        spikes = encode_data(net, x[:6], seed=4).numpy()
        for frozen in (True, False):
            graph = nmcompile.from_stdp(net, frozen)
            result = nmcompile.run(graph, spikes, record=True)
            mode = "frozen" if frozen else "adaptive"
            np.testing.assert_array_equal(result.spikes["exc"],
                                          net.run(spikes, mode)["exc"].numpy().astype(np.uint8))


def test_trained_digits_network_equals_its_graph_and_survives_the_file(tmp_path) -> None:
    x_tr, y_tr, _, _ = datasets.digits()
    net = digits_network(30, seed=3)
    train(net, x_tr[:320], epochs=1, batch_size=32, progress=False)
    assign_labels(net, responses(net, encode_data(net, x_tr[:320], seed=1)), y_tr[:320], 10)
    meta = {"dataset": {"name": "sklearn-digits", "split": "test", "test_size": 0.2,
                        "seed": 0}, "encoding": {"name": "poisson", "num_steps": 100,
                                                 "rate": 1.0, "seed": 1}}
    spikes, _ = datasets.test_inputs(meta, 24)
    for frozen in (True, False):
        result = check_equal(net, spikes, frozen)
        assert result.spikes["exc"].sum() > 24  # every digit makes some neuron fire, about
    graph = nmcompile.from_stdp(net, metadata=meta)
    path = nmcompile.save(graph, tmp_path / "stdp.nmc")
    loaded = nmcompile.load(path)
    assert loaded == graph and loaded.metadata["stdp"]["n_excitatory"] == 30
    np.testing.assert_array_equal(nmcompile.run(loaded, spikes).output(),
                                  nmcompile.run(graph, spikes).output())
    assert isinstance(loaded["w_out"], Dense)


def test_the_inhibitory_projection_quantises() -> None:
    """An all-negative matrix once made the quantiser's scale bound 0 (math domain error)."""
    net = random_network(0)
    q, report = nmcompile.quantize(nmcompile.from_stdp(net), "loihi2", report=True)
    names = [n for n in q if n.startswith("exc.from_inh")]
    assert len(names) == 1
    w = q[names[0]].weight
    assert w.max() == 0 and -255 <= w.min() < 0       # Loihi's inhibitory 8-bit range
    hollow = w != 0
    assert hollow.sum() == w.size - w.shape[0] and not hollow.diagonal().any()
    exc = next(layer for layer in report.layers if layer.name == "exc")
    assert {p.sign_mode for p in exc.projections} == {"excitatory", "inhibitory"}
    result = nmcompile.run(q, inputs(net, 0), record=True)
    assert result.spikes["inh"].sum() > 0
