"""Quantisation-aware fine-tuning (issue 17, point 2): `nmcompile.finetune`.

Oracles: the quantised graph itself (its mantissas, exponents, thresholds, decays and biases
times 2**e * 64 / S are what the fake quantiser must produce, exactly), the emulator's spikes
(the fake-quantised PyTorch model must make the same), and the acceptance point on a CI-sized
digits model: where post-training quantisation loses at least 3 points of test accuracy on
the emulator, fine-tuning recovers at least half of them, measured on the emulator too.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import nmcompile
from nmcompile import datasets, demo
from nmcompile import nn as snn
from nmcompile.errors import NmcompileError, UnsupportedError
from nmcompile.ir.quantized import ACT_SHIFT, QSparse
from nmcompile.quantization import PROFILES, FakeQuantizer
from nmcompile.stdp.network import one_thread

UNIT = 1 << ACT_SHIFT


def _profile(bits: int) -> nmcompile.quantization.Profile:
    return dataclasses.replace(PROFILES["loihi2"], weight_bits=bits)


@pytest.fixture(scope="module")
def digits() -> dict:
    """The demo's network with 64 hidden neurons, trained 3 epochs (seeded, one thread)."""
    with one_thread():
        d = demo.Demo(out_dir=Path(tempfile.mkdtemp(prefix="finetune-")), epochs=3, hidden=64,
                      log=lambda _: None)
        demo.stage_train(d)
    graph = nmcompile.from_torch(d.model, torch.zeros(1, 1, 64), dt=1e-3,
                                 metadata={"dataset": demo.DATASET, "encoding": demo.ENCODING})
    test_x, test_y = datasets.test_inputs(graph.metadata)
    calibration, _ = datasets.train_inputs(graph.metadata, 128)
    x_tr, y_tr, _, _ = datasets.digits(demo.DATASET["test_size"], demo.DATASET["seed"])
    train = datasets.encode_spikes(x_tr, {**demo.ENCODING, "seed": 10})
    return {"model": d.model, "graph": graph, "test": (test_x, test_y),
            "calibration": calibration, "train": (train, y_tr)}


def _accuracy(graph: nmcompile.Graph, spikes: np.ndarray, labels: np.ndarray) -> float:
    out = nmcompile.run(graph, spikes).output()  # a quantised graph: the emulator
    return float((snn.loss.predict_count(torch.as_tensor(out.astype(np.float32))).numpy()
                  == labels).mean())


def _quantized(model: nn.Module, bits: int, calibration: np.ndarray) -> nmcompile.Graph:
    graph = nmcompile.from_torch(model, torch.zeros(1, 1, *calibration.shape[2:]))
    return nmcompile.quantize(graph, _profile(bits), calibration)


def _matrix(node) -> np.ndarray:
    """A quantised projection's mantissas as one array (a QSparse scattered back)."""
    if isinstance(node, QSparse):
        m = np.zeros(node.shape, np.int64)
        m[node.rows, node.cols] = node.values
        return m
    return np.asarray(node.weight, np.int64)


def _small_models() -> dict[str, nn.Module]:
    torch.manual_seed(5)
    mlp = snn.sequential(nn.Linear(12, 16), snn.LIF(beta=0.9, threshold=0.7),
                         nn.Linear(16, 5, bias=False), snn.CubaLIF(alpha=0.5, beta=0.8))
    excitatory = snn.sequential(nn.Linear(12, 8, bias=False),
                                snn.ALIF(beta=0.95, threshold=torch.linspace(0.5, 1.5, 8)))
    with torch.no_grad():
        excitatory.step[0].weight.abs_()
    recurrent = snn.sequential(nn.Linear(12, 10),
                               snn.Recurrent(snn.LIF(beta=0.85, threshold=1.2), size=10))
    conv = snn.sequential(nn.Conv2d(1, 3, 3), snn.LIF(beta=0.9), nn.Flatten(),
                          nn.Linear(3 * 2 * 2, 4), snn.LIF(beta=0.9))
    return {"mlp": mlp, "excitatory": excitatory, "recurrent": recurrent, "conv": conv}


@pytest.mark.parametrize("bits", [8, 4, 2])
@pytest.mark.parametrize("kind", ["mlp", "excitatory", "recurrent", "conv"])
def test_fake_quantised_tensors_are_the_quantised_graphs_values(kind: str, bits: int) -> None:
    """Every fake-quantised weight is m * 2**e * 64 / S of the quantised graph, bit for bit;
    thresholds vth * 64 / S, decays 1 - dv / 4096 (1 - (du + 1) / 4096), biases
    bias_mant * 2**bias_exp / S (float32 of those float64 values, compared exactly)."""
    _check_exact(_small_models()[kind], _profile(bits), (1, 4, 4) if kind == "conv" else (12,))


def test_fake_quantisation_follows_per_layer_widths() -> None:
    fq = _check_exact(_small_models()["mlp"], _profile(8), (12,), layer_bits={"lif1": 3})
    assert fq.bits == {"lif1.from_input": 3, "cubalif3.from_lif1": 8}


