"""What a neuron layer does before its first IR step, while Lava's pipeline fills.

A layer at depth d exists from Lava step 0 but meets IR step 0 only on step d. During those d
*warm-up* steps a stock `LIF` already integrates its bias (and whatever upstream layers emit
during their own warm-up), so at IR step 0 its state is not the IR's zero, and it may spike.

- A layer that cannot be driven during warm-up (depth 0, or no bias and only quiet sources)
  is exact as a plain `LIF`.
- Otherwise its state must be cleared on its first IR step: stock `LIFReset` does that (one
  reset, on Lava `time_step` d + 1). What it emits during warm-up arrives downstream during
  the targets' own warm-up, provided every link out of it has IR delay 0, so it is harmless.
- A driven layer with a delayed link out of it (a recurrent loop, a delayed edge) would put
  warm-up spikes into IR steps >= 0 of its targets: it must stay silent, which no stock process
  does, so it becomes a `FixedNeuron` started on step d + 1 (custom, simulation only).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nmcompile.ir import Graph

from .links import Link

#: Modes: "plain" (quiet during warm-up), "reset" (LIFReset), "gated" (FixedNeuron with start).
MODES = ("plain", "reset", "gated")


def warmup_modes(graph: Graph, neurons: Sequence[str], links: Sequence[Link],
                 depth: dict[str, int], custom: set[str]) -> dict[str, str]:
    """The mode of each neuron layer. `custom` layers are FixedNeurons anyway (always gated)."""
    biased = {n: bool(np.any(np.asarray(getattr(graph[n], "bias_mant", 0)) != 0))
              for n in neurons}
    sources = {n: [link.source for link in links if link.target == n] for n in neurons}
    delayed_out = {n: any(link.delay > 0 for link in links if link.source == n)
                   for n in neurons}
    quiet = dict.fromkeys(neurons, True)  # greatest fixed point: assume quiet, then refute

    def emits_early(n: str) -> bool:
        if n not in quiet:  # a graph input: nothing before its first step
            return False
        return not quiet[n] and n not in custom and not delayed_out[n]

    changed = True
    while changed:
        changed = False
        for n in neurons:
            if quiet[n] and depth[n] > 0 and (
                    biased[n] or any(emits_early(s) for s in sources[n])):
                quiet[n] = False
                changed = True
    modes = {}
    for n in neurons:
        if n in custom or (not quiet[n] and delayed_out[n]):
            modes[n] = "gated"
        else:
            modes[n] = "plain" if quiet[n] else "reset"
    return modes
