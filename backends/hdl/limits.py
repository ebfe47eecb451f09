"""What one core holds, checked before any memory image is allocated.

The sizes come from the quantisation profile (`neurons_per_core`, `synapses_per_core`,
`weight_bits`): a program that would not fit the core the profile describes is refused with a
`LimitError` that names the layer or projection at which it overflows and what would fix it.
Widths the RTL derives from worst-case bounds (accumulators, the current u) are capped too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nmcompile.errors import LimitError
from nmcompile.ir import Graph, Input
from nmcompile.ir.quantized import QConv2d, QDense, QSparse, abs_max
from nmcompile.ir.synapses import conv_output_hw, window_pairs
from nmcompile.quantization.profiles import Profile


def _first_over(counts: list[tuple[str, int]], limit: int) -> tuple[str, int] | None:
    """The first (name, running total) at which the running total of `counts` exceeds
    `limit`: what fills a core memory is named where it overflows."""
    total = 0
    for name, count in counts:
        total += count
        if total > limit:
            return name, total
    return None


@dataclass(frozen=True)
class CoreLimits:
    """Capacity of one core: neuron state words, stored synapses (a convolution counts every
    synapse it unrolls to), signed weight mantissa width (the profile's magnitude bits plus a
    sign), longest edge delay, event-ring and accumulator words, and the widest datapath
    registers."""

    profile: str
    neurons: int
    synapses: int
    weight_bits: int
    max_delay: int = 4095
    ring_words: int = 1 << 20
    acc_words: int = 1 << 20
    max_layer: int = 1 << 16
    max_acc_bits: int = 48
    max_u_bits: int = 64

    @classmethod
    def from_profile(cls, profile: Profile) -> CoreLimits:
        return cls(profile.name, profile.neurons_per_core, profile.synapses_per_core,
                   profile.weight_bits + 1, max_delay=profile.max_delay)

    def check_layers(self, graph: Graph, order: list[str], sizes: dict[str, int]) -> None:
        for name in order:
            node = graph[name]
            if node.kind != "neuron" and not isinstance(node, Input):
                continue
            if sizes[name] > self.max_layer:
                raise LimitError(f"layer {name!r} has {sizes[name]:,} neurons; the verilog core "
                                 f"addresses at most {self.max_layer:,} per layer; split the "
                                 f"layer")
        if over := _first_over([(n, sizes[n]) for n in order if graph[n].kind == "neuron"],
                               self.neurons):
            name, total = over
            raise LimitError(
                f"layer {name!r} brings the core to {total:,} neurons, over the "
                f"{self.neurons:,} of profile {self.profile!r} (neurons_per_core); use a "
                f"smaller network or a larger core (run option core='fpga16')")

    def check_delay(self, name: str, delay: int) -> None:
        if delay > self.max_delay:
            raise LimitError(f"the edge into {name!r} has a total delay of {delay} steps; the "
                             f"verilog core keeps at most {self.max_delay} steps of events; "
                             f"shorten the delay")

    def check_synapses(self, counts: list[tuple[str, int]]) -> None:
        if over := _first_over(counts, self.synapses):
            name, total = over
            raise LimitError(
                f"projection {name!r} brings the core to {total:,} stored synapses, over "
                f"the {self.synapses:,} of profile {self.profile!r} (synapses_per_core; a "
                f"convolution is stored unrolled); use a smaller network or a larger "
                f"core (run option core='fpga16')")

    def check_accumulators(self, words: list[tuple[str, int]]) -> None:
        if over := _first_over(words, self.acc_words):
            name, total = over
            raise LimitError(
                f"projection {name!r} brings the core to {total:,} accumulator words (one "
                f"per target neuron and step of dendritic delay), over the core's "
                f"{self.acc_words:,}; shorten the delay after the projection")

    def check_weights(self, name: str, mantissas: np.ndarray) -> None:
        top = abs_max(mantissas)  # Python ints: np.abs of an int8 -128 is -128
        if top >= 1 << (self.weight_bits - 1):
            raise LimitError(
                f"projection {name!r} stores a weight mantissa of magnitude {top}, beyond the "
                f"{self.weight_bits - 1}-bit magnitude of profile {self.profile!r}; quantise "
                f"the graph for this profile")

    def check_ring(self, words: int, where: str) -> None:
        if words > self.ring_words:
            raise LimitError(f"the event rings reach {words:,} words at layer {where!r}, over "
                             f"the core's {self.ring_words:,}; shorten the longest delays")

    def check_bounds(self, layer: str, acc_bits: int, u_bits: int) -> None:
        if acc_bits > self.max_acc_bits:
            raise LimitError(f"the synaptic input of layer {layer!r} can reach 2^{acc_bits - 1}, "
                             f"beyond the core's {self.max_acc_bits}-bit accumulators; lower "
                             f"its weights or weight_exp")
        if u_bits > self.max_u_bits:
            raise LimitError(f"the current u of layer {layer!r} would need {u_bits} bits, beyond "
                             f"the core's {self.max_u_bits}; lower its weights or weight_exp")


def synapse_count(node: QDense | QSparse | QConv2d | None, in_shape: tuple[int, ...],
                  n_src: int) -> int:
    """Synapses a projection stores in the core, without building them."""
    if node is None:
        return n_src
    if isinstance(node, QDense):
        return int(node.weight.size)
    if isinstance(node, QSparse):
        return len(node.values)
    assert isinstance(node, QConv2d)
    c_out, cg, kh, kw = node.weight.shape
    geometry = ((kh, kw), node.stride, node.padding, node.dilation)
    return c_out * cg * window_pairs(in_shape[1:], conv_output_hw(in_shape[1:], *geometry),
                                     *geometry)
