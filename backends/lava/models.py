"""This backend's own Lava processes (CPU simulation only; importing this module imports Lava).

- `FixedNeuron`: the IR's neuron nodes where stock `LIF` cannot express them (per-neuron
  decays or thresholds, reset by subtraction, the IR's adaptive threshold, a non-spiking LI
  readout). Its model subclasses Lava's `AbstractPyLifModelFixed`, so u and v follow Lava's
  own bit-accurate sub-threshold code (`PyLifModelBitAcc`'s), and only the threshold, reset
  and output differ, exactly as `backends/emulator/neuron.py` computes them.
- `weight_reader`: a helper process that reads the weights held by connection processes
  through `RefPort`s on the last step (one message per matrix: `Var.get()` sends one value
  per message, about 30 us each) and saves them for the synaptic-event counters.
- `state_recorder`: a helper process that reads every neuron process's u and v through
  `RefPort`s after each step (when Lava's own `Monitor` reads) and saves the traces after the
  last one: one process for all of them, where a `Monitor` takes one per Var.

This file is copied verbatim into compiled artefacts (as `nmc_models.py`), so it imports only
numpy and Lava.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort, PyRefPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort, RefPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.lif.models import AbstractPyLifModelFixed

__all__ = ["FixedNeuron", "PyFixedNeuronModel", "state_recorder", "weight_reader"]


class FixedNeuron(AbstractProcess):
    """Loihi fixed-point neuron with per-neuron parameters (see `nmcompile.ir.quantized`).

    u = dec(u, du + 1) + (a << 6) (24-bit wrap); v = clip(dec(v, dv) + u + bias);
    QLIF/QALIF: theta = (vth << 6) [+ th, th = dec(th, da)]; spike when v > theta; then v = 0
    (`subtract=False`) or v - theta, and th += vth_step << 6. Non-spiking: emits v.
    Until Lava `time_step` `start` + 1 it only drains its input and emits zeros: a layer
    `start` hops deep meets its first real step then (the pipeline is filling before).
    """

    def __init__(self, *, n: int, du: Any, dv: Any, bias_mant: Any, bias_exp: Any, vth: Any,
                 vth_step: Any = 0, da: Any = 0, spiking: bool = True,
                 adaptive: bool = False, subtract: bool = False, start: int = 0,
                 name: str | None = None) -> None:
        super().__init__(shape=(n,), spiking=bool(spiking), adaptive=bool(adaptive),
                         subtract=bool(subtract), start=int(start), name=name)
        shape = (n,)
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.u = Var(shape=shape, init=0)
        self.v = Var(shape=shape, init=0)
        self.th = Var(shape=shape, init=0)  # threshold adaptation (QALIF)
        for key, value in (("du", du), ("dv", dv), ("bias_mant", bias_mant),
                           ("bias_exp", bias_exp), ("vth", vth), ("vth_step", vth_step),
                           ("da", da)):
            setattr(self, key, Var(shape=shape, init=np.broadcast_to(
                np.asarray(value, dtype=np.int32), shape).copy()))


@implements(proc=FixedNeuron, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyFixedNeuronModel(AbstractPyLifModelFixed):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    u: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    v: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    th: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    du: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=12)
    dv: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=12)
    bias_mant: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=13)
    bias_exp: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=3)
    vth: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=17)
    vth_step: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=17)
    da: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=12)

    def scale_threshold(self) -> None:
        self.effective_vth = np.left_shift(self.vth.astype(np.int64), self.vth_shift)
        self.effective_step = np.left_shift(self.vth_step.astype(np.int64), self.vth_shift)
        self.isthrscaled = True

    def _decay(self, x: np.ndarray, d: np.ndarray) -> np.ndarray:
        """x * (4096 - d) >> 12 rounded toward zero, as Lava decays u and v."""
        p = x.astype(np.int64) * (self.decay_unity - d)
        return np.sign(p) * np.right_shift(np.abs(p), self.decay_shift)

    def run_spk(self) -> None:
        a_in = self.a_in.recv()
        if self.time_step <= self.proc_params["start"]:
            self.s_out.send(np.zeros(self.s_out.shape, np.int32))
            return
        if not self.isbiasscaled:
            self.scale_bias()
        if not self.isthrscaled:
            self.scale_threshold()
        self.subthr_dynamics(activation_in=a_in)  # Lava's own u/v arithmetic
        if not self.proc_params["spiking"]:
            self.s_out.send(self.v.copy())
            return
        theta = self.effective_vth
        if self.proc_params["adaptive"]:
            self.th[:] = self._decay(self.th, self.da)
            theta = theta + self.th
        spikes = self.v > theta
        if self.proc_params["subtract"]:
            self.v[:] = np.where(spikes, self.v - theta, self.v)
        else:
            self.v[spikes] = 0
        if self.proc_params["adaptive"]:
            self.th[:] = self.th + np.where(spikes, self.effective_step, 0)
        self.s_out.send(spikes.astype(np.int32))


def weight_reader(sources: list[tuple[AbstractProcess, str]], at_step: int, path: str
                  ) -> tuple[AbstractProcess, type]:
    """A process that reads `process.<var>` of each source through a `RefPort` after step
    `at_step` and saves them to `path` (an .npz with keys w0, w1, ...). Returns the process
    and its model class (created per call: a model declares its ports as class attributes)."""

    def post_guard(self) -> bool:
        return self.time_step == self.proc_params["at_step"]

    def run_post_mgmt(self) -> None:
        np.savez(self.proc_params["path"],
                 **{key: getattr(self, key).read() for key in self.proc_params["keys"]})

    return _ref_reader("WeightReader", "w", sources, {"at_step": at_step, "path": path},
                       post_guard, run_post_mgmt)


def state_recorder(sources: list[tuple[AbstractProcess, str]], steps: int, path: str
                   ) -> tuple[AbstractProcess, type]:
    """A process that reads `process.<var>` of each source through a `RefPort` after every
    step (the post-management phase, when Lava's `Monitor` reads: the state after the step's
    reset) and saves the (steps, *shape) int32 traces to `path` (an .npz with keys s0, s1,
    ...) after step `steps`. Returns the process and its model class (made per call)."""

    def post_guard(self) -> bool:
        return self.time_step <= self.proc_params["steps"]

    def run_post_mgmt(self) -> None:
        params = self.proc_params
        if not hasattr(self, "traces"):  # the model's own buffers, in its own OS process
            self.traces = {key: np.zeros((params["steps"], *shape), np.int32)
                           for key, shape in params["shapes"].items()}
        for key, trace in self.traces.items():
            trace[self.time_step - 1] = getattr(self, key).read()
        if self.time_step == params["steps"]:
            np.savez(params["path"], **self.traces)

    return _ref_reader("StateRecorder", "s", sources, {"steps": steps, "path": path},
                       post_guard, run_post_mgmt)


def _ref_reader(name: str, prefix: str, sources: list[tuple[AbstractProcess, str]],
                params: dict[str, Any], post_guard, run_post_mgmt
                ) -> tuple[AbstractProcess, type]:
    """A process with one `RefPort` per source Var (`<prefix>0`, `<prefix>1`, ...), its
    `params` plus the ports' `keys` and `shapes` as proc_params, and a CPU model class
    made here whose post-management phase is `post_guard` / `run_post_mgmt`."""
    ports = {f"{prefix}{i}": RefPort(shape=getattr(proc, var).shape)
             for i, (proc, var) in enumerate(sources)}
    params = {**params, "keys": list(ports),
              "shapes": {key: tuple(port.shape) for key, port in ports.items()}}

    class Reader(AbstractProcess):
        def __init__(self) -> None:
            super().__init__(**params)
            for key, port in ports.items():
                setattr(self, key, port)

    Reader.__name__ = Reader.__qualname__ = name
    process = Reader
    attrs: dict[str, Any] = {key: LavaPyType(PyRefPort.VEC_DENSE, np.int32) for key in ports}
    attrs.update(post_guard=post_guard, run_post_mgmt=run_post_mgmt)
    model = type(f"Py{name}Model", (PyLoihiProcessModel,), attrs)
    reader = process()
    implements(proc=process, protocol=LoihiProtocol)(model)
    requires(CPU)(model)
    for key, (proc, var) in zip(ports, sources, strict=True):
        getattr(reader, key).connect_var(getattr(proc, var))
    return reader, model
