"""Acceptance: the emulator equals Lava 0.10's bit-accurate models, spike for spike and u/v for
u/v, on every layer and every step.

The oracle is real lava-nc 0.10.0 under `Loihi2SimCfg(select_tag="fixed_pt")`: `PySendModelFixed`
(RingBuffer), `PyDenseModelBitAcc` and `PyLifModelBitAcc`, each in its own forked process, every
run guarded by `run_guarded`. No mocks. Each network is built twice, directly: as Lava processes
RingBuffer -> Dense -> LIF [-> Dense -> LIF [-> Dense -> LIF]], and as the quantised graph
Input -> QDense -> QLIF ... run on the emulator.

Time. A Lava Dense sends on step t what it computed on step t-1, so the LIF at depth d (Dense
hops) sees the input of step t-d. The emulator graph gives each edge into a QDense a delay of 1,
which is that latency exactly, so emulator step t is Lava step t for every layer from the first
step on. The delay-free IR graph (what a compiler emits), aligned by depth (IR step t is Lava
step t+d at depth d), equals Lava as well when no layer has a bias; with a bias, Lava's LIF at
depth d integrates d steps of bias before its first input arrives (see
`test_depth_alignment_of_the_delay_free_graph`).

The safe range, established from lava/proc/{dense,lif}/models.py and the port code and checked in
the last section of this file. Lava computes in int32 numpy arrays, the emulator in int64:
- the LIF declares `a_in` as int16, but `PyInPortVectorDense.recv` adds the int32 channel data
  (the channel has the sender's type, Dense's int32 `a_out`) to an int16 zero array, so a_in
  arrives as int32: nothing is cut to 16 bits (a = 51000 passes unchanged);
- Dense: binary input sums int32 weights into int64, shifts, and sends through the int32
  channel; graded input is an int32 matrix product `weights.dot(s_in)`, shifted in int32;
- LIF: `a_in << 6` and `dec(u) + (a_in << 6)` in int32, then one conditional wrap by 2^24
  (not a modulo: a sum past 2^24 + 2^23 leaves u outside 24 bits, and an input with
  |a << 6| > 2^24 on every step makes u grow step after step), then `dec(v) + u + bias` in
  int32, then the clip to +-(2^23 - 1).
The emulator does the same operations, wrap and clip included, so the two are equal whenever
none of these int32 operations overflows: |W s << e| < 2^31 (and |W s| < 2^31 when graded),
|a| < 2^25, |dec(u) + (a << 6)| < 2^31, |dec(v) + u + bias| < 2^31. They are equal past the
24-bit range too (u wrapped, v clipped), which the emulator counts as `unsafe_updates`. A step
without an unsafe update has |dec(u) + (a << 6)| <= 2^23, hence |a << 6| <= 2^24, and reaches
no int32 limit (a graded product past 2^31 leaves |a| >= 2^23 at weight_exp >= -8, which the
counter sees): no unsafe update is a sufficient condition for equality, with margin. Beyond
int32 they differ; the last section shows where, with numbers.

Speed. Lava forks one process per process model and exchanges phase messages with each one on
every step; a `Monitor` per probed Var adds a process and a management phase per step (measured
here: about 2 s per three-layer network with 9 Monitors). So each Lava run holds a batch of
independent networks and one `Recorder` that reads every u and v through RefPorts after the
spiking phase (exactly when a Monitor reads) and every spike through InPorts; a test checks the
Recorder against Lava's own Monitor.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from multiprocessing import resource_tracker

import numpy as np
import pytest
from hygiene import children

from backends.lava import compat  # installs the shim before anything imports Lava's core

compat.import_lava()

from lava.magma.core.decorator import implements, requires  # noqa: E402
from lava.magma.core.model.py.model import PyLoihiProcessModel  # noqa: E402
from lava.magma.core.model.py.ports import PyInPort, PyRefPort  # noqa: E402
from lava.magma.core.model.py.type import LavaPyType  # noqa: E402
from lava.magma.core.process.ports.ports import InPort, RefPort  # noqa: E402
from lava.magma.core.process.process import AbstractProcess  # noqa: E402
from lava.magma.core.process.variable import Var  # noqa: E402
from lava.magma.core.resources import CPU  # noqa: E402
from lava.magma.core.run_configs import Loihi2SimCfg  # noqa: E402
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol  # noqa: E402
from lava.proc.dense.models import PyDenseModelBitAcc  # noqa: E402
from lava.proc.dense.process import Dense  # noqa: E402
from lava.proc.io.source import PySendModelFixed, RingBuffer  # noqa: E402
from lava.proc.lif.models import PyLifModelBitAcc  # noqa: E402
from lava.proc.lif.process import LIF  # noqa: E402
from lava.proc.monitor.models import PyMonitorModel  # noqa: E402
from lava.proc.monitor.process import Monitor  # noqa: E402
from lava.utils.weightutils import (  # noqa: E402
    SignMode,
    clip_weights,
    determine_sign_mode,
    truncate_weights,
)

import nmcompile  # noqa: E402
from backends.lava.isolation import run_guarded  # noqa: E402
from nmcompile.ir import Graph, Input, Output  # noqa: E402
from nmcompile.ir.quantized import QLIF, VTH_MAX, QDense  # noqa: E402
from nmcompile.quantization.profiles import PROFILES  # noqa: E402

HALF = 2**23  # u and v are 24-bit: |u| <= 2^23 without a wrap, |v| <= 2^23 - 1 without a clip
WEIGHT_EXPS = range(PROFILES["loihi2"].weight_exp_range[0],
                    PROFILES["loihi2"].weight_exp_range[1] + 1)  # -8..7
N_RANDOM = 120  # random networks; seeds 0..N_RANDOM-1
BATCH = 10  # networks per Lava run
RUN_TIMEOUT_S = 120.0
MODES = {
    "mixed": SignMode.MIXED,
    "excitatory": SignMode.EXCITATORY,
    "inhibitory": SignMode.INHIBITORY,
}


# --------------------------------------------------------------------------------------------
# Networks: plain data, turned into Lava processes and into an nmcompile graph.
# --------------------------------------------------------------------------------------------


@dataclass
class Layer:
    weights: np.ndarray  # (out, in) int, exactly what Lava applies (its preparation is a no-op)
    weight_exp: int
    bits: int  # Dense num_weight_bits
    mode: str  # the sign mode the weights were drawn for
    du: int
    dv: int
    vth: int
    bias_mant: np.ndarray  # (out,)
    bias_exp: np.ndarray  # (out,)

    @property
    def sign_mode(self) -> SignMode | None:
        """What to pass to Dense as `sign_mode`: None (Lava infers it from the weights) unless
        a mixed-mode matrix happens to hold one sign only; then MIXED, since an inferred
        inhibitory mode would clip -256 (stored only in mixed mode) to -255."""
        if self.mode == "mixed" and determine_sign_mode(self.weights) != SignMode.MIXED:
            return SignMode.MIXED
        return None

    def lava_prepared(self) -> np.ndarray:
        """The weights after Lava's own preparation in PyDenseModelBitAcc.run_spk."""
        mode = self.sign_mode or determine_sign_mode(self.weights)
        return truncate_weights(clip_weights(self.weights, mode, num_bits=8), mode, self.bits)

    def describe(self) -> str:
        w = self.weights
        return (f"{w.shape[0]}x{w.shape[1]} {self.mode} weights in [{w.min()}, {w.max()}], "
                f"weight_exp {self.weight_exp}, num_weight_bits {self.bits}, du {self.du}, "
                f"dv {self.dv}, vth {self.vth}, bias_mant in [{self.bias_mant.min()}, "
                f"{self.bias_mant.max()}], bias_exp in [{self.bias_exp.min()}, "
                f"{self.bias_exp.max()}]")


