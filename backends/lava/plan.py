"""The lowered network as plain data: what `lower` produces and `build` turns into Lava processes.

A `Plan` holds no Lava object and imports neither Lava nor nmcompile, so it can cross a process
boundary as arrays (`to_arrays` / `from_arrays`, an `.npz` loaded with `allow_pickle=False`) and
is written as the `params.npz` of a compiled artefact.

Layouts: every neuron layer and input keeps its neurons in a *Lava order*. It is the IR's flat
order, except for layers next to a convolution, which Lava's `Conv` reads as (X, Y, C) where
the IR has (C, H, W); `perm[i]` is the IR flat index of Lava neuron i.

Pieces: a graph mapped onto cores (`graph.placement`) runs each layer's neurons on one core,
a *piece*, as their own neuron process (`LayerSpec.pieces`); the layer's Lava order is its
pieces' orders one after the other. `ProcSpec.core` says which core a process belongs to
(None: the host, or an unplaced graph).

Time: `depth` is the number of Lava steps between a layer's IR step and the Lava step on which
it emits it (each `Dense`/`Sparse`/`Conv` adds one). A layer's IR step t is Lava step
`t + depth` (counted from 0; Lava's own `time_step` is that plus one).

Kinds: `KINDS` is the one table of the Lava process kinds a plan may use: where each kind's
process and model classes live, its constructor arguments, and what it is (neuron layer,
image, weights). `processes.py` constructs a process from it and `artefact.py` writes the same
constructor call as source, each by reading the table: a new kind is one entry here (plus,
for a new way of passing an argument, one entry in each of their `ENCODINGS` tables).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

#: Loihi 2 synaptic delays have 6 bits (DelayDense / DelaySparse refuse more).
MAX_SYNAPTIC_DELAY = 63

#: How a constructor argument is made from a plan parameter (`Kind.args`):
#: - "int": a Python int; "value": as stored (a scalar, or an array per neuron);
#: - "array": a numpy array; "tuple": a tuple;
#: - "neurons": the shape `(n,)` of a neuron layer, from the parameter `n`;
#: - "sign_mode": the `lava.utils.weightutils.SignMode` member named by the string;
#: - "csr": the csr matrix of the parameters `rows`, `cols`, `values` and `shape`;
#: - "csr_delays": the same structure holding the (int) parameter everywhere.
ENCODINGS = ("int", "value", "array", "tuple", "neurons", "sign_mode", "csr", "csr_delays")


@dataclass(frozen=True)
class Kind:
    """One Lava process kind, for `processes.py` (live processes) and `artefact.py` (source).

    `args`: the constructor's keyword arguments in the order the artefact writes them, each
    (argument, encoding from `ENCODINGS`, plan parameter); `name=` follows them.
    """

    process: str  # the process class; also the kind's name in a `ProcSpec`
    model: str  # its bit-accurate CPU model (passed per process: Lava never scans for one)
    #: The Lava package holding both (`<package>.process`, `<package>.models`): a stock
    #: process. None: this backend's `models.py` (`nmc_models.py` in an artefact), a custom
    #: process for the CPU simulation only.
    package: str | None
    args: tuple[tuple[str, str, str], ...]
    neuron: bool = False  # a neuron layer (`a_in` -> `s_out`, `n` neurons)
    image: bool = False  # reads one (X, Y, C) image (Lava's Conv): one sample per process
    weights: str | None = None  # the Var that holds a connection process's weights
    read_back: bool = False  # whether Lava 0.10 can send those weights through a RefPort

    @property
    def stock(self) -> bool:
        return self.package is not None


def _ints(*names: str) -> tuple[tuple[str, str, str], ...]:
    return tuple((name, "int", name) for name in names)


_LIF = (("shape", "neurons", "n"), *_ints("du", "dv", "vth"),
        ("bias_mant", "value", "bias_mant"), ("bias_exp", "value", "bias_exp"))
_FIXED = tuple((k, "value", k) for k in ("n", "du", "dv", "bias_mant", "bias_exp", "vth",
                                          "vth_step", "da", "spiking", "adaptive", "subtract",
                                          "start"))
_SYNAPSES = (*_ints("weight_exp", "num_weight_bits"), ("sign_mode", "sign_mode", "sign_mode"),
             *_ints("num_message_bits"))
_DENSE = (("weights", "array", "weights"),)
_SPARSE = (("weights", "csr", ""),)

#: Every Lava process kind a plan may hold: kind -> `Kind`.
KINDS: dict[str, Kind] = {kind.process: kind for kind in (
    Kind("LIF", "PyLifModelBitAcc", "lava.proc.lif", _LIF, neuron=True),
    Kind("LIFReset", "PyLifResetModelBitAcc", "lava.proc.lif",
         (*_LIF, *_ints("reset_interval", "reset_offset")), neuron=True),
    Kind("FixedNeuron", "PyFixedNeuronModel", None, _FIXED, neuron=True),
    Kind("Dense", "PyDenseModelBitAcc", "lava.proc.dense", (*_DENSE, *_SYNAPSES),
         weights="weights", read_back=True),
    Kind("DelayDense", "PyDelayDenseModelBitAcc", "lava.proc.dense",
         (*_DENSE, *_ints("delays"), *_SYNAPSES), weights="weights", read_back=True),
    Kind("Sparse", "PySparseModelBitAcc", "lava.proc.sparse", (*_SPARSE, *_SYNAPSES),
         weights="weights"),
    Kind("DelaySparse", "PyDelaySparseModelBitAcc", "lava.proc.sparse",
         (*_SPARSE, ("delays", "csr_delays", "delays"), ("max_delay", "int", "delays"),
          *_SYNAPSES), weights="weights"),
    Kind("Conv", "PyConvModelFixed", "lava.proc.conv",
         (("weight", "array", "weight"),
          *((k, "tuple", k) for k in ("input_shape", "padding", "stride", "dilation")),
          *_ints("groups", "num_message_bits")), image=True, weights="weight", read_back=True),
)}
#: What would make a layer's process stock Lava, by a phrase of the reason it is custom
#: (`lowering.neurons.custom_reasons`).
FIXES = (
    ("reset by subtraction", "train with a zero reset (snnTorch reset_mechanism='zero', "
     "nmcompile.nn reset='zero'): stock LIF resets v to 0"),
    ("per-neuron", "one du, dv and vth for the whole layer (stock LIF takes scalars)"),
    ("LI readout", "a spiking LIF readout layer (count its spikes) instead of an LI one"),
    ("adaptive threshold", "a plain LIF layer (no adaptive threshold)"),
    ("driven before its first IR step", "no delayed edge out of this layer, or a layer "
     "without bias (stock LIFReset clears it on its first step)"),
)

#: Process kinds that are stock Lava 0.10 (deployable through Lava's Loihi run configs).
STOCK_KINDS = tuple(k for k, kind in KINDS.items() if kind.stock)
#: Process kinds implemented in this backend (bit-accurate, CPU simulation only).
CUSTOM_KINDS = tuple(k for k, kind in KINDS.items() if not kind.stock)
NEURON_KINDS = tuple(k for k, kind in KINDS.items() if kind.neuron)


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
    #: The global core (`graph.placement`) of the neurons it updates or whose synapses it
    #: holds (a connection process: its target's core); None: the host, or unplaced.
    core: int | None = None

    @property
    def entry(self) -> Kind:
        """This process's entry in `KINDS`."""
        try:
            return KINDS[self.kind]
        except KeyError:
            raise ValueError(f"unknown process kind {self.kind!r}") from None

    @property
    def stock(self) -> bool:
        return self.kind in STOCK_KINDS

    @property
    def is_neuron(self) -> bool:
        return self.kind in NEURON_KINDS

    @property
    def is_image(self) -> bool:
        """Reads one (X, Y, C) image (Lava's `Conv`): shapes in its parameters, batch 1."""
        return self.kind in KINDS and KINDS[self.kind].image

    def in_shape(self) -> tuple[int, ...]:
        p = self.params
        if self.is_image:
            return tuple(p["input_shape"])
        if self.is_neuron:
            return (int(p["n"]),)
        return (int(p["shape"][1]),)

    def out_shape(self) -> tuple[int, ...]:
        p = self.params
        if self.is_image:
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
    #: (neuron process, neurons) of each piece, in Lava order (`perm` is theirs one after
    #: the other); empty: one process named after the layer (and an input: the host's).
    pieces: list[tuple[str, int]] = field(default_factory=list)

    @property
    def n(self) -> int:
        return int(np.prod(self.shape))

    @property
    def procs(self) -> list[str]:
        """The neuron processes holding this layer, in its Lava order."""
        return [name for name, _ in self.pieces] if self.pieces else [self.name]

    def piece_perm(self, piece: str | None) -> np.ndarray:
        """IR flat index of each Lava neuron of one piece (None: of the whole layer)."""
        if piece is None:
            return self.perm
        start = 0
        for name, n in self.pieces or [(self.name, self.n)]:
            if name == piece:
                return self.perm[start:start + n]
            start += n
        raise KeyError(f"layer {self.name!r} has no piece {piece!r}")


