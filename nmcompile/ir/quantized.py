"""The quantised IR: nodes whose parameters are the integers the hardware uses.

After `nmcompile.quantize`, a graph is Input -> projection -> neuron -> projection -> ... ->
neuron -> Output, every projection one of `QDense`, `QSparse`, `QConv2d`, every neuron a
`QLIF`, `QALIF` or `QLI`. The arithmetic (Loihi's, as Lava 0.10's `fixed_pt` models compute
it) is written out in `docs/fixed_point.md`; `backends/emulator` is its reference
implementation. Weights are stored as the hardware stores them: a Loihi mixed-sign matrix as
its 8-bit mantissas m, with the synapse's factor 2 in `weight_exp` (the Lava lowering gives
Lava 2m and `weight_exp - 1`: docs/fixed_point.md, section 3.1).

Weight mantissas (`weight`, `values`) and sparse indices are held in the narrowest signed
dtype that holds them (docs/fixed_point.md, section 13): arithmetic on them must upcast to
int64 first (`np.abs(np.int8(-128))` is -128).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..errors import GraphError
from .neurons import RESETS, Neuron
from .node import Node, Owned, Shape, int_tuple, int_value, numeric_array, register
from .projections import Conv2d, matrix_output_shape

#: Fixed-point constants of the Loihi neuron (see docs/fixed_point.md).
DECAY_BITS = 12      # du, dv: decay by (4096 - d) / 4096 per step
ACT_SHIFT = 6        # synaptic input and threshold are shifted left by 6
STATE_BITS = 24      # u and v are 24-bit signed states
VTH_MAX = 2**17 - 1  # vth is an unsigned 17-bit number
#: What the emulator implements for weights, the widest any profile may ask for: mantissas
#: of 16 bits plus the extra bit of Loihi's mixed-sign mode (|w| <= 2^16), exponents in
#: [-16, 15]. Wider values would overflow the emulator's 64-bit sums without a trace.
WEIGHT_MANT_MAX = 2**16
WEIGHT_EXP_RANGE = (-16, 15)
_WEIGHT = (-WEIGHT_MANT_MAX, WEIGHT_MANT_MAX)
_INDEX = (0, 2**62)  # QSparse rows and cols; their shape bounds them further

#: Weights and sparse indices are stored in the narrowest signed dtype that holds them
#: (docs/fixed_point.md, section 13); per-neuron parameters stay int64.
SIGNED = tuple(np.dtype(t) for t in (np.int8, np.int16, np.int32, np.int64))
BLOCK = 1 << 20  # elements per block when an array is checked or converted


def narrowest(lo: int, hi: int) -> np.dtype:
    """The narrowest signed integer dtype (int8, int16, int32, int64) holding [lo, hi]."""
    for dt in SIGNED:
        info = np.iinfo(dt)
        if info.min <= lo and hi <= info.max:
            return dt
    raise GraphError(f"integers in [{lo}, {hi}] do not fit 64 bits")


def blocks(arr: np.ndarray):
    """Slices of `arr` (ndim >= 1) along its first axis, about `BLOCK` elements each."""
    rows = max(1, BLOCK // max(1, int(np.prod(arr.shape[1:]))))
    for a in range(0, arr.shape[0], rows):
        yield slice(a, a + rows)


def abs_max(arr: np.ndarray) -> int:
    """max |arr| (0 when empty) as a Python int, from min and max: no temporary, and no
    wrap (`np.abs(np.int8(-128))` is -128)."""
    return max(-int(arr.min()), int(arr.max())) if arr.size else 0


def _checked(value, field: str, bounds: tuple[int, int] | None
             ) -> tuple[np.ndarray, int, int]:
    """(array, min, max): `value` checked to hold integers within `bounds` (in Python ints,
    before any cast, so that nothing wraps: a uint64 2^63 or a float inf never becomes some
    int64)."""
    arr = numeric_array(value, field)
    if arr.dtype.kind == "f":  # numeric and finite; integral, checked block by block
        flat = arr.reshape(1, -1) if arr.ndim == 0 else arr
        if not all(np.all(flat[s] == np.round(flat[s])) for s in blocks(flat)):
            raise GraphError(f"parameter {field!r} must hold integers")
    lo, hi = bounds if bounds is not None else (-(2**63), 2**63 - 1)
    amin = amax = 0
    if arr.size:
        amin, amax = int(arr.min()), int(arr.max())  # Python ints: no overflow
        if amin < lo or amax > hi:
            raise GraphError(f"parameter {field!r} must lie in [{lo}, {hi}], got values in "
                             f"[{amin}, {amax}]")
    return arr, amin, amax


def int_array(value, field: str, ndim: int | None = None,
              bounds: tuple[int, int] | None = None, dtype: np.dtype | None = None
              ) -> np.ndarray:
    """A read-only array of integers within `bounds`, in `dtype`, by default the narrowest
    signed dtype holding its values (int8, int16, int32 or int64). A copy (a node never
    aliases caller data), converted block by block, unless `value` is `Owned` and already
    in that dtype."""
    arr, amin, amax = _checked(value, field, bounds)
    dt = np.dtype(dtype) if dtype is not None else narrowest(amin, amax)
    if isinstance(value, Owned) and arr.dtype == dt:
        out = arr
    elif arr.ndim == 0:
        out = np.array(arr, dtype=dt)
    else:
        out = np.empty(arr.shape, dt)
        for s in blocks(arr):
            out[s] = arr[s]  # exact: every value is an integer that dt holds
    if ndim is not None and out.ndim != ndim:
        raise GraphError(f"parameter {field!r} must have {ndim} dimensions, got {out.shape}")
    out.flags.writeable = False  # a quantised node is a value: backends may cache per array
    return out


def index_array(idx: np.ndarray, size: int) -> np.ndarray:
    """Checked indices into an axis of `size`, in the narrowest signed dtype holding
    [0, size - 1] (read-only)."""
    dt = narrowest(0, max(size - 1, 0))
    if idx.dtype == dt:
        return idx
    out = idx.astype(dt)
    out.flags.writeable = False
    return out


def int_param(value, field: str, lo: int, hi: int) -> int | np.ndarray:
    """An integer parameter, scalar (Python int) or per neuron (an int64 array: these are few,
    and kept wide so that `bias_mant << bias_exp` or `vth << 6` cannot wrap in anyone's
    code), within [lo, hi]."""
    arr = int_array(value, field, bounds=(lo, hi), dtype=np.int64)
    return int(arr) if arr.ndim == 0 else arr


def weight_exp_param(value) -> int:
    """A weight exponent within what the emulator implements (`WEIGHT_EXP_RANGE`)."""
    exp = int_value(value, "weight_exp")
    lo, hi = WEIGHT_EXP_RANGE
    if not lo <= exp <= hi:
        raise GraphError(f"parameter 'weight_exp' must lie in [{lo}, {hi}], got {exp}")
    return exp


def _out_shape(value) -> tuple[int, ...] | None:
    return None if value is None else tuple(int_value(s, "out_shape") for s in value)


@register
@dataclass(eq=False)
class QDense(Node):
    """`a = (W @ x) << weight_exp` (an arithmetic, flooring shift right when negative), with W
    the integer weight mantissas (out, in). x is binary spikes or graded integers."""

    weight: np.ndarray
    weight_exp: int = 0
    out_shape: tuple[int, ...] | None = None
    kind = "projection"
    quantized = True

    def __post_init__(self) -> None:
        self.weight = int_array(self.weight, "weight", ndim=2, bounds=_WEIGHT)
        self.weight_exp = weight_exp_param(self.weight_exp)
        self.out_shape = _out_shape(self.out_shape)

    def output_shape(self, input_shape: Shape | None, name: str) -> Shape:
        return matrix_output_shape(self, self.weight.shape[1], self.weight.shape[0],
                                   input_shape, name)


@register
@dataclass(eq=False)
class QSparse(Node):
    """`QDense` with only the non-zero synapses stored: `weight[rows[k], cols[k]] = values[k]`
    of a matrix of shape (out, in); a synapse not listed does not exist."""

    rows: np.ndarray
    cols: np.ndarray
    values: np.ndarray
    shape: tuple[int, int]
    weight_exp: int = 0
    out_shape: tuple[int, ...] | None = None
    kind = "projection"
    quantized = True

    def __post_init__(self) -> None:
        rows = int_array(self.rows, "rows", ndim=1, bounds=_INDEX)
        cols = int_array(self.cols, "cols", ndim=1, bounds=_INDEX)
        self.values = int_array(self.values, "values", ndim=1, bounds=_WEIGHT)
        self.shape = int_tuple(self.shape, 2, "shape")
        self.weight_exp = weight_exp_param(self.weight_exp)
        self.out_shape = _out_shape(self.out_shape)
        if not len(rows) == len(cols) == len(self.values):
            raise GraphError("QSparse rows, cols and values must have the same length")
        if len(rows) and (int(rows.min()) < 0 or int(rows.max()) >= self.shape[0]
                          or int(cols.min()) < 0 or int(cols.max()) >= self.shape[1]):
            raise GraphError(f"QSparse indices fall outside its shape {self.shape}")
        # indices in the narrowest signed dtype that holds the shape (not just these values)
        self.rows = index_array(rows, self.shape[0])
        self.cols = index_array(cols, self.shape[1])

    def output_shape(self, input_shape: Shape | None, name: str) -> Shape:
        return matrix_output_shape(self, self.shape[1], self.shape[0], input_shape, name)

    def dense(self) -> np.ndarray:
        w = np.zeros(self.shape, dtype=np.int64)
        np.add.at(w, (self.rows, self.cols), self.values)  # int64 += narrow: int64 sums
        return w


@register
@dataclass(eq=False)
class QConv2d(Node):
    """Integer cross-correlation as `Conv2d` (zero padding), then `<< weight_exp`."""

    weight: np.ndarray
    weight_exp: int = 0
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    kind = "projection"
    quantized = True

    def __post_init__(self) -> None:
        self.weight = int_array(self.weight, "weight", ndim=4, bounds=_WEIGHT)
        self.weight_exp = weight_exp_param(self.weight_exp)
        # Reuse Conv2d's checks and shape rule on the same geometry.
        self._geometry = Conv2d(np.zeros(self.weight.shape), None, self.stride, self.padding,
                                self.dilation, self.groups)
        g = self._geometry
        self.stride, self.padding, self.dilation, self.groups = (g.stride, g.padding,
                                                                 g.dilation, g.groups)

    def output_shape(self, input_shape: Shape | None, name: str) -> Shape:
        return self._geometry.output_shape(input_shape, name)


class _QNeuron(Neuron):
    _ints: ClassVar[dict[str, tuple[int, int]]] = {}

    def __post_init__(self) -> None:
        for field, (lo, hi) in self._ints.items():
            setattr(self, field, int_param(getattr(self, field), field, lo, hi))
        if getattr(self, "reset", "zero") not in RESETS:
            raise GraphError(f"{type(self).__name__} reset must be one of {RESETS}")

    def _per_neuron_fields(self) -> tuple[str, ...]:
        return tuple(self._ints)


_D = (0, 2**DECAY_BITS - 1)
_BIAS = {"bias_mant": (-(2**12), 2**12 - 1), "bias_exp": (0, 7)}


@register
@dataclass(eq=False)
class QLIF(_QNeuron):
    """Loihi's LIF in fixed point (u: current, v: voltage, 24-bit states):

        u = dec(u, du + 1) + (a << 6)           wraps to 24 bits
        v = dec(v, dv) + u + (bias_mant << bias_exp)   saturates at +-(2^23 - 1)
        s = v > (vth << 6);  v = 0 where s ("zero") or v - (vth << 6) where s ("subtract")

    with `dec(x, d) = sign(x * (4096 - d)) * (|x * (4096 - d)| >> 12)`. IF is du=4095, dv=0.
    """

    vth: int | np.ndarray
    du: int | np.ndarray = 4095
    dv: int | np.ndarray = 0
    bias_mant: int | np.ndarray = 0
    bias_exp: int | np.ndarray = 0
    reset: str = "zero"
    states = ("u", "v")
    quantized = True
    _ints: ClassVar[dict[str, tuple[int, int]]] = {"vth": (0, VTH_MAX), "du": _D, "dv": _D, **_BIAS}


@register
@dataclass(eq=False)
class QALIF(_QNeuron):
    """QLIF with an adaptive threshold (state a, 24 bits):

        u, v as QLIF;  a = dec(a, da);  theta = (vth << 6) + a
        s = v > theta;  v = 0 or v - theta where s;  a = a + (vth_step << 6) where s
    """

    vth: int | np.ndarray
    vth_step: int | np.ndarray = 0
    da: int | np.ndarray = 0
    du: int | np.ndarray = 4095
    dv: int | np.ndarray = 0
    bias_mant: int | np.ndarray = 0
    bias_exp: int | np.ndarray = 0
    reset: str = "zero"
    states = ("u", "a", "v")
    quantized = True
    _ints: ClassVar[dict[str, tuple[int, int]]] = {
        "vth": (0, VTH_MAX), "vth_step": (0, VTH_MAX), "da": _D, "du": _D, "dv": _D, **_BIAS}


@register
@dataclass(eq=False)
class QLI(_QNeuron):
    """Non-spiking fixed-point readout: u and v as QLIF, no threshold; it emits v."""

    du: int | np.ndarray = 4095
    dv: int | np.ndarray = 0
    bias_mant: int | np.ndarray = 0
    bias_exp: int | np.ndarray = 0
    states = ("u", "v")
    spiking = False
    quantized = True
    _ints: ClassVar[dict[str, tuple[int, int]]] = {"du": _D, "dv": _D, **_BIAS}
