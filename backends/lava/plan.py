"""The lowered network as plain data: what `lower` produces and `build` turns into Lava processes.

A `Plan` holds no Lava object and imports neither Lava nor nmcompile, so it can cross a process
boundary as arrays (`to_arrays` / `from_arrays`, an `.npz` loaded with `allow_pickle=False`) and
is written as the `params.npz` of a compiled artefact.

Layouts: every neuron layer and input keeps its neurons in a *Lava order*. It is the IR's flat
order, except for layers next to a convolution, which Lava's `Conv` reads as (X, Y, C) where
the IR has (C, H, W); `perm[i]` is the IR flat index of Lava neuron i.

Time: `depth` is the number of Lava steps between a layer's IR step and the Lava step on which
it emits it (each `Dense`/`Sparse`/`Conv` adds one). A layer's IR step t is Lava step
`t + depth` (counted from 0; Lava's own `time_step` is that plus one).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

#: Process kinds that are stock Lava 0.10 (deployable through Lava's Loihi run configs).
STOCK_KINDS = ("LIF", "LIFReset", "Dense", "DelayDense", "Sparse", "DelaySparse", "Conv")
#: Process kinds implemented in this backend (bit-accurate, CPU simulation only).
CUSTOM_KINDS = ("FixedNeuron",)
NEURON_KINDS = ("LIF", "LIFReset", "FixedNeuron")
#: Loihi 2 synaptic delays have 6 bits (DelayDense / DelaySparse refuse more).
MAX_SYNAPTIC_DELAY = 63


@dataclass
class ProcSpec:
    """One Lava process: its kind, constructor arguments and what feeds it.

    `params` holds Python scalars, strings, tuples and numpy arrays (never objects), in Lava
    order for one sample; `build` replicates them for a batch. `inputs` names the processes
    (or graph inputs) whose output port feeds this process's input port; Lava sums them.
    """

    name: str
    kind: str
    node: str | None  # the IR node it realises; None for a delay line
    params: dict[str, Any]
    inputs: list[str]
    note: str = ""

    @property
    def stock(self) -> bool:
        return self.kind in STOCK_KINDS

    @property
    def is_neuron(self) -> bool:
        return self.kind in NEURON_KINDS

    def in_shape(self) -> tuple[int, ...]:
        p = self.params
        if self.kind == "Conv":
            return tuple(p["input_shape"])
        if self.is_neuron:
            return (int(p["n"]),)
        return (int(p["shape"][1]),)

    def out_shape(self) -> tuple[int, ...]:
        p = self.params
        if self.kind == "Conv":
            return tuple(p["output_shape"])
        if self.is_neuron:
            return (int(p["n"]),)
        return (int(p["shape"][0]),)


@dataclass
class LayerSpec:
    """A graph input or a neuron layer, as recorded and re-aligned to IR time."""

    name: str
    shape: tuple[int, ...]  # IR shape (features only)
    perm: np.ndarray  # Lava neuron i is IR flat neuron perm[i]
    depth: int
    spiking: bool  # emits 0/1 spikes (else values: graded input or an LI readout)
    is_input: bool = False

    @property
    def n(self) -> int:
        return int(np.prod(self.shape))


@dataclass
class CountSpec:
    """How to count one IR projection's synaptic events from Lava: the Lava process whose
    weights are read back, the IR source whose recorded spikes it receives, and the IR delay
    between them."""

    node: str
    proc: str
    source: str
    delay: int


@dataclass
class OutputSpec:
    name: str
    sources: list[tuple[str, int]]  # (layer or input, IR delay)


@dataclass
class Plan:
    inputs: list[LayerSpec]
    layers: list[LayerSpec]
    procs: list[ProcSpec]
    outputs: list[OutputSpec]
    counts: list[CountSpec]
    notes: list[str] = field(default_factory=list)

    @property
    def max_depth(self) -> int:
        return max([layer.depth for layer in self.layers] + [0])

    def proc(self, name: str) -> ProcSpec:
        for p in self.procs:
            if p.name == name:
                return p
        raise KeyError(name)

    def layer(self, name: str) -> LayerSpec:
        for layer in self.inputs + self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    def batchable(self) -> bool:
        """Whether one Lava network can hold several samples side by side (block-diagonal
        weights). Lava's `Conv` reads one (X, Y, C) image, so a plan with one cannot."""
        return not any(p.kind == "Conv" for p in self.procs)

    def report(self) -> list[dict[str, Any]]:
        """One row per Lava process: name, kind, IR node, stock (deployable) or custom."""
        rows = []
        for p in self.procs:
            rows.append({"process": p.name, "kind": p.kind, "node": p.node,
                         "deployable": p.stock,
                         "note": p.note or ("stock Lava 0.10 process" if p.stock else
                                            "custom bit-accurate model, CPU simulation only")})
        return rows

    # -- plain arrays ---------------------------------------------------------------------
    def to_arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        """Every array under a key, plus the structure as JSON in `<prefix>plan.json`."""
        arrays: dict[str, np.ndarray] = {}

        def stash(key: str, value: Any) -> Any:
            if isinstance(value, np.ndarray):
                arrays[f"{prefix}{key}"] = value
                return {"array": key}
            if isinstance(value, tuple):
                return {"tuple": [stash(f"{key}.{i}", v) for i, v in enumerate(value)]}
            if isinstance(value, np.generic):
                return value.item()
            return value

        doc = {
            "inputs": [_layer_doc(x, stash, f"input/{x.name}") for x in self.inputs],
            "layers": [_layer_doc(x, stash, f"layer/{x.name}") for x in self.layers],
            "procs": [{"name": p.name, "kind": p.kind, "node": p.node, "inputs": p.inputs,
                       "note": p.note,
                       "params": {k: stash(f"{p.name}/{k}", v) for k, v in p.params.items()}}
                      for p in self.procs],
            "outputs": [asdict(o) for o in self.outputs],
            "counts": [asdict(c) for c in self.counts],
            "notes": self.notes,
        }
        arrays[f"{prefix}plan.json"] = np.array(json.dumps(doc))
        return arrays

    @classmethod
    def from_arrays(cls, arrays: Any, prefix: str = "") -> Plan:
        doc = json.loads(str(arrays[f"{prefix}plan.json"]))

        def unstash(value: Any) -> Any:
            if isinstance(value, dict) and "array" in value:
                return np.asarray(arrays[f"{prefix}{value['array']}"])
            if isinstance(value, dict) and "tuple" in value:
                return tuple(unstash(v) for v in value["tuple"])
            return value

        def layer(d: dict[str, Any]) -> LayerSpec:
            return LayerSpec(d["name"], tuple(d["shape"]), unstash(d["perm"]), d["depth"],
                             d["spiking"], d["is_input"])

        return cls(
            inputs=[layer(d) for d in doc["inputs"]],
            layers=[layer(d) for d in doc["layers"]],
            procs=[ProcSpec(d["name"], d["kind"], d["node"],
                            {k: unstash(v) for k, v in d["params"].items()}, d["inputs"],
                            d["note"]) for d in doc["procs"]],
            outputs=[OutputSpec(d["name"], [(s, int(k)) for s, k in d["sources"]])
                     for d in doc["outputs"]],
            counts=[CountSpec(**d) for d in doc["counts"]],
            notes=list(doc["notes"]),
        )


def _layer_doc(layer: LayerSpec, stash, key: str) -> dict[str, Any]:
    return {"name": layer.name, "shape": list(layer.shape), "perm": stash(f"{key}/perm",
            layer.perm), "depth": layer.depth, "spiking": layer.spiking,
            "is_input": layer.is_input}
