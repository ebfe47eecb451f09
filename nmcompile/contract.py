"""The backend contract, as code: what every target provides and what the facade checks.

A backend is any object (a module, usually) with the members of `Backend`. The registry
(`nmcompile.registry`) finds it by name and checks it against this Protocol; `nmcompile.run`,
`nmcompile.compile` and `nmcompile.verify` call `check` before every run and compile, so that
an unsupported graph fails the same way on every target (docs/backends.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import networkx as nx
import numpy as np

from .errors import NmcompileError, UnsupportedError
from .ir import Graph
from .ir.ports import Input, Output
from .result import RunResult

VERBS = ("run", "compile")
#: Counters every target returns (docs/ir.md, "Running a graph").
BASE_COUNTERS = ("spikes", "neuron_updates", "synaptic_events")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@dataclass(frozen=True)
class Option:
    """One keyword option of a backend's `run` or `compile` (`verbs`), by name, type and default.

    The CLI's `--option NAME=VALUE` is parsed by `parse`, and the verbs' `--help` lists the
    options; an option whose `type` is not str, int, float or bool is for the API only.
    """

    name: str
    type: type
    default: Any
    help: str
    verbs: tuple[str, ...] = VERBS
    choices: tuple[str, ...] = ()

    @property
    def on_cli(self) -> bool:
        return self.type in (str, int, float, bool)

    def parse(self, text: str) -> Any:
        """The value of `--option NAME=text`, or an error that names the option."""
        where = f"option {self.name!r}"
        if not self.on_cli:
            raise NmcompileError(f"{where} takes a {self.type.__name__}: set it from Python")
        if self.choices and text not in self.choices:
            raise NmcompileError(f"{where}: {text!r} is not one of {', '.join(self.choices)}")
        if self.type is bool:
            if text.lower() not in _TRUE + _FALSE:
                raise NmcompileError(f"{where}: {text!r} is not true or false")
            return text.lower() in _TRUE
        try:
            return self.type(text)
        except ValueError:
            raise NmcompileError(f"{where}: {text!r} is not a {self.type.__name__}") from None

    def describe(self) -> str:
        kind = "|".join(self.choices) or self.type.__name__
        return f"{self.name}={kind} (default {self.default!r}): {self.help}"


@dataclass(frozen=True)
class Capabilities:
    """What a backend takes and returns. Per-core sizes are not capabilities: they come from
    the chip a mapping targets.

    - `nodes`: the node types it accepts (anything else is a problem of `check`);
    - neuron features: `reset_modes`, `per_neuron` (parameters that differ per neuron),
      `initial_state` (states other than zero at step 0), `refractory` periods;
    - `edge_delays`, `cycles`: whether edges may carry delays, the graph may hold cycles;
    - `mapped`: whether it consumes a mapping of the graph onto cores (and returns `traffic`);
    - `counters`: the keys of `RunResult.counters` it returns;
    - `options`: its `run`/`compile` keyword options (`Option`);
    - `tools`: the programs or packages it needs; `notes`: its limits, in words.
    """

    nodes: tuple[type, ...]
    reset_modes: tuple[str, ...] = ("zero", "subtract")
    per_neuron: bool = True
    initial_state: bool = False
    refractory: bool = False
    edge_delays: bool = True
    cycles: bool = True
    mapped: bool = False
    counters: tuple[str, ...] = BASE_COUNTERS
    options: tuple[Option, ...] = ()
    tools: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def options_of(self, verb: str) -> dict[str, Option]:
        """The options `verb` ("run" or "compile") takes, by name."""
        return {o.name: o for o in self.options if verb in o.verbs}


@dataclass(frozen=True)
class Problem:
    """One reason a backend cannot take a graph: the node at fault (None: the whole graph),
    the message (it names the node and the fix), and the error class it is raised as."""

    node: str | None
    message: str
    error: type[NmcompileError] = UnsupportedError

    @classmethod
    def of(cls, exc: NmcompileError, node: str | None = None) -> Problem:
        """A check written as a function that raises, as a problem."""
        return cls(node, str(exc), type(exc))


Spikes = np.ndarray | Mapping[str, np.ndarray]


@runtime_checkable
class Backend(Protocol):
    """A target. `run` returns results aligned to IR time; `compile` writes its artefact into
    `out_dir`, a fresh empty folder that the facade renames into place when it returns. Both
    take `capabilities.options` as keyword-only arguments, `run` also `record`."""

    name: str
    capabilities: Capabilities

    def check(self, graph: Graph) -> list[Problem]: ...

    def run(self, graph: Graph, spikes: Spikes, *, record: bool = False,
            **options: Any) -> RunResult: ...

    def compile(self, graph: Graph, out_dir: str | Path, **options: Any) -> Path: ...


def conformance(backend: Any, name: str) -> list[str]:
    """What `backend` lacks to be registered as `name` (empty: it conforms)."""
    missing = [m for m in ("name", "capabilities", "check", "run", "compile")
               if not hasattr(backend, m)]
    if missing:
        return [f"it has no {', '.join(missing)}"]
    found = []
    if backend.name != name:
        found.append(f"its name is {backend.name!r}")
    if not isinstance(backend.capabilities, Capabilities):
        found.append("its capabilities are not a nmcompile.contract.Capabilities")
    found += [f"its {m} is not callable" for m in ("check", "run", "compile")
              if not callable(getattr(backend, m))]
    return found


def node_problems(graph: Graph, name: str, capabilities: Capabilities) -> list[Problem]:
    """The problems every backend finds the same way: nodes of a type it does not take, reset
    modes it lacks, delays or cycles it cannot run. `check` starts with these."""
    quantized = any(getattr(t, "quantized", False) for t in capabilities.nodes
                    if t not in (Input, Output))
    kind, fix = (("quantised", "Quantise the graph first: nmcompile.quantize(graph)")
                 if quantized else
                 ("float", "Run the quantised graph on a fixed-point backend: backend='emulator'"))
    problems = []
    for node_name, node in graph.nodes.items():
        if not isinstance(node, capabilities.nodes):
            problems.append(Problem(node_name, f"the {name} backend runs {kind} graphs only; node "
                                    f"{node_name!r} is a {type(node).__name__}. {fix}"))
        elif getattr(node, "reset", None) not in (None, *capabilities.reset_modes):
            problems.append(Problem(node_name, f"the {name} backend has no reset {node.reset!r} "
                                    f"(node {node_name!r}); it resets by "
                                    f"{', '.join(capabilities.reset_modes)}"))
    if not capabilities.edge_delays:
        problems += [Problem(b, f"the {name} backend runs no edge delays; edge {a!r} -> {b!r} "
                             f"has delay {d}") for a, b, d in graph.edges() if d]
    if not capabilities.cycles and not nx.is_directed_acyclic_graph(graph.nx):
        problems.append(Problem(None, f"the {name} backend runs feed-forward graphs only; this "
                                f"one has a cycle"))
    return problems


def option_problems(backend: Backend, verb: str, options: Mapping[str, Any]) -> list[Problem]:
    """Options that `backend`'s `verb` does not take, named with the ones it does."""
    known = backend.capabilities.options_of(verb)
    unknown = sorted(set(options) - set(known) - ({"record"} if verb == "run" else set()))
    if not unknown:
        return []
    takes = ", ".join(known) or "none"
    return [Problem(None, f"the {backend.name} backend's {verb} has no option "
                    f"{', '.join(map(repr, unknown))}; its options: {takes}", NmcompileError)]


def raise_problems(problems: list[Problem]) -> None:
    """Raise `problems`, if any, as one error: the first one's class, a message per line."""
    if problems:
        raise problems[0].error("\n".join(p.message for p in problems))


def require(backend: Backend, verb: str, graph: Graph, options: Mapping[str, Any]) -> None:
    """What the facade runs before every `run` and `compile`: the options `verb` does not
    take, else the backend's problems with `graph`, raised."""
    raise_problems(option_problems(backend, verb, options) or backend.check(graph))
