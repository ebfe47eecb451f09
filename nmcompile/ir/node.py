"""What every IR node shares: value equality, parameter normalisation, a type registry.

A node is a dataclass holding parameters only; its name and its edges live in the `Graph`.
Parameters are plain data: Python scalars, strings, tuples of ints, or numpy arrays. That is
all the `.nmc` file format has to store (see `serialize.py`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import numpy as np

from ..errors import GraphError, ShapeError

Shape = tuple[int, ...]

#: Node type name -> dataclass. Serialisation looks types up here; later node families
#: (quantised nodes, for example) register themselves with `register`.
NODE_TYPES: dict[str, type[Node]] = {}


def register(cls: type[Node]) -> type[Node]:
    """Class decorator: make a node dataclass known to the file format by its class name."""
    if cls.__name__ in NODE_TYPES and NODE_TYPES[cls.__name__] is not cls:
        raise GraphError(f"node type {cls.__name__} is registered twice")
    NODE_TYPES[cls.__name__] = cls
    return cls


class Node:
    """Base of all node dataclasses. `kind` says which family: port, projection or neuron."""

    kind: ClassVar[str] = ""
    #: True for node types that carry fixed-point parameters (the quantised IR).
    quantized: ClassVar[bool] = False

    def output_shape(self, input_shape: Shape | None, name: str) -> Shape:
        """The shape this node produces, given the shape of its (summed) input."""
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def num_params(self) -> int:
        """Number of stored parameter values (array elements; numeric scalars count one,
        structural integers such as `groups` none)."""
        n = 0
        for key, value in self.params().items():
            if isinstance(value, np.ndarray):
                n += value.size
            elif isinstance(value, (int, float)) and not isinstance(value, bool) \
                    and key not in ("groups", "start_dim", "end_dim"):
                n += 1
        return n

    def __eq__(self, other: object) -> bool:
        if type(self) is not type(other):
            return NotImplemented
        return all(values_equal(a, b) for a, b in zip(self.params().values(),
                                                      other.params().values(), strict=True))

    __hash__ = None  # mutable arrays inside: not hashable


def values_equal(a: Any, b: Any) -> bool:
    """Exact equality of parameter values: arrays by dtype, shape and every element."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype
                and a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=True)))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


#: dtype kinds a numeric parameter may arrive in: bool, signed, unsigned, float. Complex,
#: datetime ('M'), timedelta ('m'), strings ('U', 'S'), objects and void are refused by name
#: rather than coerced (np.float64("0.9") would quietly parse a string).
NUMERIC_KINDS = "biuf"


@dataclasses.dataclass(frozen=True, eq=False)
class Owned:
    """An array handed over to a node: kept without a copy when it is already in the node's
    dtype (a quantised node makes it read-only). The caller must not use it afterwards: the
    quantiser writes mantissas straight into the narrow array this way, `load` hands over
    the arrays it read, the fold the matrices it built."""

    array: np.ndarray


def numeric_array(value: Any, field: str) -> np.ndarray:
    """`value` (or an `Owned` one) as a numpy array of finite numbers (its own dtype, not
    copied), or a `GraphError` naming the parameter."""
    if isinstance(value, Owned):
        value = value.array
    if isinstance(value, (str, bytes)):
        raise GraphError(f"parameter {field!r} must be a number, got the string {value!r}")
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as exc:  # ragged lists and the like
        raise GraphError(f"parameter {field!r} is not a numeric array: {exc}") from None
    if arr.dtype.kind not in NUMERIC_KINDS:
        raise GraphError(f"parameter {field!r} must be numeric, got dtype {arr.dtype} "
                         f"({type(value).__name__})")
    if arr.dtype.kind == "f" and not _finite(arr):
        raise GraphError(f"parameter {field!r} holds non-finite values (nan or inf)")
    return arr


def _finite(arr: np.ndarray) -> bool:
    """All finite, checked block by block (no full-size temporary)."""
    flat = arr.reshape(-1)
    return all(np.isfinite(flat[k:k + (1 << 20)]).all() for k in range(0, flat.size, 1 << 20))


def _float64(value: Any, field: str) -> np.ndarray:
    """A float64 array: a copy (a node never aliases caller data), unless `value` is an
    `Owned` float64 array."""
    arr = numeric_array(value, field)
    if isinstance(value, Owned) and arr.dtype == np.float64:
        return arr
    return np.array(arr, dtype=np.float64)


def float_param(value: Any, field: str) -> float | np.ndarray:
    """A float parameter, scalar or per neuron: a Python float, or a float64 array (ndim >= 1)."""
    if isinstance(value, (bool, np.bool_)):
        raise GraphError(f"parameter {field!r} must be a number, not a bool")
    arr = _float64(value, field)
    if arr.ndim == 0:
        return float(arr)
    return arr


def array_param(value: Any, field: str, ndim: int | None = None) -> np.ndarray:
    arr = _float64(value, field)
    if ndim is not None and arr.ndim != ndim:
        raise GraphError(f"parameter {field!r} must have {ndim} dimensions, got shape {arr.shape}")
    return arr


def int_tuple(value: Any, n: int, field: str) -> tuple[int, ...]:
    """An int or a sequence of n ints, as a tuple of n Python ints."""
    if isinstance(value, (int, np.integer)):
        out = (int_value(value, field),) * n
    else:
        out = tuple(int_value(v, field) for v in value)
    if len(out) != n:
        raise GraphError(f"parameter {field!r} must have {n} values, got {value!r}")
    return out


def int_value(value: Any, field: str) -> int:
    """A structural integer (stride, groups, exponent...) as a Python int: an int, or an
    integral float; never a bool, a string or a fraction (int() would truncate 2.7)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (int, float, np.integer, np.floating)):
        raise GraphError(f"parameter {field!r} must be an integer, got {type(value).__name__} "
                         f"{value!r}")
    if isinstance(value, (float, np.floating)) and not (math.isfinite(value)
                                                        and value == int(value)):
        raise GraphError(f"parameter {field!r} must be an integer, got {value!r}")
    return int(value)


def check_broadcast(value: float | np.ndarray, shape: Shape, field: str, name: str) -> None:
    """A per-neuron parameter must broadcast to the layer's shape without growing it."""
    if isinstance(value, np.ndarray):
        try:
            out = np.broadcast_shapes(value.shape, shape)
        except ValueError:
            out = None
        if out != tuple(shape):
            raise ShapeError(f"node {name!r}: parameter {field!r} has shape {value.shape}, which "
                             f"does not broadcast to the layer's shape {tuple(shape)}; give a "
                             f"scalar or an array of shape {tuple(shape)}")
    if not np.all(np.isfinite(value)):
        raise GraphError(f"node {name!r}: parameter {field!r} is not finite")