@dataclass
class Net:
    name: str
    inputs: np.ndarray  # (T, n_in) int: binary spikes, or graded values if message_bits > 0
    layers: list[Layer]
    message_bits: int = 0  # num_message_bits of the first Dense
    peaks: dict[str, int] = field(default_factory=dict)  # filled by the generator

    @property
    def steps(self) -> int:
        return self.inputs.shape[0]

    def describe(self) -> str:
        kind = f"graded ({self.message_bits} message bits)" if self.message_bits else "binary"
        lines = [f"{self.name}: {self.steps} steps, {self.inputs.shape[1]} {kind} inputs "
                 f"in [{self.inputs.min()}, {self.inputs.max()}]"]
        lines += [f"  layer {i}: {layer.describe()}" for i, layer in enumerate(self.layers, 1)]
        return "\n".join(lines)


def qgraph(net: Net, hop_delay: int) -> Graph:
    """Input -> QDense -> QLIF [-> QDense -> QLIF ...] -> Output; `hop_delay` on every edge into a
    QDense (1: Lava's Dense latency, 0: the IR as a compiler emits it)."""
    g = Graph()
    g.add_node("x", Input((net.inputs.shape[1],)))
    prev = "x"
    for i, layer in enumerate(net.layers, 1):
        g.add_node(f"w{i}", QDense(layer.weights, layer.weight_exp))
        g.add_node(f"n{i}", QLIF(vth=layer.vth, du=layer.du, dv=layer.dv,
                                 bias_mant=layer.bias_mant, bias_exp=layer.bias_exp))
        g.add_edge(prev, f"w{i}", hop_delay)
        g.add_edge(f"w{i}", f"n{i}")
        prev = f"n{i}"
    g.add_node("o", Output())
    g.add_edge(prev, "o")
    return g


def emulate(net: Net, hop_delay: int = 1):
    x = net.inputs[:, None, :]  # (T, batch 1, n_in)
    return nmcompile.run(qgraph(net, hop_delay), x, backend="emulator", record=True)


def emulator_traces(result, depth: int) -> dict[str, np.ndarray]:
    name = f"n{depth}"
    return {"u": result.states[name]["u"][:, 0], "v": result.states[name]["v"][:, 0],
            "s": result.spikes[name][:, 0].astype(np.int64)}


