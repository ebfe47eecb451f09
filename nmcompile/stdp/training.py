"""Unsupervised training, label assignment (Diehl and Cook), prediction and reconstruction.

- `train`: present the data in shuffled batches as Poisson spikes
  (`nmcompile.nn.encode.poisson`), learning on; no labels.
- `responses`: spike counts (samples, N) of the inference network (frozen or adaptive).
- `assign_labels`: each neuron's class is the one it responds to most on average.
- `predict`: the class scores of the readout the IR carries: an `LI` (beta = 1) accumulating,
  per step, `R @ spikes`, R holding 1/n_c from each of the n_c neurons of class c (the mean
  response per class), computed with the IR's own `li_step`; the prediction is the argmax.
- `reconstruct`: each input rebuilt from the weights of the neurons it makes fire, weighted
  by their spike counts.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import NmcompileError, ShapeError
from ..ir import dynamics
from ..nn import encode
from ..progress import bar
from .network import DTYPE, STDPNetwork

__all__ = ["assign_labels", "class_scores", "encode_data", "predict", "reconstruct",
           "responses", "train"]


def encode_data(net: STDPNetwork, x: np.ndarray, generator: torch.Generator | None = None,
                seed: int | None = None) -> torch.Tensor:
    """Poisson spikes (T, n, n_inputs) of data x (n, ...) in [0, 1], as the net trains:
    flattened, as the graph's input takes them (the network accepts either layout)."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim < 1 or arr.size != len(arr) * net.n_inputs:
        raise ShapeError(f"STDP network input: expected samples of {net.n_inputs} values "
                         f"(shape {net.input_shape}), got data of shape {arr.shape}")
    xt = torch.as_tensor(arr).reshape(len(arr), net.n_inputs)
    return encode.poisson(xt, net.num_steps, net.rate, generator=generator, seed=seed)


def train(net: STDPNetwork, x: np.ndarray, epochs: int = 1, batch_size: int = 16,
          seed: int = 0, progress: bool = True,
          callback: Callable[[int, STDPNetwork], None] | None = None) -> dict[str, float]:
    """Learn from data x (n, *input_shape) in [0, 1] without labels; returns timing and
    activity figures ('seconds', 'spikes_per_sample')."""
    if epochs < 0 or batch_size < 1:
        raise NmcompileError("train: need epochs >= 0 and batch_size >= 1")
    gen = torch.Generator().manual_seed(seed)
    start, spikes, seen = time.perf_counter(), 0.0, 0
    for epoch in range(epochs):
        perm = torch.randperm(len(x), generator=gen).numpy()
        batches = range(0, len(x), batch_size)
        if progress:
            batches = bar(batches, f"stdp epoch {epoch + 1}/{epochs}", unit="batch")
        for k in batches:
            chunk = x[perm[k:k + batch_size]]
            out = net.run(encode_data(net, chunk, generator=gen), mode="train")
            spikes += float(out["exc"].sum())
            seen += len(chunk)
        if callback is not None:
            callback(epoch, net)
    return {"seconds": time.perf_counter() - start,
            "spikes_per_sample": spikes / max(seen, 1)}


def responses(net: STDPNetwork, spikes: torch.Tensor | np.ndarray, mode: str = "frozen",
              chunk: int = 256) -> np.ndarray:
    """Excitatory spike counts (samples, N) for input spikes (T, samples, ...)."""
    spikes = torch.as_tensor(spikes)
    parts = [net.run(spikes[:, k:k + chunk], mode)["exc"].sum(0)
             for k in range(0, spikes.shape[1], chunk)]
    return torch.cat(parts).numpy()


def assign_labels(net: STDPNetwork, counts: np.ndarray, labels: np.ndarray,
                  n_classes: int | None = None) -> np.ndarray:
    """Give each neuron the class with its highest mean spike count (Diehl and Cook); store
    it in `net.assignments` and return it. A neuron that never fires gets class -1."""
    labels = np.asarray(labels)
    k = int(labels.max()) + 1 if n_classes is None else n_classes
    mean = np.stack([counts[labels == c].mean(0) if (labels == c).any()
                     else np.zeros(counts.shape[1]) for c in range(k)])
    assignments = mean.argmax(0)
    assignments[mean.max(0) == 0] = -1
    net.assignments, net.n_classes = assignments, k
    return assignments


def class_scores(net: STDPNetwork, exc: torch.Tensor) -> np.ndarray:
    """The readout's scores (samples, classes) from excitatory spikes (T, samples, N): an
    `LI(beta=1)` integrating `R @ s` each step, exactly as the IR's readout computes it."""
    R = torch.as_tensor(net.readout_weights(), dtype=DTYPE)
    T, B = exc.shape[:2]
    i = v = torch.zeros((B, R.shape[0]), dtype=DTYPE)
    for t in range(T):
        i, v = dynamics.li_step(F.linear(exc[t].to(DTYPE), R), i, v, beta=1.0, alpha=0.0,
                                bias=0.0)
    return v.numpy()


def predict(net: STDPNetwork, spikes: torch.Tensor | np.ndarray, mode: str = "frozen",
            chunk: int = 256) -> np.ndarray:
    """Predicted classes of input spikes (T, samples, ...)."""
    spikes = torch.as_tensor(spikes)
    out = [class_scores(net, net.run(spikes[:, k:k + chunk], mode)["exc"]).argmax(1)
           for k in range(0, spikes.shape[1], chunk)]
    return np.concatenate(out)


def reconstruct(net: STDPNetwork, counts: np.ndarray) -> np.ndarray:
    """Inputs rebuilt from the learned features: sum_k c_k W_k / sum_k c_k (samples, inputs),
    c the spike counts; each patch's neurons rebuild their patch (overlaps averaged). An input
    that made nothing fire is rebuilt as zeros."""
    W = net.input_weights().numpy()                       # (N, inputs)
    P, n = net.n_patches, net.n_neurons
    c = counts.reshape(len(counts), P, n)
    num = np.einsum("spn,pni->si", c, W.reshape(P, n, -1))
    # weight of each patch's picture at each input: its total count where it covers the input
    cover = np.zeros((P, net.n_inputs))
    for p in range(P):
        cover[p, net.indices[p]] = 1.0
    den = c.sum(-1) @ cover                               # (samples, inputs)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)
