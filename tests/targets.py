"""Backends for tests that need a target with a given `compile` only (the facade's atomic
output folder, signals): each follows the contract, so the registry takes it."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

from nmcompile.contract import Capabilities
from nmcompile.errors import UnsupportedError
from nmcompile.ir import NODE_TYPES


def compile_only(name: str, compile: Callable) -> SimpleNamespace:
    """A backend named `name` that takes every node type and compiles with `compile`."""

    def run(graph, spikes, *, record=False):
        raise UnsupportedError(f"{name} compiles only")

    return SimpleNamespace(name=name, capabilities=Capabilities(nodes=tuple(NODE_TYPES.values())),
                           check=lambda graph: [], run=run, compile=compile)
