"""Projections and delays as stock Lava connection processes.

- `QDense` -> `Dense` (`DelayDense` when the link needs extra steps), with the IR's weight
  mantissas, `weight_exp`, `num_weight_bits=8` and the sign mode stated explicitly. Lava
  prepares weights once (clip to the sign mode's range, drop the low bits an 8-bit synapse
  does not store); `lava_weights` gives Lava weights that this leaves unchanged (a mixed
  matrix's 8-bit mantissas doubled, with `weight_exp - 1`) and refuses any others.
- `QSparse` -> `Sparse` / `DelaySparse` on the same (row, col, value) triples.
- `QConv2d` -> `Conv`. Lava's `Conv` computes a true convolution (`scipy.signal.convolve2d`)
  on (X, Y, C) images with weights (C_out, X, Y, C_in/groups), so the IR's cross-correlation
  kernel (C_out, C_in/groups, kh, kw) is flipped in both spatial axes and transposed. Its
  CPU model ignores `weight_exp`: a positive exponent is folded into the kernel (exact), a
  negative one is not expressible (the IR floors the shifted sum), and such a convolution is
  lowered as the `Sparse` matrix it unrolls to.
- Extra delay: folded into `DelayDense`/`DelaySparse` (at most 63 steps, Loihi 2's limit);
  anything else (a convolution, a direct link, longer delays) goes through identity
  `Sparse`/`DelaySparse` delay lines, each adding 1 + its delay steps.
"""

from __future__ import annotations

import numpy as np

from nmcompile.errors import UnsupportedError
from nmcompile.ir.quantized import QConv2d, QDense, QSparse, abs_max
from nmcompile.ir.synapses import conv_synapses
from nmcompile.quantization.profiles import PROFILES

from ..plan import MAX_SYNAPTIC_DELAY, ProcSpec

#: Weight range per sign mode that Lava's 8-bit preparation keeps, and the step it keeps
#: (mixed drops 1 bit).
WEIGHT_RANGE = {"mixed": (-256, 254, 2), "excitatory": (0, 255, 1), "inhibitory": (-255, 0, 1)}
#: Loihi's weight exponents (the loihi2 profile's range).
WEIGHT_EXPS = PROFILES["loihi2"].weight_exp_range
GRADED_BITS = 24  # num_message_bits for graded values (an LI readout's v, graded inputs)


def sign_mode(values: np.ndarray) -> str:
    """Lava's `determine_sign_mode`, as a name."""
    if values.size == 0 or values.min() >= 0:
        return "excitatory"
    if values.max() <= 0:
        return "inhibitory"
    return "mixed"


def _survives(values: np.ndarray) -> str | None:
    """The sign mode to pass Lava if its 8-bit preparation keeps `values` (int64) unchanged."""
    mode = sign_mode(values)
    if mode == "inhibitory" and values.min() < -255:
        mode = "mixed"  # only mixed synapses hold -256; the mode is passed to Lava explicitly
    lo, hi, step = WEIGHT_RANGE[mode]
    if values.size and (values.min() < lo or values.max() > hi
                        or (step == 2 and (values & 1).any())):
        return None
    return mode


def lava_weights(name: str, values: np.ndarray, weight_exp: int
                 ) -> tuple[np.ndarray, int, str]:
    """(weights, weight_exp, sign mode) that Lava's 8-bit synapses apply exactly as the IR's
    `(values @ x) << weight_exp` does. The quantiser stores a mixed-sign matrix as Loihi's
    8-bit mantissas m with the synapse's factor 2 in its exponent (docs/fixed_point.md,
    section 3.1): Lava is given 2m and `weight_exp - 1`, exact since the shift applies to
    the sum. The values as given are used where they survive and the exponent is Loihi's."""
    values = np.asarray(values, dtype=np.int64)  # the plan and params.npz hold int64
    options = [(v, e, mode) for v, e in ((values, weight_exp), (values << 1, weight_exp - 1))
               if (mode := _survives(v)) is not None]
    if not options:
        odd = ", odd ones among them" if (values & 1).any() else ""
        raise UnsupportedError(
            f"projection {name!r}: weights in {int(values.min())}..{int(values.max())}{odd} do "
            f"not survive Lava's 8-bit synapses (mixed signs: 8-bit mantissas, applied "
            f"doubled, or even values in -256..254; excitatory 0..255; inhibitory -255..0); "
            f"quantise for the 'loihi2' profile")
    lo, hi = WEIGHT_EXPS
    return next((o for o in options if lo <= o[1] <= hi), options[0])


def lava_exp(name: str, node: QDense | QSparse | QConv2d) -> int:
    """The `weight_exp` Lava is given for a projection (0 for a stock `Conv`: folded)."""
    if isinstance(node, QConv2d) and conv_stock(node):
        return 0
    return lava_weights(name, node.values if isinstance(node, QSparse) else node.weight,
                        node.weight_exp)[1]


def message_bits(graded: bool) -> int:
    return GRADED_BITS if graded else 0


def inverse(perm: np.ndarray) -> np.ndarray:
    inv = np.empty_like(perm)
    inv[perm] = np.arange(len(perm))
    return inv


def dense_spec(name: str, node_name: str, node: QDense, perm_in: np.ndarray,
               perm_out: np.ndarray, delay: int, graded: bool, inputs: list[str]) -> ProcSpec:
    w, exp, mode = lava_weights(node_name, node.weight[perm_out][:, perm_in], node.weight_exp)
    params = {"shape": tuple(w.shape), "weights": np.ascontiguousarray(w), "weight_exp": exp,
              "num_weight_bits": 8, "sign_mode": mode, "num_message_bits": message_bits(graded)}
    if delay:
        return ProcSpec(name, "DelayDense", node_name, {**params, "delays": delay}, inputs)
    return ProcSpec(name, "Dense", node_name, params, inputs)


