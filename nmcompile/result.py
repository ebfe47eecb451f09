"""`RunResult`: what every way of running a graph returns, float interpreter and backends alike."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .ir.inputs import delayed


@dataclass
class RunResult:
    """The result of running a graph on a batch of inputs for T steps.

    - `outputs`: output node -> array (T, batch, n): spikes (uint8) when every source of the
      output spikes, else values (float64; an `LI` source gives its voltage).
    - `spikes`: neuron node -> spikes (T, batch, n), uint8 (only when recorded).
    - `states`: neuron node -> {state name -> (T, batch, n)}, values after the step's reset
      (only when recorded).
    - `counters`: counter name -> {node -> count}: 'spikes', 'neuron_updates',
      'synaptic_events' (one per delivered non-zero input and stored synapse it reaches);
      the emulator and the Verilog core add 'synaptic_events_nonzero' (those on a non-zero
      weight) and 'active_neuron_updates' (updates that received an event or spiked);
      targets add their own ('unsafe_updates', the Verilog core's 'cycles').
    - `margins`: spiking node -> the smallest |v - threshold| seen before a reset, so a
      near-tie, where rounding could flip a spike, is visible.
    - `traffic`: core-to-core counts of a target that maps the graph onto cores (empty
      otherwise): 'core_messages' {core -> messages sent}, 'link_packets' {"a->b" mesh link ->
      packets}, 'spike_hops' {core -> hops its spikes travel}, and optionally 'per_step'
      {key -> array (T, ...)} (docs/ir.md, "Running a graph").
    """

    outputs: dict[str, np.ndarray]
    backend: str
    spikes: dict[str, np.ndarray] = field(default_factory=dict)
    states: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    counters: dict[str, dict[str, int]] = field(default_factory=dict)
    margins: dict[str, float] = field(default_factory=dict)
    traffic: dict[str, Any] = field(default_factory=dict)

    def output(self, name: str | None = None) -> np.ndarray:
        """One output's array; `name` may be left out when there is only one output."""
        if name is None:
            if len(self.outputs) != 1:
                raise KeyError(f"several outputs {sorted(self.outputs)}: name one")
            return next(iter(self.outputs.values()))
        return self.outputs[name]


def assemble_outputs(sources: Mapping[str, Sequence[tuple[str, int]]],
                     values: Mapping[str, np.ndarray], spiking: Collection[str],
                     dtype: type | np.dtype = np.int64) -> dict[str, np.ndarray]:
    """`RunResult.outputs`, the same way for every target: output node -> (T, batch, n).

    `sources`: output node -> its (source, edge delay) pairs, in edge order; `values`: node
    -> its array (T, batch, n); `spiking`: the spiking nodes. An output is the sum over its
    sources of each source's array shifted by the edge delay (`delayed`), summed in `dtype`
    (int64 for the fixed-point targets, float64 for the float interpreter) in edge order,
    then uint8 when every source spikes, else `dtype`. Every array is a new one (none
    shares memory with `values`)."""
    outputs = {}
    for name, preds in sources.items():
        total = None
        for src, d in preds:
            part = delayed(np.asarray(values[src]), d).astype(dtype, copy=False)
            total = part if total is None else total + part
        if total is None:
            raise ValueError(f"output {name!r} has no source")
        outputs[name] = total.astype(np.uint8 if all(s in spiking for s, _ in preds)
                                     else dtype)
    return outputs
