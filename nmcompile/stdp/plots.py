"""Figures of an STDP network: receptive fields and reconstructions (matplotlib, Agg)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .network import STDPNetwork

__all__ = ["plot_fields", "plot_reconstructions"]


def _save(fig, path: str | Path, dpi: int) -> Path:
    """A marked PNG, atomically; an existing file only when nmcompile wrote it."""
    import matplotlib.pyplot as plt

    from ..outputs import save_figure

    try:
        return save_figure(fig, path, dpi=dpi)
    finally:
        plt.close(fig)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _image_shape(net: STDPNetwork) -> tuple[int, int]:
    """How one neuron's weights are drawn: an (H, W) input as itself, a (C, H, W) one with
    its channels stacked vertically, a vector as a square when it is one, else as a row."""
    if len(net.input_shape) >= 2:
        return net.n_inputs // net.input_shape[-1], net.input_shape[-1]
    side = math.isqrt(net.n_inputs)
    return (side, side) if side * side == net.n_inputs else (1, net.n_inputs)


def plot_fields(nets: Sequence[tuple[str, STDPNetwork]], path: str | Path, columns: int = 20,
                max_neurons: int = 100, dpi: int = 80) -> Path:
    """One panel per (title, network): the input weights of its first `max_neurons` neurons
    as images, each labelled with its assigned class; saved as a PNG."""
    plt = _pyplot()
    rows = [(min(max_neurons, net.n_excitatory) + columns - 1) // columns for _, net in nets]
    total = sum(rows) + len(nets)  # one title row above each panel
    fig, axes = plt.subplots(total, columns, figsize=(columns * 0.5, total * 0.55),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    top = 0
    for (title, net), r in zip(nets, rows, strict=True):
        axes[top, 0].text(0, 0.1, title, transform=axes[top, 0].transAxes, fontsize=9,
                          ha="left", va="bottom")
        W = net.input_weights().numpy()
        shape = _image_shape(net)
        for k in range(min(max_neurons, net.n_excitatory)):
            ax = axes[top + 1 + k // columns, k % columns]
            ax.imshow(W[k].reshape(shape), cmap="gray_r", vmin=0)
            if net.assignments is not None:
                label = int(net.assignments[k])
                ax.set_title("-" if label < 0 else str(label), fontsize=6, pad=1)
        top += r + 1
    fig.subplots_adjust(left=0.01, right=0.99, top=0.99, bottom=0.01, wspace=0.1, hspace=0.6)
    return _save(fig, path, dpi)


def plot_reconstructions(net: STDPNetwork, originals: np.ndarray, rebuilt: np.ndarray,
                         path: str | Path, count: int = 10, dpi: int = 80) -> Path:
    """Originals (top row) and their reconstructions from the learned features (bottom)."""
    plt = _pyplot()
    shape = _image_shape(net)
    count = min(count, len(originals))
    fig, axes = plt.subplots(2, count, figsize=(count * 0.7, 1.6), squeeze=False)
    for k in range(count):
        for row, img in enumerate((originals[k], rebuilt[k])):
            ax = axes[row, k]
            ax.imshow(np.asarray(img).reshape(shape), cmap="gray_r", vmin=0)
            ax.axis("off")
    axes[0, 0].set_title("input", fontsize=7, loc="left")
    axes[1, 0].set_title("rebuilt", fontsize=7, loc="left")
    fig.subplots_adjust(left=0.01, right=0.99, top=0.88, bottom=0.01, wspace=0.1, hspace=0.3)
    return _save(fig, path, dpi)
