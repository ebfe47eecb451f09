"""Trainable layers: time-major calling convention, state handling, gradients, export."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nmcompile import nn as snn
from nmcompile.errors import NmcompileError
from nmcompile.ir import ALIF, LI, LIF


def _conv_model(surrogate: str = "fast_sigmoid") -> snn.TimeLoop:
    return snn.sequential(nn.Conv2d(2, 4, 3, padding=1), snn.LIF(0.9, 0.5, surrogate=surrogate),
                          nn.AvgPool2d(2), nn.Flatten(), nn.Linear(4 * 16, 5),
                          snn.Recurrent(snn.CubaLIF(0.5, 0.9, 0.5, surrogate=surrogate), 5))


def test_time_major_in_and_out_with_convolutions() -> None:
    x = (torch.rand(7, 3, 2, 8, 8) < 0.4).float()
    out = _conv_model()(x)
    assert out.shape == (7, 3, 5)
    assert set(out.unique().tolist()) <= {0.0, 1.0}


def test_state_is_reset_between_calls() -> None:
    torch.manual_seed(0)
    model = _conv_model()
    x = (torch.rand(6, 2, 2, 8, 8) < 0.5).float()
    with torch.no_grad():
        first, second = model(x), model(x)
    assert torch.equal(first, second)


@pytest.mark.parametrize("surrogate", ["fast_sigmoid", "sigmoid", "arctan"])
def test_gradients_flow_through_every_surrogate(surrogate: str) -> None:
    torch.manual_seed(1)
    model = _conv_model(surrogate)
    x = (torch.rand(8, 4, 2, 8, 8) < 0.5).float()
    loss = snn.loss.ce_count(model(x), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads)
    assert all(float(g.abs().sum()) > 0 for g in grads)


def test_reset_modes_differ_as_specified() -> None:
    x = torch.full((4, 1, 1), 0.75)
    zero = snn.sequential(snn.LIF(1.0, 1.0, reset="zero"))(x)[:, 0, 0].tolist()
    sub = snn.sequential(snn.LIF(1.0, 1.0, reset="subtract"))(x)[:, 0, 0].tolist()
    # zero: v 0.75, 1.5 s->0, 0.75, 1.5 s; subtract: 0.75, 1.5 s->0.5, 1.25 s->0.25, 1.0
    assert zero == [0, 1, 0, 1]
    assert sub == [0, 1, 1, 0]


def test_learnable_decay_is_clamped_and_exported() -> None:
    lif = snn.LIF(torch.tensor([0.5, 0.9]), learn_beta=True, learn_threshold=True)
    assert isinstance(lif.beta, nn.Parameter) and isinstance(lif.threshold, nn.Parameter)
    with torch.no_grad():
        lif.beta[1] = 1.3  # an optimiser step overshooting
    node = lif.to_ir()
    assert isinstance(node, LIF)
    assert node.beta.tolist() == [0.5, 1.0]
    assert isinstance(snn.ALIF(0.9).to_ir(), ALIF) and isinstance(snn.LI(0.9).to_ir(), LI)


def test_bad_arguments_are_clear() -> None:
    with pytest.raises(NmcompileError, match="reset must be one of"):
        snn.LIF(0.9, reset="none")
    with pytest.raises(NmcompileError, match="Recurrent wraps a spiking layer"):
        snn.Recurrent(snn.LI(0.9), 4)
