"""Projections: stateless linear maps applied every step to the sum of a node's inputs.

Shapes are feature shapes (no time, no batch axis); images are (channels, height, width) as in
PyTorch. A projection's output at step t depends only on its input at step t.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import GraphError, ShapeError
from .node import (
    Node,
    Shape,
    array_param,
    check_broadcast,
    float_param,
    int_tuple,
    int_value,
    numeric_array,
    register,
)
from .synapses import conv_output_size


def _need(input_shape: Shape | None, name: str) -> Shape:
    if input_shape is None:
        raise ShapeError(f"node {name!r} has no incoming edge")
    return input_shape


def matrix_output_shape(node: Node, n_in: int, n_out: int, input_shape: Shape | None,
                        name: str) -> Shape:
    """Shape rule of the matrix projections: any input of n_in elements (read flattened,
    C order); output (n_out,), or `out_shape` when the node gives one."""
    shape = _need(input_shape, name)
    if int(np.prod(shape)) != n_in:
        raise ShapeError(f"node {name!r} ({type(node).__name__}) expects an input of {n_in} "
                         f"values, got shape {shape}; fix the weight's second dimension")
    out_shape = getattr(node, "out_shape", None)
    if out_shape is not None and int(np.prod(out_shape)) != n_out:
        raise ShapeError(f"node {name!r}: out_shape {out_shape} does not hold {n_out} values")
    return out_shape or (n_out,)


@register
@dataclass(eq=False)
class Dense(Node):
    """Fully connected: `y = W @ x + b`, with W of shape (out, in) and b of shape (out,).

    x is read flattened (C order), so a Dense may follow a convolution's (C, H, W) directly;
    y has shape (out,), or `out_shape` when given (a folded chain that ends in an image).
    The bias, when present, is added every step, whether or not any spike arrived.
    """

    weight: np.ndarray
    bias: np.ndarray | None = None
    out_shape: tuple[int, ...] | None = None
    kind = "projection"

    def __post_init__(self) -> None:
        self.weight = array_param(self.weight, "weight", ndim=2)
        if self.bias is not None:
            self.bias = array_param(self.bias, "bias", ndim=1)
            if self.bias.shape[0] != self.weight.shape[0]:
                raise GraphError(f"Dense bias has {self.bias.shape[0]} values for "
                                 f"{self.weight.shape[0]} outputs")
        if self.out_shape is not None:
            self.out_shape = tuple(int_value(s, "out_shape") for s in self.out_shape)

    def output_shape(self, input_shape: Shape | None, name: str) -> Shape:
        return matrix_output_shape(node=self, n_in=self.weight.shape[1],
                                   n_out=self.weight.shape[0], input_shape=input_shape, name=name)


def _indices(value, field: str, size: int) -> np.ndarray:
    """A 1-D array of indices in [0, size): int32 when the size allows (a 100M-synapse
    reservoir's indices take half the memory), else int64."""
    arr = numeric_array(value, field)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        raise GraphError(f"Sparse {field} must be a 1-D array of integers, got "
                         f"{arr.dtype} of shape {arr.shape}")
    if arr.size and (arr.min() < 0 or arr.max() >= size):
        raise GraphError(f"Sparse {field} fall outside [0, {size})")
    return arr.astype(np.int32 if size < 2**31 else np.int64, copy=False)


@register
@dataclass(eq=False)
class Sparse(Node):
    """`Dense` with only its listed synapses stored: `y[rows[k]] += values[k] * x[cols[k]]`,
    a matrix of shape (out, in) of which an entry not listed does not exist (a listed zero
    does). The float form of a sparse (recurrent, reservoir) network; the quantiser maps it
    to a `QSparse` without building the dense matrix.
    """

    rows: np.ndarray
    cols: np.ndarray
    values: np.ndarray
    shape: tuple[int, int]
    out_shape: tuple[int, ...] | None = None
    kind = "projection"

    def __post_init__(self) -> None:
        self.shape = int_tuple(self.shape, 2, "shape")
        self.rows = _indices(self.rows, "rows", self.shape[0])
        self.cols = _indices(self.cols, "cols", self.shape[1])
        self.values = array_param(self.values, "values", ndim=1)
        if not len(self.rows) == len(self.cols) == len(self.values):
            raise GraphError("Sparse rows, cols and values must have the same length")
        if self.out_shape is not None:
            self.out_shape = tuple(int_value(s, "out_shape") for s in self.out_shape)

    def output_shape(self, input_shape: Shape | None, name: str) -> Shape:
        return matrix_output_shape(self, self.shape[1], self.shape[0], input_shape, name)


@register
@dataclass(eq=False)
class Conv2d(Node):
    """2-D cross-correlation, as `torch.nn.functional.conv2d`:

    `y[o, i, j] = b[o] + sum_{c, m, n} W[o, c, m, n] * x[g*C_in/G + c, i*s0 - p0 + m*d0,
    j*s1 - p1 + n*d1]`, with W of shape (C_out, C_in / groups, kH, kW) and zero padding.
    A 1-D convolution is a Conv2d over inputs of height 1.
    """

    weight: np.ndarray
    bias: np.ndarray | None = None
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    kind = "projection"

    def __post_init__(self) -> None:
        self.weight = array_param(self.weight, "weight", ndim=4)
        if self.bias is not None:
            self.bias = array_param(self.bias, "bias", ndim=1)
            if self.bias.shape[0] != self.weight.shape[0]:
                raise GraphError("Conv2d bias length must equal the number of output channels")
        self.stride = int_tuple(self.stride, 2, "stride")
        self.padding = int_tuple(self.padding, 2, "padding")
        self.dilation = int_tuple(self.dilation, 2, "dilation")
        self.groups = int_value(self.groups, "groups")
        if min(self.stride) < 1 or min(self.dilation) < 1 or min(self.padding) < 0:
            raise GraphError("Conv2d needs stride >= 1, dilation >= 1 and padding >= 0")
        if self.groups < 1 or self.weight.shape[0] % self.groups:
            raise GraphError(f"Conv2d: {self.weight.shape[0]} output channels are not divisible "
                             f"into {self.groups} groups")

    def output_shape(self, input_shape: Shape | None, name: str) -> Shape:
        shape = _need(input_shape, name)
        c_out, c_in_g, kh, kw = self.weight.shape
        if len(shape) != 3 or shape[0] != c_in_g * self.groups:
            channels = c_in_g * self.groups
            raise ShapeError(f"node {name!r} (Conv2d) expects input (channels={channels}"
                             f", height, width), got {shape}")
        h = conv_output_size(shape[1], kh, self.stride[0], self.padding[0], self.dilation[0])
        w = conv_output_size(shape[2], kw, self.stride[1], self.padding[1], self.dilation[1])
        if h < 1 or w < 1:
            raise ShapeError(f"node {name!r} (Conv2d): kernel {kh}x{kw} does not fit input {shape}")
        return (c_out, h, w)


@dataclass(eq=False)
class _Pool2d(Node):
    kernel_size: tuple[int, int]
    stride: tuple[int, int] | None = None
    padding: tuple[int, int] = (0, 0)
    kind = "projection"

    def __post_init__(self) -> None:
        self.kernel_size = int_tuple(self.kernel_size, 2, "kernel_size")
        self.stride = int_tuple(self.kernel_size if self.stride is None else self.stride, 2,
                                "stride")
        self.padding = int_tuple(self.padding, 2, "padding")
        if min(self.kernel_size) < 1 or min(self.stride) < 1 or min(self.padding) < 0:
            raise GraphError("pooling needs kernel_size >= 1, stride >= 1, padding >= 0")
        if any(2 * p > k for p, k in zip(self.padding, self.kernel_size, strict=True)):
            raise GraphError("pooling padding must be at most half the kernel size")

    def output_shape(self, input_shape: Shape | None, name: str) -> Shape:
        shape = _need(input_shape, name)
        if len(shape) != 3:
            raise ShapeError(f"node {name!r} ({type(self).__name__}) expects input (channels, "
                             f"height, width), got {shape}")
        h = conv_output_size(shape[1], self.kernel_size[0], self.stride[0], self.padding[0], 1)
        w = conv_output_size(shape[2], self.kernel_size[1], self.stride[1], self.padding[1], 1)
        if h < 1 or w < 1:
            raise ShapeError(f"node {name!r}: pooling window {self.kernel_size} does not fit "
                             f"input {shape}")
        return (shape[0], h, w)


@register
@dataclass(eq=False)
class SumPool2d(_Pool2d):
    """Sum over each kH x kW window (zero padding), per channel."""


@register
@dataclass(eq=False)
class AvgPool2d(_Pool2d):
    """Mean over each kH x kW window: the window's sum divided by kH*kW, padding included
    (PyTorch's default `count_include_pad=True`)."""


@register
@dataclass(eq=False)
class Flatten(Node):
    """Merge feature axes `start_dim..end_dim` (features only; no batch axis) into one."""

    start_dim: int = 0
    end_dim: int = -1
    kind = "projection"

    def __post_init__(self) -> None:
        self.start_dim = int_value(self.start_dim, "start_dim")
        self.end_dim = int_value(self.end_dim, "end_dim")

    def output_shape(self, input_shape: Shape | None, name: str) -> Shape:
        shape = _need(input_shape, name)
        n = len(shape)
        start = self.start_dim + n if self.start_dim < 0 else self.start_dim
        end = self.end_dim + n if self.end_dim < 0 else self.end_dim
        if not 0 <= start <= end < n:
            raise ShapeError(f"node {name!r} (Flatten): dims {self.start_dim}..{self.end_dim} "
                             f"do not fit input of shape {shape}")
        return (*shape[:start], int(np.prod(shape[start:end + 1])), *shape[end + 1:])


@register
@dataclass(eq=False)
class Scale(Node):
    """Elementwise `y = scale * x`; `scale` is a scalar or an array that broadcasts to x."""

    scale: float | np.ndarray
    kind = "projection"

    def __post_init__(self) -> None:
        self.scale = float_param(self.scale, "scale")

    def output_shape(self, input_shape: Shape | None, name: str) -> Shape:
        shape = _need(input_shape, name)
        check_broadcast(self.scale, shape, "scale", name)
        return shape
