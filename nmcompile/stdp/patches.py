"""Patching: cut an input into (overlapping or disjoint) patches, one learner per patch.

A patch is a window of `size` (height, width) pixels taken every `stride` pixels over an input
of shape (H, W) or (C, H, W) (all channels of the window belong to the patch). `indices`
(P, L) lists, for each of the P patches, the flat (C order) input positions of its L values;
the learner of patch p sees `x[:, indices[p]]`.

The learners' weights `w` (G, n, L) (G = 1 shared by every patch, like a convolution; G = P
one per patch) become one dense matrix (P * n, n_inputs), `expand(w, indices, n_inputs)`:
row p * n + k holds neuron k of patch p, zero outside its patch. That matrix is what the
network computes with and what the IR's `Dense` holds, so training and graph use the same
numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..errors import ShapeError

__all__ = ["Patches", "expand", "patch_indices"]


@dataclass(frozen=True)
class Patches:
    """How to cut the input: `size` and `stride` in pixels, `shared` one learner for all."""

    size: tuple[int, int]
    stride: tuple[int, int] | None = None   # default: size (disjoint patches)
    shared: bool = False


def patch_indices(shape: tuple[int, ...], size: tuple[int, int],
                  stride: tuple[int, int] | None = None) -> np.ndarray:
    """(P, L) flat input positions of each patch, patches in row-major order of their corner."""
    if len(shape) == 2:
        shape = (1, *shape)
    if len(shape) != 3:
        raise ShapeError(f"patches need an input of shape (H, W) or (C, H, W), got {shape}")
    c, h, w = shape
    kh, kw = size
    sh, sw = stride or size
    if not (0 < kh <= h and 0 < kw <= w and sh > 0 and sw > 0):
        raise ShapeError(f"patch size {size} with stride {(sh, sw)} does not fit an input of "
                         f"{h}x{w}: use 0 < size <= input and stride > 0")
    flat = np.arange(c * h * w).reshape(c, h, w)
    rows = []
    for y in range(0, h - kh + 1, sh):
        for x in range(0, w - kw + 1, sw):
            rows.append(flat[:, y:y + kh, x:x + kw].reshape(-1))
    return np.stack(rows)


def expand(w: Tensor, indices: np.ndarray, n_inputs: int) -> Tensor:
    """The learners' weights (G, n, L) as one dense matrix (P * n, n_inputs)."""
    P, L = indices.shape
    G, n, _ = w.shape
    if P == 1 and n_inputs == L and np.array_equal(indices[0], np.arange(n_inputs)):
        return w[0].clone()
    full = torch.zeros((P, n, n_inputs), dtype=w.dtype)
    idx = torch.as_tensor(indices, dtype=torch.long).unsqueeze(1).expand(P, n, L)
    full.scatter_(2, idx, w.expand(P, n, L) if G == 1 else w)
    return full.reshape(P * n, n_inputs)
