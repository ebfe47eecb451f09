"""Trainable spiking layers (PyTorch), surrogate gradients, encoders and losses.

Layers compute one step per call; `TimeLoop` (or `sequential`) runs them over time-major
spikes (T, batch, *features). Encoders are in `nmcompile.nn.encode`, losses in
`nmcompile.nn.loss`, surrogate gradients in `nmcompile.nn.surrogate`.
"""

from . import encode, loss, surrogate
from .loop import TimeLoop, reset_states, sequential
from .neurons import ALIF, LI, LIF, CubaLIF, Recurrent, SpikingModule

__all__ = [
    "ALIF", "LI", "LIF", "CubaLIF", "Recurrent", "SpikingModule", "TimeLoop", "encode", "loss",
    "reset_states", "sequential", "surrogate",
]