@dataclass
class CountSpec:
    """How to count one IR projection's synaptic events from Lava: the Lava process whose
    weights are read back, the IR source whose recorded spikes it receives, and the IR delay
    between them. A projection split into pieces has one per connection process, each reading
    one `piece` of its source (None: the whole source, in its Lava order)."""

    node: str
    proc: str
    source: str
    delay: int
    piece: str | None = None


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

    @property
    def placed(self) -> bool:
        """Lowered from a graph mapped onto cores (its processes name their cores)."""
        return any(p.core is not None for p in self.procs)

    @property
    def n_processes(self) -> int:
        """Lava processes one run of the plan starts: its own, a source per input and a
        recorder per neuron process."""
        return len(self.procs) + len(self.inputs) + sum(len(x.procs) for x in self.layers)

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
        return not any(p.is_image for p in self.procs)

    def report(self) -> list[dict[str, Any]]:
        """One row per Lava process: name, kind, IR node, core, stock (deployable) or custom."""
        rows = []
        for p in self.procs:
            rows.append({"process": p.name, "kind": p.kind, "node": p.node, "core": p.core,
                         "deployable": p.stock,
                         "note": p.note or ("stock Lava 0.10 process" if p.stock else
                                            "custom bit-accurate model, CPU simulation only")})
        return rows

    def hardware(self) -> list[dict[str, Any]]:
        """Per neuron layer: whether every process of it is stock Lava (deployable through
        Lava's Loihi run configurations) or a custom model (CPU simulation only), why, and
        what would make it stock (`FIXES`)."""
        rows: dict[str, dict[str, Any]] = {}
        for p in self.procs:
            if not p.is_neuron:
                continue
            row = rows.setdefault(p.node or p.name, {"layer": p.node or p.name, "kinds": [],
                                                      "stock": True, "why": [], "fix": []})
            if p.kind not in row["kinds"]:
                row["kinds"].append(p.kind)
            if not p.stock:
                row["stock"] = False
                for reason in filter(None, p.note.split("; ")):
                    if reason not in row["why"]:
                        row["why"].append(reason)
                        row["fix"].append(next((fix for key, fix in FIXES if key in reason),
                                               "no stock Lava process computes it"))
        return list(rows.values())

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
                       "note": p.note, "core": p.core,
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
                             d["spiking"], d["is_input"],
                             [(str(n), int(k)) for n, k in d.get("pieces", [])])

        return cls(
            inputs=[layer(d) for d in doc["inputs"]],
            layers=[layer(d) for d in doc["layers"]],
            procs=[ProcSpec(d["name"], d["kind"], d["node"],
                            {k: unstash(v) for k, v in d["params"].items()}, d["inputs"],
                            d["note"], d.get("core")) for d in doc["procs"]],
            outputs=[OutputSpec(d["name"], [(s, int(k)) for s, k in d["sources"]])
                     for d in doc["outputs"]],
            counts=[CountSpec(**d) for d in doc["counts"]],
            notes=list(doc["notes"]),
        )


def _layer_doc(layer: LayerSpec, stash, key: str) -> dict[str, Any]:
    return {"name": layer.name, "shape": list(layer.shape), "perm": stash(f"{key}/perm",
            layer.perm), "depth": layer.depth, "spiking": layer.spiking,
            "is_input": layer.is_input, "pieces": [list(p) for p in layer.pieces]}
