"""A `Plan` -> live Lava processes (importing this module imports Lava, not nmcompile).

`build` makes the processes of a plan, wires them, and optionally attaches a `RingBuffer` per
graph input and an `Extractor` per neuron process (a layer's, or each of its pieces' when the
graph is mapped onto cores). A batch of B samples is one network holding
B copies side by side (block-diagonal weights, B * n neurons per layer); Lava's `Conv` reads a
single image, so plans with one are built for B = 1.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

# The package's __init__ installed the import shim that lava-nc 0.10 needs on Python 3.11.
from lava.magma.core.process.ports.ports import AbstractPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.run_configs import Loihi2SimCfg
from lava.proc.io.extractor import Extractor, PyLoihiExtractorModel
from lava.proc.io.source import PySendModelFixed, RingBuffer
from lava.utils.weightutils import SignMode

from backends.lava.plan import ENCODINGS, KINDS, Kind, Plan, ProcSpec


def _classes(kind: Kind) -> tuple[type, type]:
    """The process class and bit-accurate CPU model `kind` names (see `plan.KINDS`)."""
    if kind.package is None:
        from backends.lava import models

        return getattr(models, kind.process), getattr(models, kind.model)
    return (getattr(importlib.import_module(f"{kind.package}.process"), kind.process),
            getattr(importlib.import_module(f"{kind.package}.models"), kind.model))


#: kind -> (process class, bit-accurate CPU model), resolved from `plan.KINDS` on import. The
#: model is passed to the run config per process (`exception_proc_model_map`), so Lava never
#: scans folders for models.
CLASSES: dict[str, tuple[type, type]] = {name: _classes(kind) for name, kind in KINDS.items()}


@dataclass
class LavaNetwork:
    """The live processes of a lowered graph, for running or for embedding.

    - `processes`: Lava process name -> process (neuron layers are named after IR nodes).
    - `input_ports`: graph input -> the in-ports it feeds; connect a source of shape
      (batch * n,) in Lava order (`plan.layer(name).perm`) with `connect_input`.
    - `output_ports`: neuron process -> its `s_out`: a layer's own, or each piece's
      (`plan.layer(L).procs`, the layer's Lava order split in that order) for a layer mapped
      onto several cores; layer L emits IR step t on Lava step t + `plan.layer(L).depth`
      (0-based), in Lava order.
    - `model_map`: process -> model, for `run_cfg()`; extend it with your own processes.
    """

    plan: Plan
    batch: int
    processes: dict[str, AbstractProcess]
    input_ports: dict[str, list[AbstractPort]]
    output_ports: dict[str, AbstractPort]
    model_map: dict[AbstractProcess, type]
    sources: dict[str, RingBuffer] = field(default_factory=dict)
    recorders: dict[str, Extractor] = field(default_factory=dict)

    def connect_input(self, name: str, port: AbstractPort) -> None:
        for dst in self.input_ports[name]:
            _connect(port, dst)

    def run_cfg(self, **kwargs: Any) -> Loihi2SimCfg:
        """Lava's bit-accurate CPU simulation with every model named explicitly."""
        return Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map=dict(
            self.model_map), **kwargs)

    @property
    def top(self) -> AbstractProcess:
        """A process to call `run` on (Lava runs everything connected to it)."""
        return self.processes[self.plan.layers[0].procs[0]] if self.plan.layers else \
            next(iter(self.processes.values()))


def replicate(spec: ProcSpec, batch: int) -> dict[str, Any]:
    """Constructor parameters for `batch` independent copies side by side."""
    p = dict(spec.params)
    if batch == 1:
        return p
    if spec.is_image:
        raise ValueError(f"{spec.name}: Lava's {spec.kind} takes one image; build with batch=1")
    if spec.is_neuron:
        p["n"] = p["n"] * batch
        for key, value in spec.params.items():
            if isinstance(value, np.ndarray):
                p[key] = np.tile(value, batch)
        return p
    out, inp = p["shape"]
    p["shape"] = (out * batch, inp * batch)
    if "weights" in p:
        p["weights"] = np.kron(np.eye(batch, dtype=np.int64), p["weights"])
    else:
        k = len(p["rows"])
        p["rows"] = np.tile(p["rows"], batch) + np.repeat(np.arange(batch) * out, k)
        p["cols"] = np.tile(p["cols"], batch) + np.repeat(np.arange(batch) * inp, k)
        p["values"] = np.tile(p["values"], batch)
    return p


