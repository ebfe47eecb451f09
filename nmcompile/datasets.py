"""Data sets and encodings that a graph's metadata can name, so tools regenerate test inputs.

A graph trained by the demo carries, in `graph.metadata`:

    "dataset":  {"name": "sklearn-digits", "split": "test", "test_size": 0.2, "seed": 0}
    "encoding": {"name": "poisson", "num_steps": 25, "rate": 1.0, "seed": 1}

`test_inputs(metadata, n)` rebuilds the first n encoded test samples from that, bit for bit,
without the data ever being stored in the model file.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .errors import NmcompileError
from .nn import encode

DATASETS = ("sklearn-digits",)


def digits(test_size: float = 0.2, seed: int = 0) -> tuple[np.ndarray, ...]:
    """scikit-learn's bundled 8x8 digits (no download): X in [0, 1], shape (n, 64), int labels.

    Returns (x_train, y_train, x_test, y_test), split with a fixed seed, stratified.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    x_tr, x_te, y_tr, y_te = train_test_split(x, data.target.astype(np.int64),
                                              test_size=test_size, random_state=seed,
                                              stratify=data.target)
    return x_tr, y_tr, x_te, y_te


def load_split(spec: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """The (features, labels) of the split a `dataset` metadata entry names."""
    name = spec.get("name")
    if name != "sklearn-digits":
        raise NmcompileError(f"unknown data set {name!r} in the model's metadata; known: "
                             f"{', '.join(DATASETS)}")
    x_tr, y_tr, x_te, y_te = digits(spec.get("test_size", 0.2), spec.get("seed", 0))
    return (x_te, y_te) if spec.get("split", "test") == "test" else (x_tr, y_tr)


def encode_spikes(x: np.ndarray, spec: dict[str, Any]) -> np.ndarray:
    """Encode features (n, *shape) in [0, 1] as spikes (T, n, *shape), uint8, per `spec`."""
    if spec.get("name") != "poisson":
        raise NmcompileError(f"unknown encoding {spec.get('name')!r} in the model's metadata; "
                             f"known: poisson")
    spikes = encode.poisson(torch.as_tensor(x), spec["num_steps"], rate=spec.get("rate", 1.0),
                            seed=spec.get("seed", 0))
    return spikes.numpy().astype(np.uint8)


def random_inputs(shapes: dict[str, tuple[int, ...]], n: int, num_steps: int = 25,
                  p: float = 0.2, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded Bernoulli spikes (T, n, *shape) for each input, for models that name no data."""
    rng = np.random.default_rng(seed)
    return {name: (rng.random((num_steps, n, *shape)) < p).astype(np.uint8)
            for name, shape in shapes.items()}


def test_inputs(metadata: dict[str, Any], n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The first n encoded samples (T, n, *shape) and labels of the data the model names."""
    if "dataset" not in metadata or "encoding" not in metadata:
        raise NmcompileError("the model's metadata names no data set and encoding; pass inputs "
                             "explicitly")
    x, y = load_split(metadata["dataset"])
    spikes = encode_spikes(x, metadata["encoding"])  # encode all, so a prefix is stable
    return (spikes, y) if n is None else (spikes[:, :n], y[:n])