def unsafe(result) -> dict[str, int]:
    return dict(result.counters["unsafe_updates"])


# --------------------------------------------------------------------------------------------
# Random networks, driven towards the edge of the safe range.
# --------------------------------------------------------------------------------------------


def mantissa_range(mode: str, bits: int) -> tuple[int, int, int]:
    """(step, lo, hi): the weights Lava stores unchanged at `bits` bits in `mode` are
    step * m, lo <= m <= hi (clip to [-256, 255], [0, 255] or [-255, 0], then drop
    8 - bits (+1 if mixed) low bits)."""
    if mode == "mixed":
        return 2 ** (9 - bits), -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    if mode == "excitatory":
        return 2 ** (8 - bits), 0, 2**bits - 1
    return 2 ** (8 - bits), -(2**bits - 1), 0


def draw_decay(rng: np.random.Generator) -> int:
    r = rng.random()
    if r < 0.15:
        return 0
    if r < 0.3:
        return 4095
    if r < 0.6:
        return int(rng.integers(0, 4096))
    return int(2 ** rng.uniform(0, 12)) - 1  # small: slow decay, long accumulation


def draw_vth(rng: np.random.Generator) -> int:
    r = rng.random()
    if r < 0.1:
        return 0
    if r < 0.2:
        return VTH_MAX
    return min(int(2 ** rng.uniform(0, 17)) - 1, VTH_MAX)


@dataclass
class RawLayer:
    """A layer before the drive knob g in [0, 1] scales its weight and bias mantissas (with
    fixed dither, so that even 1-bit mantissas scale: floor(g |m| + noise), exact at g = 1)."""

    mode: str
    bits: int
    weight_exp: int
    m: np.ndarray
    m_noise: np.ndarray
    du: int
    dv: int
    vth: int
    b: np.ndarray
    b_noise: np.ndarray
    bias_exp: np.ndarray

    def at(self, g: float) -> Layer:
        step = mantissa_range(self.mode, self.bits)[0]
        m = np.sign(self.m) * np.floor(g * np.abs(self.m) + self.m_noise).astype(np.int64)
        b = np.sign(self.b) * np.floor(g * np.abs(self.b) + self.b_noise).astype(np.int64)
        return Layer(weights=m * step, weight_exp=self.weight_exp, bits=self.bits,
                     mode=self.mode, du=self.du, dv=self.dv, vth=self.vth, bias_mant=b,
                     bias_exp=self.bias_exp.copy())


def draw_layer(rng: np.random.Generator, n_in: int, n: int, biased: bool) -> RawLayer:
    mode = str(rng.choice(list(MODES)))
    bits = int(rng.integers(1, 9))
    _, lo, hi = mantissa_range(mode, bits)
    density = rng.uniform(0.1, 1.0)
    m = rng.integers(lo, hi + 1, (n, n_in)) * (rng.random((n, n_in)) < density)
    if biased:
        b = rng.integers(-(2**12), 2**12, n) * (rng.random(n) < rng.uniform(0.3, 1.0))
    else:
        b = np.zeros(n, np.int64)
    return RawLayer(mode=mode, bits=bits, weight_exp=int(rng.choice(WEIGHT_EXPS)), m=m,
                    m_noise=rng.random((n, n_in)), du=draw_decay(rng), dv=draw_decay(rng),
                    vth=draw_vth(rng), b=b, b_noise=rng.random(n),
                    bias_exp=rng.integers(0, 8, n))


def peak(result, depth: int) -> tuple[int, int]:
    st = result.states[f"n{depth}"]
    return int(np.abs(st["u"]).max()), int(np.abs(st["v"]).max())


def fit_layer(name: str, inputs: np.ndarray, message_bits: int, layers: list[Layer],
              raw: RawLayer) -> tuple[Layer, object]:
    """The new layer at the largest drive g in [0, 1] (bisection, 10 rounds) for which the
    emulator counts no unsafe update in it: it sits just inside the safe range whenever full
    drive would leave it. Returns the layer and the emulator's result with it."""
    depth = len(layers) + 1

    def trial(g: float) -> tuple[Layer, object, bool]:
        layer = raw.at(g)
        result = emulate(Net(name, inputs, [*layers, layer], message_bits))
        return layer, result, unsafe(result)[f"n{depth}"] == 0

    layer, result, safe = trial(1.0)
    if not safe:
        lo, hi = 0.0, 1.0
        layer, result, _ = trial(0.0)  # no weights, no bias: u = v = 0
        for _ in range(10):
            mid = (lo + hi) / 2
            candidate, r, ok = trial(mid)
            if ok:
                lo, layer, result = mid, candidate, r
            else:
                hi = mid
    return layer, result


