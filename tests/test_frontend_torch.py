"""from_torch: what it maps, what it folds, and the errors for what it cannot represent."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import nmcompile
from nmcompile import nn as snn
from nmcompile.errors import NmcompileError, UnsupportedError
from nmcompile.ir import Conv2d, Dense, Flatten, Scale


def _spikes(shape, seed=0, p=0.3):
    return (torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) < p).double()


def _trained_bn(bn: nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(bn.num_features, generator=g) * 0.3)
        bn.running_var.copy_(torch.rand(bn.num_features, generator=g) + 0.5)
        bn.weight.copy_(torch.rand(bn.num_features, generator=g) + 0.5)
        bn.bias.copy_(torch.randn(bn.num_features, generator=g) * 0.2)


@pytest.mark.parametrize("seed", range(3))
def test_batchnorm_is_folded_into_the_projection(seed: int) -> None:
    torch.manual_seed(seed)
    bn1, bn2 = nn.BatchNorm2d(4), nn.BatchNorm1d(10)
    _trained_bn(bn1, seed)
    _trained_bn(bn2, seed + 1)
    step = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), bn1, snn.LIF(0.9, 0.5), nn.Dropout(0.2),
                         nn.Flatten(), nn.Linear(4 * 36, 10), bn2, snn.LI(0.8))
    model = snn.TimeLoop(step).double().eval()
    x = _spikes((10, 3, 2, 6, 6), seed)
    graph = nmcompile.from_torch(model, x)
    kinds = [type(graph[n]).__name__ for n in graph.schedule()]
    assert kinds == ["Input", "Conv2d", "LIF", "Flatten", "Dense", "LI", "Output"]
    # Folded weights: W * gamma / sqrt(var + eps), bias (b - mean) * gamma / sqrt(var + eps) + beta
    conv = graph["conv2d0"]
    s = (bn1.weight / torch.sqrt(bn1.running_var + bn1.eps)).detach().numpy()
    w, b = step[0].weight.detach().numpy(), step[0].bias.detach().numpy()
    np.testing.assert_allclose(conv.weight, w * s[:, None, None, None])
    np.testing.assert_allclose(conv.bias, (b - bn1.running_mean.numpy()) * s
                               + bn1.bias.detach().numpy())
    # The folded graph computes what the model computes: the readout voltage to rounding, and
    # the hidden spikes exactly unless a voltage sits within rounding of its threshold.
    hidden = []
    step[2].register_forward_hook(lambda _m, _i, out: hidden.append(out.clone()))
    with torch.no_grad():
        want = model(x).numpy()
    result = nmcompile.run(graph, x.numpy().astype(np.int8), record=True)
    assert result.margins["lif2"] > 1e-9
    np.testing.assert_array_equal(torch.stack(hidden).reshape(10, 3, -1).numpy(),
                                  result.spikes["lif2"])
    np.testing.assert_allclose(result.output(), want, rtol=1e-9, atol=1e-9)


def test_batchnorm_without_projection_is_refused() -> None:
    step = nn.Sequential(nn.BatchNorm1d(4), snn.LIF(0.9))
    with pytest.raises(UnsupportedError, match=r"module '0' \(BatchNorm1d\).*folded"):
        nmcompile.from_torch(step, torch.zeros(2, 1, 4))


@pytest.mark.parametrize("module, name", [
    (nn.MaxPool2d(2), "MaxPool2d"),
    (nn.LSTM(4, 4), "LSTM"),
    (nn.ReLU(), "ReLU"),
])
def test_unsupported_module_is_named(module, name) -> None:
    step = nn.Sequential(nn.Linear(4, 4), module, snn.LIF(0.9))
    with pytest.raises(UnsupportedError) as info:
        nmcompile.from_torch(step, torch.zeros(2, 1, 4))
    assert f"module '1' ({name}) is not supported" in str(info.value)
    assert "nn.Linear" in str(info.value)  # lists what is supported
    assert isinstance(info.value, NmcompileError)


class _LoopsOverTime(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc, self.lif = nn.Linear(4, 3), snn.LIF(0.9)

    def forward(self, x):
        return torch.stack([self.lif(self.fc(x[t])) for t in range(x.shape[0])])


class _UnrolledLoop(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc, self.lif = nn.Linear(4, 3), snn.LIF(0.9)

    def forward(self, x):
        out = 0
        for _ in range(3):
            out = self.lif(self.fc(x))
        return out


@pytest.mark.parametrize("model", [_LoopsOverTime(), _UnrolledLoop()])
def test_python_loop_over_time_gets_a_clear_error(model) -> None:
    with pytest.raises(UnsupportedError, match="TimeLoop"):
        nmcompile.from_torch(model, torch.zeros(5, 1, 4))


class _Arith(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(4, 3), nn.Linear(4, 3)
        self.lif = snn.LIF(0.9, 0.5)

    def forward(self, x):
        return self.lif(0.5 * self.a(x) - self.b(torch.flatten(x, 1)))


def test_scale_subtract_and_identity_map_exactly() -> None:
    torch.manual_seed(0)
    model = snn.TimeLoop(_Arith()).double()
    x = _spikes((12, 2, 4), 1, 0.6)
    graph = nmcompile.from_torch(model, x)
    kinds = sorted(type(n).__name__ for n in graph.nodes.values())
    assert kinds.count("Scale") == 2 and kinds.count("Flatten") == 1
    assert isinstance(graph["a"], Dense) and isinstance(graph["b"], Dense)
    with torch.no_grad():
        want = model(x).numpy().astype(np.uint8)
    np.testing.assert_array_equal(nmcompile.run(graph, x.numpy()).output(), want)


def test_recurrent_becomes_a_delayed_cycle() -> None:
    step = nn.Sequential(nn.Linear(3, 5), snn.Recurrent(snn.LIF(0.9), 5))
    graph = nmcompile.from_torch(step, torch.zeros(2, 1, 3))
    assert ("recurrent1", "recurrent1_rec", 1) in graph.edges()
    assert ("recurrent1_rec", "recurrent1", 0) in graph.edges()


def test_several_inputs_and_outputs() -> None:
    class TwoWay(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fa, self.fb = nn.Linear(3, 2), nn.Linear(5, 2)
            self.lif, self.li = snn.LIF(0.9, 0.3), snn.LI(0.9)

        def forward(self, a, b):
            s = self.lif(self.fa(a) + self.fb(b))
            return s, self.li(s)

    torch.manual_seed(0)
    model = snn.TimeLoop(TwoWay()).double()
    a, b = _spikes((8, 2, 3), 0, 0.5), _spikes((8, 2, 5), 1, 0.5)
    graph = nmcompile.from_torch(model, (a, b))
    assert graph.inputs == ["a", "b"] and graph.outputs == ["output_0", "output_1"]
    with torch.no_grad():
        s, v = model(a, b)
    r = nmcompile.run(graph, {"a": a.numpy(), "b": b.numpy()})
    np.testing.assert_array_equal(r.outputs["output_0"], s.numpy().astype(np.uint8))
    np.testing.assert_array_equal(r.outputs["output_1"], v.numpy())


def test_conv_names_and_flatten() -> None:
    step = nn.Sequential(nn.Conv2d(1, 2, 3), snn.LIF(0.9), nn.Flatten(), nn.Linear(8, 2),
                         snn.LIF(0.9))
    graph = nmcompile.from_torch(step, torch.zeros(2, 1, 1, 4, 4), dt=1e-3,
                                 metadata={"source": "test"})
    assert isinstance(graph["conv2d0"], Conv2d) and isinstance(graph["flatten2"], Flatten)
    assert graph.dt == 1e-3 and graph.metadata == {"source": "test"}
    assert not any(isinstance(n, Scale) for n in graph.nodes.values())