def sparse_spec(name: str, node_name: str | None, rows: np.ndarray, cols: np.ndarray,
                values: np.ndarray, shape: tuple[int, int], weight_exp: int,
                perm_in: np.ndarray, perm_out: np.ndarray, delay: int, graded: bool,
                inputs: list[str], note: str = "") -> ProcSpec:
    values, exp, mode = lava_weights(node_name or name, values, int(weight_exp))
    params = {"shape": (int(shape[0]), int(shape[1])),
              "rows": inverse(perm_out)[rows].astype(np.int64),
              "cols": inverse(perm_in)[cols].astype(np.int64),
              "values": values, "weight_exp": exp,
              "num_weight_bits": 8, "sign_mode": mode, "num_message_bits": message_bits(graded)}
    if delay:
        return ProcSpec(name, "DelaySparse", node_name, {**params, "delays": delay}, inputs,
                        note)
    return ProcSpec(name, "Sparse", node_name, params, inputs, note)


def qsparse_spec(name: str, node_name: str, node: QSparse, perm_in: np.ndarray,
                 perm_out: np.ndarray, delay: int, graded: bool, inputs: list[str]
                 ) -> ProcSpec:
    return sparse_spec(name, node_name, node.rows, node.cols, node.values, node.shape,
                       node.weight_exp, perm_in, perm_out, delay, graded, inputs)


def delay_line(name: str, n: int, delay: int, graded: bool, inputs: list[str]) -> ProcSpec:
    """Identity synapses: 1 + `delay` steps of latency, values passed unchanged."""
    idx = np.arange(n, dtype=np.int64)
    return sparse_spec(name, None, idx, idx, np.ones(n, np.int64), (n, n), 0, idx, idx, delay,
                       graded, inputs, note=f"delay line: {1 + delay} step(s)")


def conv_stock(node: QConv2d) -> bool:
    """Whether Lava's `Conv` computes this node exactly: a non-negative `weight_exp` (folded
    into the kernel, which must stay within int32)."""
    if node.weight_exp < 0:
        return False
    return abs_max(node.weight) << node.weight_exp < 2**31  # Python ints: no wrap


def conv_spec(name: str, node_name: str, node: QConv2d, in_shape: tuple[int, ...],
              out_shape: tuple[int, ...], graded: bool, inputs: list[str],
              channels: np.ndarray | None = None) -> ProcSpec:
    """A stock `Conv`; `channels`: only these output channels (ascending; a piece of a
    layer split over cores, groups == 1), by their slice of the kernel."""
    c, h, w = in_shape
    co, ho, wo = out_shape
    weight = node.weight if channels is None else node.weight[channels]
    co = weight.shape[0]
    # IR (C_out, C_in/g, kh, kw) cross-correlation -> Lava (C_out, X=kh, Y=kw, C_in/g)
    # convolution: flip both spatial axes, then move C_in last.
    # int64 before the shift: the IR stores the kernel narrow (an int8 << 7 would wrap)
    kernel = weight.astype(np.int64)[:, :, ::-1, ::-1].transpose(0, 2, 3, 1) \
        << node.weight_exp
    params = {"weight": np.ascontiguousarray(kernel), "input_shape": (h, w, c),
              "output_shape": (ho, wo, co), "padding": tuple(node.padding),
              "stride": tuple(node.stride), "dilation": tuple(node.dilation),
              "groups": int(node.groups), "num_message_bits": message_bits(graded)}
    notes = ["weight_exp folded into the kernel"] if node.weight_exp else []
    if channels is not None:
        notes.append(f"output channels {_ranges(channels)} of {node.weight.shape[0]}")
    return ProcSpec(name, "Conv", node_name, params, inputs, "; ".join(notes))


def _ranges(values: np.ndarray) -> str:
    """Sorted integers as ranges: 0-3, 6, 8-9."""
    out: list[str] = []
    start = prev = None
    for v in [int(x) for x in values] + [None]:
        if v is not None and prev is not None and v == prev + 1:
            prev = v
            continue
        if start is not None:
            out.append(f"{start}-{prev}" if prev != start else f"{start}")
        start = prev = v
    return ", ".join(out)


def conv_matrix(node: QConv2d, in_shape: tuple[int, ...], out_shape: tuple[int, ...]
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The convolution as (rows, cols, values) over IR flat (C, H, W) indices: every kernel
    tap that lands inside the input, zero weights included (they are stored synapses)."""
    cols, rows, values = conv_synapses(node.weight.astype(np.int64), in_shape, out_shape,
                                       node.stride, node.padding, node.dilation, node.groups,
                                       order="output")
    return rows, cols, values


def split_delay(total: int) -> tuple[list[int], int]:
    """Split `total` extra steps before a projection into identity delay lines (each adds
    1 + d, d <= 63) and the delay left for a `DelayDense`/`DelaySparse` (<= 63)."""
    lines: list[int] = []
    rest = total
    while rest > MAX_SYNAPTIC_DELAY:
        step = min(MAX_SYNAPTIC_DELAY + 1, rest - MAX_SYNAPTIC_DELAY)
        lines.append(step - 1)
        rest -= step
    return lines, rest


def line_delays(total: int) -> list[int]:
    """Delays of identity lines adding exactly `total` >= 1 steps (each adds 1 + d)."""
    out = []
    rest = total
    while rest > 0:
        step = min(MAX_SYNAPTIC_DELAY + 1, rest)
        out.append(step - 1)
        rest -= step
    return out