def random_network(seed: int) -> Net:
    """1-3 layers of 1-40 neurons, 20-40 steps, binary or graded input; each layer driven to
    just inside the safe range where its random parameters would leave it (`fit_layer`)."""
    rng = np.random.default_rng(seed)
    steps = int(rng.integers(20, 41))
    n_in = int(rng.integers(1, 41))
    message_bits = int(rng.integers(1, 13)) if rng.random() < 0.3 else 0
    density = rng.uniform(0.02, 0.8)
    active = rng.random((steps, n_in)) < density
    if message_bits:
        inputs = rng.integers(0, 2**message_bits, (steps, n_in)) * active
    else:
        inputs = active.astype(np.int64)
    biased = rng.random() < 0.75
    name, layers, peaks = f"seed{seed}", [], {}
    for depth in range(1, int(rng.integers(1, 4)) + 1):
        raw = draw_layer(rng, n_in, int(rng.integers(1, 41)), biased)
        layer, result = fit_layer(name, inputs, message_bits, layers, raw)
        layers.append(layer)
        n_in = layer.weights.shape[0]
        peaks[f"u{depth}"], peaks[f"v{depth}"] = peak(result, depth)
    return Net(name, inputs, layers, message_bits, peaks)


def edge_networks() -> list[Net]:
    """Hand-made one-layer networks that sit exactly on the edges of the safe range, each
    analysed in its comment (the input of step t reaches the LIF on step t + 1)."""
    nets = []

    def one(name, x, w, bits, mode, du, dv, vth, bias_mant, bias_exp, message_bits, exp=0):
        w = np.array(w, dtype=np.int64)
        layer = Layer(w, exp, bits, mode, du, dv, vth, np.array(bias_mant, dtype=np.int64),
                      np.array(bias_exp, dtype=np.int64))
        nets.append(Net(name, np.array(x, dtype=np.int64), [layer], message_bits))

    const = np.ones((24, 1), np.int64)
    # u = 1024 * 128 << 6 = 2^23 exactly: the largest u that does not wrap (u > 2^23 wraps).
    # v = (v >> 12) + 2^23 - (4096 << 7) = 7866240 stays under vth << 6 = 8388544.
    one("edge-u-max", 1024 * const, [[128]], 1, "excitatory", 4095, 4095, VTH_MAX, [-4096], [7],
        11)
    # u = -131071 << 6 = -(2^23 - 64), the most negative multiple of 64 that does not wrap
    # (u <= -2^23 wraps); a 1-bit-step inhibitory weight at full 8 bits.
    one("edge-u-min", 131071 * const, [[-1]], 8, "inhibitory", 4095, 4095, VTH_MAX, [4095], [7],
        17)
    # v = u + bias = (2047 * 64 << 6) + 4095 = 2^23 - 1 exactly, unclipped (then a spike, since
    # 2^23 - 1 > vth << 6 = 2^23 - 64); and -(2^23 - 1) on the other neuron, once (input on
    # step 0 only: on a second step the 1/4096 of v that dv = 4095 keeps would make it clip).
    x = np.zeros((24, 2), np.int64)
    x[:, 0], x[0, 1] = 2047, 2047
    one("edge-v-both", x, [[64, 0], [0, -64]], 3, "mixed", 4095, 4095, VTH_MAX, [4095, -4095],
        [0, 0], 11)
    # a = 200 * 255 = 51000 > 2^15: LIF.a_in is declared int16 but arrives as int32.
    one("edge-a-above-int16", 200 * const, [[255]], 8, "excitatory", 4095, 4095, VTH_MAX, [0],
        [0], 8)
    # Binary input, a = (4 * -256) << 2 = -4096: u gains -2^18 per step and decays by 1/4096
    # (du = 0): -8356928 on the last step, one step before it would wrap. -256 exists only in
    # mixed mode, passed explicitly since this matrix has one sign.
    one("edge-u-accumulate", np.ones((33, 4), np.int64), [[-256, -256, -256, -256]], 1, "mixed",
        0, 4095, VTH_MAX, [0], [0], 0, exp=2)
    return nets


# --------------------------------------------------------------------------------------------
# Lava: the networks as processes, and a Recorder that reads every layer on every step.
# --------------------------------------------------------------------------------------------


