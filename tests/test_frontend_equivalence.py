"""The float IR equals the PyTorch model: spikes and voltages, float64, on seeded random models.

Each model is built from `nmcompile.nn` layers and `torch.nn` projections, run by PyTorch
(`TimeLoop`) and, after `from_torch`, by the IR's float interpreter. Zero spike mismatches are
required; the smallest distance of any voltage to its threshold is printed so that a near-tie
(where a different rounding could flip a spike) would be visible.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import nmcompile
from nmcompile import nn as snn

KINDS = ("dense", "conv", "recurrent", "skip", "cuba", "alif", "li_readout", "deep_conv")


def _neuron(kind: str, rng: np.random.Generator, reset: str, n: int | None = None):
    beta = float(rng.uniform(0.5, 1.0))
    thr = float(rng.uniform(0.5, 1.5))
    if kind == "cuba":
        return snn.CubaLIF(alpha=float(rng.uniform(0.2, 0.9)), beta=beta, threshold=thr,
                           reset=reset)
    if kind == "alif":
        return snn.ALIF(beta, thr, rho=float(rng.uniform(0.8, 1.0)),
                        adapt_step=float(rng.uniform(0.05, 0.5)), reset=reset)
    if n is not None and rng.random() < 0.5:  # per-neuron parameters
        return snn.LIF(torch.as_tensor(rng.uniform(0.5, 1.0, n)), threshold=thr, reset=reset,
                       bias=torch.as_tensor(rng.normal(0, 0.05, n)))
    return snn.LIF(beta, thr, reset=reset)


class _Skip(nn.Module):
    def __init__(self, rng: np.random.Generator, reset: str, n_in: int, n_h: int, n_out: int):
        super().__init__()
        self.fc1 = nn.Linear(n_in, n_h)
        self.lif1 = _neuron("dense", rng, reset, n_h)
        self.fc2 = nn.Linear(n_h, n_out)
        self.skip = nn.Linear(n_in, n_out, bias=False)
        self.lif2 = _neuron("dense", rng, reset)

    def forward(self, x):
        return self.lif2(self.fc2(self.lif1(self.fc1(x))) + self.skip(x))


def random_model(seed: int) -> tuple[nn.Module, torch.Tensor]:
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    kind = KINDS[seed % len(KINDS)]
    reset = ("zero", "subtract")[(seed // len(KINDS)) % 2]
    T, B = int(rng.integers(8, 20)), int(rng.integers(1, 5))
    n_in, n_h, n_out = (int(v) for v in rng.integers(4, 40, 3))
    if kind in ("conv", "deep_conv"):
        c, hw = int(rng.integers(1, 4)), int(rng.integers(6, 12))
        layers = [nn.Conv2d(c, 4, 3, padding=int(rng.integers(0, 2)),
                            stride=int(rng.integers(1, 3))), _neuron("dense", rng, reset)]
        if kind == "deep_conv":
            layers += [nn.Conv2d(4, 6, 3, padding=1, groups=2), _neuron("cuba", rng, reset),
                       nn.AvgPool2d(2)]
        layers += [nn.Flatten()]
        probe = nn.Sequential(*[m for m in layers if not isinstance(m, snn.SpikingModule)])
        n_flat = probe(torch.zeros(1, c, hw, hw)).shape[1]
        layers += [nn.Linear(n_flat, n_out), _neuron("dense", rng, reset)]
        step, shape = nn.Sequential(*layers), (c, hw, hw)
    elif kind == "recurrent":
        step = nn.Sequential(nn.Linear(n_in, n_h), snn.Recurrent(_neuron("dense", rng, reset), n_h),
                             nn.Linear(n_h, n_out), _neuron("alif", rng, reset))
        shape = (n_in,)
    elif kind == "skip":
        step, shape = _Skip(rng, reset, n_in, n_h, n_out), (n_in,)
    elif kind == "li_readout":
        step = nn.Sequential(nn.Linear(n_in, n_h), _neuron("dense", rng, reset),
                             nn.Linear(n_h, n_out), snn.LI(float(rng.uniform(0.5, 1.0))))
        shape = (n_in,)
    else:
        step = nn.Sequential(nn.Linear(n_in, n_h), _neuron(kind, rng, reset, n_h),
                             nn.Linear(n_h, n_out), _neuron(kind, rng, reset))
        shape = (n_in,)
    with torch.no_grad():  # strong enough weights that every layer spikes
        for m in step.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                m.weight.mul_(3.0)
    model = snn.TimeLoop(step).double().eval()
    x = (torch.rand(T, B, *shape, generator=torch.Generator().manual_seed(seed)) < 0.3).double()
    return model, x


def _record_layers(step: nn.Module) -> dict[str, list[torch.Tensor]]:
    """Per-step outputs of every spiking layer, keyed by the IR name the frontend gives it."""
    record: dict[str, list[torch.Tensor]] = {}
    inner = {id(m.neuron) for m in step.modules() if isinstance(m, snn.Recurrent)}
    for path, m in step.named_modules():
        if isinstance(m, snn.SpikingModule) and id(m) not in inner:
            name = path if not path[0].isdigit() else f"{type(m).__name__.lower()}{path}"
            record[name] = []
            m.register_forward_hook(lambda _m, _i, out, key=name: record[key].append(out.clone()))
    return record


@pytest.mark.parametrize("seed", range(24))
def test_interpreter_equals_torch_float64(seed: int) -> None:
    model, x = random_model(seed)
    graph = nmcompile.from_torch(model, x)
    hidden = _record_layers(model.step)
    with torch.no_grad():
        expected = model(x).numpy()
    result = nmcompile.run(graph, x.numpy().astype(np.int8), record=True)
    got = result.output()
    T, B = x.shape[:2]
    expected = expected.reshape(T, B, -1)
    if got.dtype == np.uint8:  # spiking output: exact spike equality
        mismatches = int((expected.astype(np.uint8) != got).sum())
        assert mismatches == 0
        assert np.array_equal(expected, got.astype(np.float64))
    else:  # LI readout voltage: the same float operations, so bit-equal
        assert np.array_equal(expected, got)
    for name, steps in hidden.items():  # every spiking layer, not only the output
        if name in result.spikes:
            want = torch.stack(steps).reshape(T, B, -1).numpy()
            assert np.array_equal(want.astype(np.uint8), result.spikes[name]), name
    # a Linear's bias into a current-based neuron runs as a constant source (bias_sources)
    assert set(result.spikes) - {"bias_source"} <= set(hidden)
    total = sum(result.counters["spikes"].values())
    assert total > 0, "the random model should spike"
    margin = min(result.margins.values())
    print(f"seed {seed}: {total} spikes, smallest |v - threshold| = {margin:.3g}")
