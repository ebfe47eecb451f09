"""An STDP network: inputs -> excitatory adaptive-threshold LIF layer with lateral inhibition.

    x (Poisson spikes) --W (learned, >= 0)--> E --w_ei * I, delay_ei--> I (IF)
                                              ^                         |
                                              +--- -w_ie * hollow, delay_ie

`STDPNetwork.run` simulates exactly the float IR that `nmcompile.from_stdp` builds from it
(the step functions of `nmcompile.ir.dynamics`, `F.linear` for every projection in float64, the
edge delays as ring buffers of past spikes, one step in the IR's order), so the compiled
network is the trained one. With `mode="train"` the rule changes W after every step (the
batch's changes summed) and the adaptive thresholds carry over from batch to batch.

Neurons are numbered patch by patch: excitatory neuron p * n + k is neuron k of patch p.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import NmcompileError, ShapeError
from ..ir import dynamics
from ..limits import check_bytes
from .inhibition import Inhibition, e_to_i, i_to_e
from .layers import AdaptiveLIF
from .patches import Patches, expand, patch_indices
from .rules import EventSTDP, PairSTDP

__all__ = ["MODES", "STDPNetwork", "one_thread"]

DTYPE = torch.float64
MODES = ("frozen", "adaptive", "train")


@contextmanager
def one_thread() -> Iterator[None]:
    """Run PyTorch on one thread: a step's operations are small (a few thousand numbers),
    and on a busy machine extra threads mostly wait for each other."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class STDPNetwork:
    """Configuration and learned state of an STDP network.

    - `input_shape`: e.g. (8, 8) or (64,); `n_neurons`: excitatory neurons per learner;
    - `neuron`: the excitatory `AdaptiveLIF`; `rule`: `EventSTDP` or `PairSTDP` (its bounds
      are the weight bounds); `inhibition`: an `Inhibition`, or None for none;
    - `patches`: a `Patches` (None: one learner over the whole input);
    - `normalize`: if set, after every learning step each neuron's weights are rescaled to
      sum to this value (Diehl and Cook's normalisation), then clipped to the bounds;
    - `num_steps`, `rate`: the Poisson encoding (`nmcompile.nn.encode.poisson`) used to train;
    - `init`: initial weights uniform in [w_min, w_min + init * (w_max - w_min)].

    Learned state: `w` (G, n, L), `theta` (excitatory neurons,), `assignments` (the class of
    each neuron once labelled, else None).
    """

    input_shape: tuple[int, ...]
    n_neurons: int
    neuron: AdaptiveLIF = field(default_factory=AdaptiveLIF)
    rule: EventSTDP | PairSTDP = field(default_factory=EventSTDP)
    inhibition: Inhibition | None = field(default_factory=Inhibition)
    patches: Patches | None = None
    normalize: float | None = None
    num_steps: int = 25
    rate: float = 1.0
    init: float = 0.3
    seed: int = 0
    w: Tensor = field(init=False, repr=False)
    theta: Tensor = field(init=False, repr=False)
    assignments: np.ndarray | None = field(default=None, repr=False)
    n_classes: int | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.input_shape = tuple(int(s) for s in self.input_shape)
        if not (isinstance(self.n_neurons, int) and self.n_neurons >= 1):
            raise NmcompileError(f"STDPNetwork: n_neurons must be an integer >= 1, got "
                                 f"{self.n_neurons!r}")
        self.n_inputs = int(np.prod(self.input_shape))
        if self.patches is None:
            self.indices = np.arange(self.n_inputs)[None]
        else:
            self.indices = patch_indices(self.input_shape, self.patches.size,
                                         self.patches.stride)
        P, L = self.indices.shape
        G = 1 if self.patches is None or self.patches.shared else P
        gen = torch.Generator().manual_seed(self.seed)
        lo, hi = self.rule.w_min, self.rule.w_max
        self.w = lo + self.init * (hi - lo) * torch.rand((G, self.n_neurons, L), generator=gen,
                                                         dtype=DTYPE)
        self.theta = torch.zeros(P * self.n_neurons, dtype=DTYPE)

    # -- structure --------------------------------------------------------------------------
    @property
    def n_patches(self) -> int:
        return self.indices.shape[0]

    @property
    def n_excitatory(self) -> int:
        return self.n_patches * self.n_neurons

    def input_weights(self) -> Tensor:
        """W (excitatory neurons, inputs): the dense matrix the network and the IR use."""
        return expand(self.w, self.indices, self.n_inputs)

    def thresholds(self) -> np.ndarray:
        """Per-neuron threshold at inference: base threshold + learned theta (float64)."""
        return (self.neuron.threshold + self.theta).numpy().copy()

    def inhibition_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """(E -> I, I -> E) matrices, each (excitatory neurons, excitatory neurons)."""
        if self.inhibition is None:
            raise NmcompileError("this STDP network has no inhibition")
        inh = self.inhibition
        return (e_to_i(self.n_excitatory, inh.w_ei),
                i_to_e(self.n_patches, self.n_neurons, inh.w_ie))

    # -- simulation ---------------------------------------------------------------------------
    def run(self, spikes: Tensor | np.ndarray, mode: str = "frozen") -> dict[str, Tensor]:
        """Simulate spikes (T, batch, *input_shape); returns {'exc': (T, batch, N) spikes,
        'inh': (T, batch, N) when inhibited}. `mode`: "frozen" (LIF thresholds), "adaptive"
        (ALIF thresholds), "train" (ALIF, learning on: changes `w` and `theta`)."""
        if mode not in MODES:
            raise NmcompileError(f"mode must be one of {MODES}, got {mode!r}")
        x = torch.as_tensor(spikes).to(DTYPE)
        if x.dim() < 2 or tuple(x.shape[2:]) not in (self.input_shape, (self.n_inputs,)):
            raise ShapeError(f"STDP network input: expected (T, batch, *{self.input_shape}), "
                             f"got {tuple(x.shape)}")
        T, B = x.shape[:2]
        x = x.reshape(T, B, self.n_inputs)
        N, P, n = self.n_excitatory, self.n_patches, self.n_neurons
        need = 8 * T * B * (self.n_inputs + 2 * N)  # inputs and both layers' spikes, float64
        check_bytes(need, f"STDP network: {T} steps of {B} samples (their spikes)",
                    fix="run fewer samples at a time")
        learn = mode == "train"
        W = self.input_weights()
        thr = torch.as_tensor(self.thresholds())
        state = self.neuron.init(B, N, DTYPE)
        zeros = torch.zeros((B, N), dtype=DTYPE)
        inh = self.inhibition
        if inh is not None:
            W_ei, W_ie = (torch.as_tensor(m, dtype=DTYPE) for m in self.inhibition_weights())
            v_inh = torch.zeros((B, N), dtype=DTYPE)
        exc_out: list[Tensor] = []
        inh_out: list[Tensor] = []
        idx = torch.as_tensor(self.indices, dtype=torch.long)
        if learn:
            rule_state = self.rule.init(B, tuple(self.indices.shape), (P, n), DTYPE)

        def past(history: list[Tensor], t: int) -> Tensor:
            return history[t] if t >= 0 else zeros

        def inhibitory_step(t: int) -> None:
            nonlocal v_inh
            drive = F.linear(past(exc_out, t - inh.delay_ei), W_ei)
            s, _, v_inh, _ = dynamics.lif_step(drive, zeros, v_inh, beta=1.0,
                                               threshold=inh.threshold, alpha=0.0, bias=0.0,
                                               reset="zero")
            inh_out.append(s)

        with torch.no_grad(), one_thread():
            for t in range(T):
                if inh is not None and inh.delay_ie == 0:
                    inhibitory_step(t)  # E reads this step's inhibition: I goes first
                drive = F.linear(x[t], W)
                if inh is not None:
                    drive = drive + F.linear(past(inh_out, t - inh.delay_ie), W_ie)
                s = self.neuron.step(drive, state, thr, adapt=mode != "frozen")
                exc_out.append(s)
                if inh is not None and inh.delay_ie > 0:
                    inhibitory_step(t)
                if learn and self._learn(rule_state, x[t][:, idx], s.reshape(B, P, n)):
                    W = self.input_weights()
            if learn:
                # as if the batch's samples had come one after another: B * T steps passed
                self.theta = self.neuron.rho ** (B * T) * self.theta + state["a"].sum(0)
        out = {"exc": torch.stack(exc_out)}
        if inh is not None:
            out["inh"] = torch.stack(inh_out)
        return out

    def _learn(self, rule_state: dict[str, Tensor], pre: Tensor, post: Tensor) -> bool:
        """One learning step; False when the rule changed nothing."""
        dw = self.rule.update(rule_state, pre, post, self.w)
        if dw is None:
            return False
        if self.w.shape[0] == 1:
            dw = dw.sum(0, keepdim=True)  # one learner shared by every patch
        self.w = self.rule.apply(self.w, dw)
        if self.normalize is not None:
            total = self.w.sum(-1, keepdim=True).clamp_min(1e-12)
            self.w = (self.w * (self.normalize / total)).clamp_(self.rule.w_min, self.rule.w_max)
        return True

    # -- reading out --------------------------------------------------------------------------
    def readout_weights(self) -> np.ndarray:
        """(classes, N): 1/n_c from each neuron assigned to class c (its mean response)."""
        if self.assignments is None:
            raise NmcompileError("assign labels first (nmcompile.stdp.assign_labels)")
        classes = int(self.assignments.max()) + 1 if self.n_classes is None else self.n_classes
        R = np.zeros((classes, self.n_excitatory))
        for c in range(classes):
            members = self.assignments == c
            if members.any():
                R[c, members] = 1.0 / members.sum()
        return R

    def to_dict(self) -> dict[str, Any]:
        """The configuration as JSON-safe data (for a graph's metadata)."""
        rule = type(self.rule).__name__
        return {"n_neurons": self.n_neurons, "n_excitatory": self.n_excitatory,
                "input_shape": list(self.input_shape), "rule": {"name": rule,
                                                                **vars(self.rule)},
                "neuron": vars(self.neuron),
                "inhibition": None if self.inhibition is None else vars(self.inhibition),
                "patches": None if self.patches is None else {
                    "size": list(self.patches.size),
                    "stride": list(self.patches.stride or self.patches.size),
                    "shared": self.patches.shared},
                "normalize": self.normalize, "num_steps": self.num_steps, "rate": self.rate}