class Recorder(AbstractProcess):
    """Reads the given Vars (through RefPorts, after the spiking phase, like Lava's Monitor)
    and the given OutPorts (through InPorts) on every step into int32 buffers `ref_k`/`in_k`.
    Lava's Monitor records one target per process; this reads any number."""

    def __init__(self, num_steps: int, shapes_ref: list, shapes_in: list) -> None:
        super().__init__()
        self.proc_params["n_ref"] = len(shapes_ref)
        self.proc_params["n_in"] = len(shapes_in)
        for k, shape in enumerate(shapes_ref):
            setattr(self, f"port_ref_{k}", RefPort(shape=shape))
            setattr(self, f"ref_{k}", Var(shape=(num_steps, *shape), init=0))
        for k, shape in enumerate(shapes_in):
            setattr(self, f"port_in_{k}", InPort(shape=shape))
            setattr(self, f"in_{k}", Var(shape=(num_steps, *shape), init=0))

    def read(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Every buffer as int64 (Var.get() returns float64; every value is an int32)."""
        refs = [getattr(self, f"ref_{k}").get() for k in range(self.proc_params["n_ref"])]
        ins = [getattr(self, f"in_{k}").get() for k in range(self.proc_params["n_in"])]
        return ([np.asarray(a).astype(np.int64) for a in refs],
                [np.asarray(a).astype(np.int64) for a in ins])


def recorder(num_steps: int, variables: list, out_ports: list) -> Recorder:
    rec = Recorder(num_steps, [v.shape for v in variables], [p.shape for p in out_ports])
    for k, var in enumerate(variables):
        getattr(rec, f"port_ref_{k}").connect_var(var)
    for k, port in enumerate(out_ports):
        port.connect(getattr(rec, f"port_in_{k}"))
    return rec


@functools.cache
def recorder_model(n_ref: int, n_in: int) -> type:
    """A PyLoihiProcessModel for a Recorder with these many RefPorts and InPorts."""
    attrs: dict = {}
    for k in range(n_ref):
        attrs[f"port_ref_{k}"] = LavaPyType(PyRefPort.VEC_DENSE, np.int32)
        attrs[f"ref_{k}"] = LavaPyType(np.ndarray, np.int32)
    for k in range(n_in):
        attrs[f"port_in_{k}"] = LavaPyType(PyInPort.VEC_DENSE, np.int32)
        attrs[f"in_{k}"] = LavaPyType(np.ndarray, np.int32)

    def run_spk(self) -> None:
        for k in range(n_in):
            getattr(self, f"in_{k}")[self.time_step - 1] = getattr(self, f"port_in_{k}").recv()

    def post_guard(self) -> bool:
        return True

    def run_post_mgmt(self) -> None:
        for k in range(n_ref):
            getattr(self, f"ref_{k}")[self.time_step - 1] = getattr(self, f"port_ref_{k}").read()

    attrs.update(run_spk=run_spk, post_guard=post_guard, run_post_mgmt=run_post_mgmt)
    model = type(f"PyRecorderModel_{n_ref}_{n_in}", (PyLoihiProcessModel,), attrs)
    return requires(CPU)(implements(proc=Recorder, protocol=LoihiProtocol)(model))


def lava_network(net: Net, steps: int, models: dict) -> list[LIF]:
    """RingBuffer -> Dense -> LIF ...; the input is padded with zeros to `steps` columns."""
    data = np.zeros((net.inputs.shape[1], steps), np.int64)
    data[:, :net.steps] = net.inputs.T
    source = RingBuffer(data=data)
    models[source] = PySendModelFixed
    prev, lifs = source.s_out, []
    for depth, layer in enumerate(net.layers, 1):
        extra = {} if layer.sign_mode is None else {"sign_mode": layer.sign_mode}
        dense = Dense(weights=layer.weights, weight_exp=layer.weight_exp,
                      num_weight_bits=layer.bits,
                      num_message_bits=net.message_bits if depth == 1 else 0, **extra)
        lif = LIF(shape=(layer.weights.shape[0],), du=int(layer.du), dv=int(layer.dv),
                  vth=int(layer.vth), bias_mant=layer.bias_mant, bias_exp=layer.bias_exp)
        prev.connect(dense.s_in)
        dense.a_out.connect(lif.a_in)
        models[dense], models[lif] = PyDenseModelBitAcc, PyLifModelBitAcc
        prev = lif.s_out
        lifs.append(lif)
    return lifs


SEGMENTS: set[str] = set()  # /dev/shm names of every Lava run's channels, checked at the end


def segments(process: AbstractProcess) -> set[str]:
    """The shared-memory segments of a running process graph (Lava 0.10 internals)."""
    smm = getattr(getattr(process.runtime, "_messaging_infrastructure", None), "smm", None)
    handles = getattr(smm, "_shared_memory_handles", None) or []
    return {h.name.lstrip("/") for h in handles}


def run_lava(nets: list[Net]) -> dict[str, list[dict[str, np.ndarray]]]:
    """Run independent networks in one Lava run; per network, per layer: u, v, s (steps, n)."""
    steps = max(net.steps for net in nets)
    models: dict = {}
    lifs = {net.name: lava_network(net, steps, models) for net in nets}
    every = [lif for net in nets for lif in lifs[net.name]]
    rec = recorder(steps, [var for lif in every for var in (lif.u, lif.v)],
                   [lif.s_out for lif in every])
    models[rec] = recorder_model(2 * len(every), len(every))
    cfg = Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map=models)

    def read():
        SEGMENTS.update(segments(rec))
        return rec.read()

    refs, ins = run_guarded(rec, steps, cfg, read=read, timeout_s=RUN_TIMEOUT_S)
    out, k = {}, 0
    for net in nets:
        out[net.name] = []
        for _ in net.layers:
            out[net.name].append({"u": refs[2 * k][:net.steps], "v": refs[2 * k + 1][:net.steps],
                                  "s": ins[k][:net.steps]})
            k += 1
    return out


# --------------------------------------------------------------------------------------------
# Comparison with a message that names the network, layer, step and neuron.
# --------------------------------------------------------------------------------------------


def first_mismatch(lava: dict, emu: dict) -> tuple[int, int, str] | None:
    bad = np.zeros(lava["u"].shape, bool)
    for key in ("u", "v", "s"):
        assert lava[key].shape == emu[key].shape, (key, lava[key].shape, emu[key].shape)
        bad |= lava[key] != emu[key]
    if not bad.any():
        return None
    t = int(np.nonzero(bad.any(axis=1))[0][0])
    i = int(np.nonzero(bad[t])[0][0])
    which = ", ".join(k for k in ("u", "v", "s") if lava[k][t, i] != emu[k][t, i])
    return t, i, which


def mismatch_message(net: Net, depth: int, lava: dict, emu: dict, where, offset: int = 0) -> str:
    t, i, which = where
    lo = max(t - 2, 0)
    rows = "\n".join(
        f"    step {s + offset:3d}: lava u={lava['u'][s, i]} v={lava['v'][s, i]} "
        f"s={lava['s'][s, i]} | emulator u={emu['u'][s, i]} v={emu['v'][s, i]} s={emu['s'][s, i]}"
        for s in range(lo, min(t + 1, lava["u"].shape[0])))
    return (f"{net.name}: layer {depth} (depth {depth} in Dense hops), Lava step {t + offset}, "
            f"neuron {i}: {which} differ(s)\n{rows}\n{net.describe()}")


# --------------------------------------------------------------------------------------------
# The suite: every network generated, emulated, and run on Lava once per session.
# --------------------------------------------------------------------------------------------


@dataclass
class Suite:
    nets: dict[str, Net]
    emulated: dict[str, object]  # hop delay 1, the network's own steps
    lava: dict[str, list[dict[str, np.ndarray]]]
    children_before: set[int]


@pytest.fixture(scope="module")
def suite() -> Suite:
    resource_tracker.ensure_running()  # Python's shared tracker is not Lava's to clean up
    before = children()
    nets = [random_network(seed) for seed in range(N_RANDOM)] + edge_networks()
    emulated = {net.name: emulate(net) for net in nets}
    lava: dict = {}
    for start in range(0, len(nets), BATCH):
        lava.update(run_lava(nets[start:start + BATCH]))
    return Suite({net.name: net for net in nets}, emulated, lava, before)


NAMES = [f"seed{seed}" for seed in range(N_RANDOM)] + [net.name for net in edge_networks()]


@pytest.mark.parametrize("name", NAMES)
def test_emulator_equals_lava(suite: Suite, name: str) -> None:
    net, result = suite.nets[name], suite.emulated[name]
    for depth in range(1, len(net.layers) + 1):
        lava, emu = suite.lava[name][depth - 1], emulator_traces(result, depth)
        where = first_mismatch(lava, emu)
        assert where is None, mismatch_message(net, depth, lava, emu, where)


def test_networks_stay_inside_the_safe_range_and_reach_its_edge(suite: Suite) -> None:
    for name, result in suite.emulated.items():
        assert set(unsafe(result).values()) == {0}, f"{name}: {unsafe(result)}"
    # Peaks over all steps and neurons, per layer (the generator keeps them).
    u_peaks = [p for net in suite.nets.values() for k, p in net.peaks.items() if k[0] == "u"]
    v_peaks = [p for net in suite.nets.values() for k, p in net.peaks.items() if k[0] == "v"]
    for name, net in suite.nets.items():
        for depth in range(1, len(net.layers) + 1):
            u, v = peak(suite.emulated[name], depth)
            assert u <= HALF and v <= HALF - 1, name
    random_nets = [suite.nets[f"seed{s}"] for s in range(N_RANDOM)]
    near = [net.name for net in random_nets if max(net.peaks.values()) >= HALF // 2]
    assert len(near) >= 2 * N_RANDOM // 5, f"only {len(near)} networks come within 2x of the edge"
    assert max(u_peaks) >= HALF - HALF // 64 and max(v_peaks) >= HALF - HALF // 64
    # The hand-made edges: exactly 2^23 and 2^23 - 64 for u, exactly 2^23 - 1 for v.
    edge = {name: suite.emulated[name] for name in suite.nets if name.startswith("edge-")}
    assert edge["edge-u-max"].states["n1"]["u"].max() == HALF
    assert edge["edge-u-min"].states["n1"]["u"].min() == -(HALF - 64)
    assert edge["edge-v-both"].states["n1"]["v"].min() == -(HALF - 1)
    assert edge["edge-v-both"].spikes["n1"][1:, 0, 0].all()  # v = 2^23 - 1 > vth << 6
    assert edge["edge-a-above-int16"].states["n1"]["u"].max() == 51000 << 6
    assert -HALF < edge["edge-u-accumulate"].states["n1"]["u"].min() < -(HALF - HALF // 64)


def test_weights_are_what_lava_applies(suite: Suite) -> None:
    for net in suite.nets.values():
        for depth, layer in enumerate(net.layers, 1):
            assert np.array_equal(layer.lava_prepared(), layer.weights), (
                f"{net.name} layer {depth}: Lava's clip_weights + truncate_weights change the "
                f"weights ({layer.describe()})")


def test_random_networks_cover_the_parameter_space(suite: Suite) -> None:
    layers = [layer for net in suite.nets.values() for layer in net.layers]
    assert {layer.weight_exp for layer in layers} == set(WEIGHT_EXPS)
    assert {layer.bits for layer in layers} == set(range(1, 9))
    assert {layer.mode for layer in layers} == set(MODES)
    for mode in MODES:  # every width in every sign mode
        assert {layer.bits for layer in layers if layer.mode == mode} == set(range(1, 9)), mode
    assert any(layer.sign_mode is not None for layer in layers)
    weights = np.concatenate([layer.weights.ravel() for layer in layers])
    assert {-256, -255, 255, 254} <= set(weights.tolist())
    for key in ("du", "dv"):
        values = {getattr(layer, key) for layer in layers}
        assert {0, 4095} <= values and len(values) > 50, key
    vths = {layer.vth for layer in layers}
    assert {0, VTH_MAX} <= vths and len(vths) > 50
    bias_mant = np.concatenate([layer.bias_mant for layer in layers])
    bias_exp = np.concatenate([layer.bias_exp[layer.bias_mant != 0] for layer in layers])
    assert bias_mant.min() < -2000 and bias_mant.max() > 2000
    assert set(bias_exp.tolist()) == set(range(8))
    random_nets = [suite.nets[f"seed{s}"] for s in range(N_RANDOM)]
    assert {len(net.layers) for net in random_nets} == {1, 2, 3}
    assert {net.steps for net in random_nets} <= set(range(20, 41))
    assert sum(net.message_bits > 0 for net in random_nets) >= 10
    assert sum(all((lay.bias_mant == 0).all() for lay in net.layers) for net in random_nets) >= 10
    sizes = {n for net in random_nets for layer in net.layers for n in layer.weights.shape}
    assert min(sizes) == 1 and max(sizes) == 40
    spikes = [suite.emulated[net.name].spikes for net in random_nets]
    assert sum(int(s.sum()) > 0 for sp in spikes for s in sp.values()) >= 100


def test_depth_alignment_of_the_delay_free_graph(suite: Suite) -> None:
    """The IR without hop delays, with Lava's layer at depth d read d steps later, is Lava
    exactly when no layer has a bias. With a bias, Lava's LIF at depth d has integrated d steps
    of bias (and its inputs' bias-driven spikes) before the IR's step 0, which a Lava backend
    has to account for to return IR-aligned results."""
    equal = differ = 0
    for name, net in suite.nets.items():
        ir = emulate(net, hop_delay=0)
        biased = any((layer.bias_mant != 0).any() for layer in net.layers)
        same = True
        for depth in range(1, len(net.layers) + 1):
            lava = {k: a[depth:] for k, a in suite.lava[name][depth - 1].items()}
            emu = {k: a[:net.steps - depth] for k, a in emulator_traces(ir, depth).items()}
            where = first_mismatch(lava, emu)
            if where is not None:
                assert biased, mismatch_message(net, depth, lava, emu, where, offset=depth)
                same = False
        equal += same
        differ += not same
    assert equal >= 10 and differ >= 10


def test_recorder_reads_what_lavas_monitor_reads() -> None:
    """The Recorder (many RefPorts/InPorts in one process) against Lava's Monitor (one target
    per process) on one two-layer network with a bias, decays and spikes."""
    net = random_network(13)  # 2 layers, both spiking, biased, u near 2^23 in layer 2
    assert len(net.layers) == 2 and all(s.any() for s in emulate(net).spikes.values())
    steps, models = net.steps, {}
    lifs = lava_network(net, steps, models)
    monitors = []
    for lif in lifs:
        for var in (lif.u, lif.v, lif.s_out):
            monitor = Monitor()
            monitor.probe(var, steps)
            models[monitor] = PyMonitorModel
            monitors.append((monitor, lif, var.name))
    rec = recorder(steps, [var for lif in lifs for var in (lif.u, lif.v)],
                   [lif.s_out for lif in lifs])
    models[rec] = recorder_model(2 * len(lifs), len(lifs))

    def read():
        SEGMENTS.update(segments(rec))
        seen = [np.asarray(m.get_data()[lif.name][name]).astype(np.int64)
                for m, lif, name in monitors]
        return seen, rec.read()

    cfg = Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map=models)
    seen, (refs, ins) = run_guarded(rec, steps, cfg, read=read, timeout_s=RUN_TIMEOUT_S)
    for k in range(len(lifs)):
        assert np.array_equal(seen[3 * k], refs[2 * k])
        assert np.array_equal(seen[3 * k + 1], refs[2 * k + 1])
        assert np.array_equal(seen[3 * k + 2], ins[k])
    assert any(ins[k].any() for k in range(len(lifs)))


# --------------------------------------------------------------------------------------------
# Outside the safe range: where Lava's int32 arithmetic stops matching the emulator's int64.
# --------------------------------------------------------------------------------------------


def outside_networks() -> dict[str, Net]:
    def one(x, w, exp, bits, mode, du, dv, message_bits):
        layer = Layer(np.array(w, np.int64), exp, bits, mode, du, dv, VTH_MAX,
                      np.zeros(np.shape(w)[0], np.int64), np.zeros(np.shape(w)[0], np.int64))
        return Net("", np.array(x, np.int64), [layer], message_bits)

    steps = 40
    nets = {
        # a = 131072 * 255 = 33423360 < 2^25: a << 6 = 2139095040 fits int32; u wraps once to
        # 2122317824 (far outside 24 bits), v clips to 2^23 - 1 and spikes. Equal.
        "wrap-inside-int32": one(np.full((steps, 1), 131072), [[255]], 0, 8, "excitatory", 4095,
                                 4095, 24),
        # a = 131600 * 255 = 33558000 >= 2^25: Lava's int32 a_in << 6 overflows.
        "a-shift-overflow": one(np.full((steps, 1), 131600), [[255]], 0, 8, "excitatory", 4095,
                                4095, 24),
        # 40 binary inputs, all spiking, at 255 << 7: a << 6 = 83558400 > 2^24 + 2^23 per step;
        # the single wrap removes 2^24, so u grows by 66781184 per step (du = 0) until
        # dec(u) + (a << 6) passes 2^31 on step 33.
        "u-drift-binary": one(np.ones((steps, 40)), np.full((1, 40), 255), 7, 8, "excitatory", 0,
                              0, 0),
        # graded 8421505 * 255 = 2147483775 > 2^31 - 1: Lava's int32 weights.dot(s_in) wraps
        # before the shift by weight_exp = -8.
        "graded-matmul-overflow": one(np.full((steps, 1), 8421505), [[255]], -8, 8, "excitatory",
                                      4095, 4095, 24),
    }
    for name, net in nets.items():
        net.name = name
    return nets


def test_outside_the_safe_range() -> None:
    nets = outside_networks()
    lava = run_lava(list(nets.values()))
    emu = {name: emulate(net) for name, net in nets.items()}
    count = {name: unsafe(r)["n1"] for name, r in emu.items()}
    traces = {name: (lava[name][0], emulator_traces(emu[name], 1)) for name in nets}

    # The emulator counts every step that wraps u or clips v; the first step has no input yet.
    assert count == {name: 2 * (net.steps - 1) for name, net in nets.items()}

    # Past 24 bits but inside int32: Lava wraps and clips exactly as the emulator does.
    la, em = traces["wrap-inside-int32"]
    assert first_mismatch(la, em) is None
    assert la["u"][1, 0] == 131072 * 255 * 64 - 2**24 == 2122317824
    assert la["s"][1:].all()  # v clipped to 2^23 - 1, above vth << 6, reset to 0

    # a << 6 overflows int32 on the first step with input.
    la, em = traces["a-shift-overflow"]
    assert first_mismatch(la, em)[0] == 1
    assert em["u"][1, 0] == 131600 * 255 * 64 - 2**24 == 2130934784
    assert la["u"][1, 0] == 131600 * 255 * 64 - 2**32 + 2**24 == -2130478080
    assert la["v"][1, 0] == -(HALF - 1) and la["s"][1, 0] == 0 and em["s"][1, 0] == 1

    # Binary spikes: equal for 33 steps while u leaves 24 bits, then dec(u) + (a << 6)
    # overflows int32 in Lava.
    la, em = traces["u-drift-binary"]
    assert first_mismatch(la, em)[0] == 33
    assert em["u"][32, 0] == la["u"][32, 0] == 2128930796
    # The emulator's x = dec(u) + (a << 6) = 2211969437 > 2^31 wraps to x - 2^24; Lava's
    # int32 x is x - 2^32 and wraps the other way, to x - 2^32 + 2^24.
    assert em["u"][33, 0] == 2211969437 - 2**24 and la["u"][33, 0] == 2211969437 - 2**32 + 2**24
    assert em["s"][33, 0] == 1 and la["s"][33, 0] == 0 and la["v"][33, 0] == -(HALF - 1)

    # Graded input: the int32 matrix product wraps before the shift.
    la, em = traces["graded-matmul-overflow"]
    assert first_mismatch(la, em)[0] == 1
    assert (8421505 * 255) >> 8 << 6 == 2**29 and em["u"][1, 0] == 2**29 - 2**24
    assert la["u"][1, 0] == -(2**29) + 2**24


def test_no_lava_process_or_shared_memory_is_left(suite: Suite) -> None:
    """Every run above stopped its Lava children and unlinked its segments. (Segments are
    checked by name: other programs on the machine may use /dev/shm meanwhile.)"""
    assert children() <= suite.children_before, "a child process of the test process survived"
    assert len(SEGMENTS) > 100, "the runs' segments were not recorded"
    left = sorted(name for name in SEGMENTS if os.path.exists(os.path.join("/dev/shm", name)))
    assert not left, f"shared-memory segments survived: {left[:5]}"