def _check_exact(model: nn.Module, profile, shape: tuple[int, ...], **kwargs) -> FakeQuantizer:
    calibration = (np.random.default_rng(1).random((20, 16, *shape)) < 0.3).astype(np.uint8)
    fq = FakeQuantizer(model, profile, calibration, **kwargs)
    q, tensors = fq.qgraph, fq.tensors(model)
    scales = q.metadata["quantization"]["scales"]
    assert fq.projections and fq.notes == []
    for p in fq.projections:
        node = q[p.name]
        expect = _matrix(node).reshape(tensors[p.weight].shape) * 2.0 ** node.weight_exp * UNIT \
            / scales[p.layer]
        got = tensors[p.weight].detach().double().numpy()
        assert np.array_equal(got, expect), p.name
    for layer in fq.layers:
        node, s = q[layer.name], scales[layer.name]
        params = node.params()
        want = {"threshold": np.asarray(params["vth"]) * UNIT / s,
                "beta": 1 - np.asarray(params["dv"]) / 4096,
                "alpha": 1 - (np.asarray(params["du"]) + 1) / 4096}
        if "vth_step" in params:
            want |= {"adapt_step": np.asarray(params["vth_step"]) * UNIT / s,
                     "rho": 1 - np.asarray(params["da"]) / 4096}
        for param, name in layer.params.items():
            got = tensors[name].detach().double().numpy()
            assert np.array_equal(np.broadcast_to(got, np.shape(want[param])), want[param]), \
                (layer.name, param)
        own = model.state_dict()
        if layer.bias is not None and not any(own[n].any() for n in layer.bias_rest):
            bias = np.asarray(params["bias_mant"]) * 2.0 ** params["bias_exp"] / s
            got = tensors[layer.bias].detach().double().numpy()
            if layer.bias_conv:
                got = np.broadcast_to(got[:, None, None], np.shape(bias))
            assert np.array_equal(np.broadcast_to(got, np.shape(bias)), bias), layer.name
    return fq


def test_gradients_pass_straight_through() -> None:
    model = _small_models()["mlp"]
    calibration = (np.random.default_rng(2).random((10, 8, 12)) < 0.3).astype(np.uint8)
    fq = FakeQuantizer(model, _profile(3), calibration)
    w = dict(model.named_parameters())["step.0.weight"]
    fq.tensors(model)["step.0.weight"].sum().backward()
    assert torch.equal(w.grad, torch.ones_like(w))


def test_finetune_returns_a_copy_and_leaves_the_model_alone(digits: dict) -> None:
    model = digits["model"]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = digits["train"]
    with one_thread():
        tuned, history = nmcompile.finetune(model, (x[:, :256], y[:256]), _profile(3),
                                            epochs=1, calibration=digits["calibration"])
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert tuned is not model
    assert not torch.equal(tuned.step[0].weight, model.step[0].weight)
    assert len(history.loss) == 1 and len(history.scales) == 2  # the start, the end
    assert nmcompile.quantization.finetune is nmcompile.quantization.qat.finetune


def test_acceptance_qat_recovers_half_of_what_ptq_loses(digits: dict) -> None:
    """At the widest weight width where post-training quantisation of the CI model loses
    >= 3 points of test accuracy on the emulator (going down from 8 bits), and at 2 bits,
    fine-tuning (2 epochs) gets back at least half; the fake-quantised model's output spikes
    equal the emulator's on (nearly) every bin. At 2 bits the training, not only the initial
    clipping (`epochs=0`), does the work."""
    test_x, test_y = digits["test"]
    calibration = digits["calibration"]
    float_acc = _accuracy(digits["graph"], test_x, test_y)
    ptqs = {b: _accuracy(_quantized(digits["model"], b, calibration), test_x, test_y)
            for b in (8, 6, 5, 4, 3, 2)}
    lossy = next(b for b, acc in ptqs.items() if float_acc - acc >= 0.03)
    print(f"float {float_acc:.3f}, PTQ {ptqs}, widest lossy width {lossy}")
    for bits in dict.fromkeys((lossy, 2)):
        ptq = ptqs[bits]
        assert float_acc - ptq >= 0.03, (bits, float_acc, ptq)
        with one_thread():
            tuned, history = nmcompile.finetune(digits["model"], digits["train"],
                                                _profile(bits), epochs=2, lr=2e-3,
                                                calibration=calibration)
        qat = _accuracy(_quantized(tuned, bits, calibration), test_x, test_y)
        assert (qat - ptq) / (float_acc - ptq) >= 0.5, (bits, float_acc, ptq, qat)
        print(f"{bits} bits: QAT {qat:.3f}, recovered {(qat - ptq) / (float_acc - ptq):.2f}")
        assert history.agreement["bins"] >= 0.999, history.agreement
        assert history.agreement["predictions"] >= 0.99, history.agreement
    clipped, _ = nmcompile.finetune(digits["model"], digits["train"], _profile(2), epochs=0,
                                    calibration=calibration)
    assert qat - _accuracy(_quantized(clipped, 2, calibration), test_x, test_y) >= 0.05


def test_a_layer_it_cannot_fake_quantise_is_named() -> None:
    model = snn.sequential(nn.Linear(12, 8), nn.BatchNorm1d(8), snn.LIF(beta=0.9))
    model.eval()
    calibration = np.zeros((5, 4, 12), np.uint8)
    with pytest.raises(UnsupportedError, match=r"layer '0' \(Linear\).*BatchNorm"):
        FakeQuantizer(model, "loihi2", calibration)
    model = snn.sequential(nn.Linear(12, 8), nn.Linear(8, 8), snn.LIF(beta=0.9))
    with pytest.raises(UnsupportedError, match=r"layer '\d' \(Linear\).*feed the neuron layer"):
        FakeQuantizer(model, "loihi2", calibration)


def test_bad_data_is_refused_with_the_fix() -> None:
    model = _small_models()["mlp"]
    spikes = np.zeros((5, 4, 12), np.uint8)
    batches = ((spikes, np.zeros(4, np.int64)) for _ in range(2))
    with pytest.raises(NmcompileError, match=r"iterator.*list of batches"):
        nmcompile.finetune(model, batches, epochs=1)
    with pytest.raises(NmcompileError, match=r"labels must have shape \(N,\)"):
        nmcompile.finetune(model, (spikes, np.zeros(3, np.int64)), epochs=1)
