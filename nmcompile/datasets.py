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

from .errors import LimitError, NmcompileError

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
    name = spec.get("name") if isinstance(spec, dict) else spec
    if name != "sklearn-digits":
        raise NmcompileError(f"unknown data set {name!r} in the model's metadata; known: "
                             f"{', '.join(DATASETS)}")
    x_tr, y_tr, x_te, y_te = digits(spec.get("test_size", 0.2), spec.get("seed", 0))
    return (x_te, y_te) if spec.get("split", "test") == "test" else (x_tr, y_tr)


#: Spikes (steps x samples x features) that metadata-driven inputs may allocate: a model's
#: metadata is data from a file, so its `num_steps` is bounded like any size in a file.
MAX_SPIKES = 1 << 28


def check_size(steps: int, n: int, shape: tuple[int, ...], what: str) -> None:
    """Refuse (LimitError) inputs of more than MAX_SPIKES spikes, before allocating them."""
    size = int(steps) * int(n)
    for d in shape:
        size *= int(d)
    if size > MAX_SPIKES:
        raise LimitError(f"{what}: {steps:,} steps x {n:,} samples x {shape} features is "
                         f"{size:,} spikes, more than {MAX_SPIKES:,}; ask for fewer samples "
                         f"(--samples) or steps")


def _int_field(spec: dict[str, Any], key: str, default: int | None, low: int) -> int:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise NmcompileError(f"the model's metadata has encoding.{key} = {value!r}; it must be "
                             f"an integer >= {low}")
    return value


def encode_spikes(x: np.ndarray, spec: dict[str, Any], n: int | None = None) -> np.ndarray:
    """Encode features (N, *shape) in [0, 1] as spikes (T, n, *shape), uint8, per `spec`:
    the first `n` samples (all by default), equal to the first n of all N encoded at once,
    without encoding the others (the random stream is drawn one step at a time)."""
    if not isinstance(spec, dict) or spec.get("name") != "poisson":
        name = spec.get("name") if isinstance(spec, dict) else spec
        raise NmcompileError(f"unknown encoding {name!r} in the model's metadata; known: "
                             f"poisson")
    steps = _int_field(spec, "num_steps", None, 1)
    seed = _int_field(spec, "seed", 0, 0)
    n = len(x) if n is None else min(int(n), len(x))
    check_size(steps, n, x.shape[1:], "encoding.num_steps in the model's metadata")
    import torch  # here: reading the user's events or sizes needs no PyTorch

    from .nn import encode

    features = torch.as_tensor(x)
    rate = spec.get("rate", 1.0)
    encode.poisson(features[:1], 1, rate=rate)  # the encoder's checks of x and rate, once
    p = rate * features[:n]
    g = torch.Generator().manual_seed(seed)
    out = np.empty((steps, n, *x.shape[1:]), np.uint8)
    per_draw = max(1, (1 << 20) // max(features.numel(), 1))
    for t in range(0, steps, per_draw):  # whole steps of all N samples per draw: the same
        k = min(per_draw, steps - t)     # random stream as `encode.poisson` of all at once
        u = torch.rand((k, *features.shape), generator=g, dtype=features.dtype)
        out[t:t + k] = (u[:, :n] < p).numpy()
    return out


def random_inputs(shapes: dict[str, tuple[int, ...]], n: int, num_steps: int = 25,
                  p: float = 0.2, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded Bernoulli spikes (T, n, *shape) for each input, for models that name no data."""
    for name, shape in shapes.items():
        check_size(num_steps, n, shape, f"random inputs for {name!r}")
    rng = np.random.default_rng(seed)
    return {name: (rng.random((num_steps, n, *shape)) < p).astype(np.uint8)
            for name, shape in shapes.items()}


def train_inputs(metadata: dict[str, Any], n: int | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The first n samples of the training split of the data the model names, encoded with
    the encoding's seed + 1 (other spikes than the test inputs'): calibration data, never the
    split that accuracy is reported on."""
    if "dataset" not in metadata or "encoding" not in metadata:
        raise NmcompileError("the model's metadata names no data set and encoding; pass "
                             "calibration inputs explicitly")
    spec = metadata["dataset"]
    x, y = load_split({**spec, "split": "train"} if isinstance(spec, dict) else
                      {"name": spec, "split": "train"})
    enc = metadata["encoding"]
    spikes = encode_spikes(x, {**enc, "seed": int(enc.get("seed", 0)) + 1}, n)
    return spikes, (y if n is None else y[:n])


def test_inputs(metadata: dict[str, Any], n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The first n encoded samples (T, n, *shape) and labels of the data the model names."""
    if "dataset" not in metadata or "encoding" not in metadata:
        raise NmcompileError("the model's metadata names no data set and encoding; pass inputs "
                             "explicitly")
    x, y = load_split(metadata["dataset"])
    spikes = encode_spikes(x, metadata["encoding"], n)
    return spikes, (y if n is None else y[:n])
