"""The fixed-point neuron update, the one sequential part of the emulator (numba-compiled).

One kernel serves QLIF, QALIF and QLI, over a window of steps: the feed-forward simulator
calls it once with all T steps, the recurrent one once per step. The arithmetic is written
out in docs/fixed_point.md and is Lava 0.10's `PyLifModelBitAcc`, step for step.
"""

from __future__ import annotations

import types

import numpy as np
from numba import njit, prange

from nmcompile.ir.quantized import ACT_SHIFT, DECAY_BITS, QALIF, QLI, QLIF, STATE_BITS

UNITY = 1 << DECAY_BITS
HALF = 1 << (STATE_BITS - 1)  # 2^23


@njit(cache=True, inline="always")
def _decay(x: np.int64, keep: np.int64) -> np.int64:
    """x * keep / 4096, rounded toward zero."""
    p = x * keep
    if p >= 0:
        return p >> DECAY_BITS
    return -((-p) >> DECAY_BITS)


def _update(a, u, v, th, du, dv, vth, bias, vth_step, da, spiking, adaptive, subtract,
            s_out, u_out, v_out, record, unsafe):  # pragma: no cover - compiled
    """Advance every neuron over the window, block by block of neurons (each block over all
    steps, its state kept in cache; blocks are independent, so threads may share them out).

    a: (T, B * n) synaptic input (any integer type); u, v, th: (B * n,) int64 state, updated
    in place (th: the adaptation); du..da: (n,) parameters, shared by the batch; bias already
    `bias_mant << bias_exp`, vth and vth_step already `<< 6`. s_out: (T, B * n) spikes (uint8),
    or v (int64) for a non-spiking readout; u_out, v_out: traces, written when `record`.
    unsafe: (B * n,) counts updates that left the safe range.
    """
    T, N = a.shape
    n = du.shape[0]
    vmax = HALF - 1
    for block in prange((N + BLOCK - 1) // BLOCK):
        lo = block * BLOCK
        hi = min(N, lo + BLOCK)
        for t in range(T):
            i = lo % n  # k = sample * n + i
            for k in range(lo, hi):
                x = _decay(u[k], UNITY - du[i] - 1) + (np.int64(a[t, k]) << ACT_SHIFT)
                if x > HALF:  # Lava's one conditional 24-bit wrap
                    x -= 2 * HALF
                    unsafe[k] += 1
                elif x <= -HALF:
                    x += 2 * HALF
                    unsafe[k] += 1
                u[k] = x
                y = _decay(v[k], UNITY - dv[i]) + x + bias[i]
                if y > vmax:
                    y = vmax
                    unsafe[k] += 1
                elif y < -vmax:
                    y = -vmax
                    unsafe[k] += 1
                if spiking:
                    theta = vth[i]
                    if adaptive:
                        th[k] = _decay(th[k], UNITY - da[i])
                        theta += th[k]
                    if y > theta:
                        s_out[t, k] = 1
                        y = y - theta if subtract else 0
                        if adaptive:
                            th[k] += vth_step[i]
                    else:
                        s_out[t, k] = 0
                else:
                    s_out[t, k] = y
                v[k] = y
                if record:
                    u_out[t, k] = x
                    v_out[t, k] = y
                i += 1
                if i == n:
                    i = 0


BLOCK = 4096  # neurons advanced together over the window
PARALLEL_UPDATES = 1 << 20  # steps x neurons from which threads pay off
update = njit(cache=True)(_update)
# a copy under its own name: numba's cache keys a function by name, not by compile options
_update_parallel = types.FunctionType(_update.__code__, globals(), "_update_parallel")
_update_parallel.__qualname__ = "_update_parallel"
update_parallel = njit(parallel=True, cache=True)(_update_parallel)


class NeuronLayer:
    """State (flattened to batch * n) and parameters (n) of one quantised neuron layer."""

    def __init__(self, node, batch: int, n: int, shape: tuple[int, ...]) -> None:
        self.node = node
        self.spiking = not isinstance(node, QLI)
        self.adaptive = isinstance(node, QALIF)
        self.subtract = getattr(node, "reset", "zero") == "subtract"

        def per_neuron(value) -> np.ndarray:  # (n,): the batch shares the parameters
            return np.ascontiguousarray(np.broadcast_to(np.asarray(value, np.int64), shape)
                                        .ravel())

        self.du, self.dv = per_neuron(node.du), per_neuron(node.dv)
        bias_exp = np.asarray(node.bias_exp, dtype=np.int64)
        self.bias = per_neuron(np.left_shift(np.asarray(node.bias_mant, dtype=np.int64),
                                             bias_exp))
        zero = per_neuron(0)
        if isinstance(node, (QLIF, QALIF)):
            self.vth = per_neuron(np.left_shift(np.asarray(node.vth, dtype=np.int64), ACT_SHIFT))
        else:
            self.vth = zero
        if self.adaptive:
            self.vth_step = per_neuron(np.left_shift(np.asarray(node.vth_step, np.int64),
                                                     ACT_SHIFT))
            self.da = per_neuron(node.da)
        else:
            self.vth_step, self.da = zero, zero
        N = batch * n
        self.u, self.v, self.th = (np.zeros(N, np.int64) for _ in range(3))
        self.unsafe = np.zeros(N, np.int64)

    def step(self, a: np.ndarray, record: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """a: (T, N) integer input. Returns (output (T, N), u (T, N), v (T, N))."""
        T, N = a.shape
        out = np.empty((T, N), np.uint8 if self.spiking else np.int64)
        u_out = np.empty((T, N) if record else (1, 1), np.int64)
        v_out = np.empty((T, N) if record else (1, 1), np.int64)
        kernel = update_parallel if T * N >= PARALLEL_UPDATES and N > BLOCK else update
        kernel(a, self.u, self.v, self.th, self.du, self.dv, self.vth, self.bias,
               self.vth_step, self.da, self.spiking, self.adaptive, self.subtract, out, u_out,
               v_out, record, self.unsafe)
        return out, u_out, v_out