def csr(p: Mapping[str, Any]) -> sp.csr_matrix:
    return sp.csr_matrix((np.asarray(p["values"], np.int64),
                          (np.asarray(p["rows"]), np.asarray(p["cols"]))),
                         shape=tuple(p["shape"]))


def _delays(p: Mapping[str, Any], key: str) -> sp.csr_matrix:
    delays = csr(p)
    delays.data = np.full(delays.data.shape, int(p[key]), dtype=int)
    return delays


#: encoding (`plan.ENCODINGS`) -> the argument made from (replicated) parameters `p` and
#: the parameter's name; `artefact.WRITE` writes the same argument as source.
MAKE: dict[str, Callable[[Mapping[str, Any], str], Any]] = {
    "int": lambda p, key: int(p[key]),
    "value": lambda p, key: p[key],
    "array": lambda p, key: np.asarray(p[key]),
    "tuple": lambda p, key: tuple(p[key]),
    "neurons": lambda p, key: (int(p[key]),),
    "sign_mode": lambda p, key: SignMode[str(p[key]).upper()],
    "csr": lambda p, key: csr(p),
    "csr_delays": _delays,
}
assert tuple(MAKE) == ENCODINGS


def construct(kind: str, p: Mapping[str, Any], name: str) -> AbstractProcess:
    """One process from its (replicated) parameters, as `plan.KINDS` describes its kind."""
    if kind not in KINDS:
        raise ValueError(f"unknown process kind {kind!r}")
    args = {arg: MAKE[how](p, key) for arg, how, key in KINDS[kind].args}
    return CLASSES[kind][0](**args, name=name)


def _in_port(proc: AbstractProcess, spec: ProcSpec) -> AbstractPort:
    return proc.a_in if spec.is_neuron else proc.s_in


def _out_port(proc: AbstractProcess, spec: ProcSpec | None) -> AbstractPort:
    return proc.s_out if spec is None or spec.is_neuron else proc.a_out


def _connect(src: AbstractPort, dst: AbstractPort) -> None:
    """Connect, reshaping where the layouts differ in rank only (flat layer <-> Conv image)."""
    if tuple(src.shape) != tuple(dst.shape):
        src = src.reshape(tuple(dst.shape))
    src.connect(dst)


def build(plan: Plan, batch: int = 1, inputs: Mapping[str, np.ndarray] | None = None,
          record_steps: int | None = None) -> LavaNetwork:
    """Make and wire the processes of `plan` for `batch` samples.

    `inputs`: graph input -> RingBuffer data (batch * n, steps) in Lava order; without it,
    `input_ports` says where to connect your own sources. `record_steps`: attach an
    `Extractor` per neuron process able to buffer that many steps (`recorders`, by process).
    """
    procs: dict[str, AbstractProcess] = {}
    model_map: dict[AbstractProcess, type] = {}
    specs = {spec.name: spec for spec in plan.procs}
    for spec in plan.procs:
        proc = construct(spec.kind, replicate(spec, batch), spec.name)
        procs[spec.name] = proc
        model_map[proc] = CLASSES[spec.kind][1]
    input_ports: dict[str, list[AbstractPort]] = {x.name: [] for x in plan.inputs}
    for spec in plan.procs:
        dst = _in_port(procs[spec.name], spec)
        for src in spec.inputs:
            if src in input_ports:
                input_ports[src].append(dst)
            else:
                _connect(_out_port(procs[src], specs[src]), dst)
    neurons = [name for layer in plan.layers for name in layer.procs]
    net = LavaNetwork(plan, batch, procs, input_ports,
                      {name: procs[name].s_out for name in neurons}, model_map)
    for name, data in (inputs or {}).items():
        ring = RingBuffer(data=np.asarray(data, dtype=np.int32))
        net.sources[name] = ring
        model_map[ring] = PySendModelFixed
        net.connect_input(name, ring.s_out)
    if record_steps:
        for name in neurons:
            ex = Extractor(shape=procs[name].s_out.shape, buffer_size=record_steps + 1)
            procs[name].s_out.connect(ex.in_port)
            net.recorders[name] = ex
            model_map[ex] = PyLoihiExtractorModel
    return net
