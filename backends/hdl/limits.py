"""What one core holds, checked before any memory image is allocated.

The core's sizes come from a chip description (`nmcompile/mapping/chips/*.toml`, option
`chip=`): its neuron words are the chip's `[core] neurons`, its synapse words the chip's
synapse memory divided by the chip's word (`[core.synapse_bits] dense`: the Verilog core
stores every synapse as one weight word, its targets apart). The weight width and the longest
delay are the quantisation profile's. A program that would not fit is refused with a
`LimitError` that names the layer or projection at which it overflows and what would fix it.
Widths the RTL derives from worst-case bounds (accumulators, the current u) are capped too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nmcompile.errors import LimitError, NmcompileError
from nmcompile.ir import Graph, Input
from nmcompile.ir.quantized import QConv2d, QDense, QSparse, abs_max
from nmcompile.ir.synapses import conv_output_hw, window_pairs
from nmcompile.mapping.chips import Chip, load_chip
from nmcompile.quantization.profiles import Profile

#: One core of this mesh is what the single-core target builds: the RTL's own sizes.
DEFAULT_CHIP = "fpga-mesh"
#: The largest core a chip may describe. The RTL's address widths are parameters, so these
#: are the sizes the core is built and checked for: neuron state as many words as the event
#: rings and accumulators (2^20), synapse memory 2^24 words (tests/test_hdl_streaming.py).
RTL_NEURONS = 1 << 20
RTL_SYNAPSES = 1 << 24
#: Where a user chip starts from: the built-in file of the Verilog core's mesh.
TEMPLATE = "nmcompile/mapping/chips/fpga-mesh.toml"


def refuse_core(core: object) -> None:
    """`core=` sized the core by a profile's sizes until chips held them; it is refused,
    naming `chip=`, rather than kept as an alias that would read a profile name as a chip."""
    if core is not None:
        raise NmcompileError(
            f"the verilog backend's option core={core!r} was replaced by chip=: the core's "
            f"sizes come from a chip, named (see nmcompile.mapping.available(); the default, "
            f"chip={DEFAULT_CHIP!r}, has the sizes core='fpga16' gave) or a chip TOML file; "
            f"on the CLI --chip NAME|FILE")


def _first_over(counts: list[tuple[str, int]], limit: int) -> tuple[str, int] | None:
    """The first (name, running total) at which the running total of `counts` exceeds
    `limit`: what fills a core memory is named where it overflows."""
    total = 0
    for name, count in counts:
        total += count
        if total > limit:
            return name, total
    return None


def _larger(key: str, cap: int, unit: str = "") -> str:
    """How to pick a larger core: every way a chip is named, and where a new one starts."""
    return (f"a chip with larger cores: chip=NAME|FILE in the API, --chip NAME|FILE on the "
            f"CLI, or a chip file of your own (a copy of {TEMPLATE} with a larger [core] "
            f"{key}, up to the RTL's {cap:,}{unit})")


def _check_chip(chip: Chip, word: int, profile: Profile) -> None:
    """Refuse a chip the Verilog core cannot be: more neurons or synapse words than the RTL
    is built for, or synapse words too narrow for the profile's signed mantissas."""
    where = f"chip {chip.name!r}" + (f" ({chip.path})" if chip.path else "")
    if chip.neurons > RTL_NEURONS:
        raise LimitError(f"{where} has {chip.neurons:,} neurons per core; the verilog core's "
                         f"RTL holds at most {RTL_NEURONS:,}; lower [core] neurons")
    if chip.synapse_memory_bits // word > RTL_SYNAPSES:
        raise LimitError(f"{where} holds {chip.synapse_memory_bits // word:,} synapse words "
                         f"per core; the verilog core's RTL holds at most {RTL_SYNAPSES:,}; "
                         f"lower [core] synapse_memory_bits")
    if word < profile.weight_bits + 1:
        raise LimitError(f"{where} stores {word}-bit synapse words ([core.synapse_bits] "
                         f"dense); the verilog core stores a weight of profile "
                         f"{profile.name!r} as a {profile.weight_bits + 1}-bit signed mantissa; "
                         f"pick a chip with words at least that wide (the default, "
                         f"chip={DEFAULT_CHIP!r}, is the verilog core's own)")


@dataclass(frozen=True)
class CoreLimits:
    """Capacity of one core: neuron state words, stored synapses (a convolution counts every
    synapse it unrolls to), signed weight mantissa width (the profile's magnitude bits plus a
    sign), longest edge delay, event-ring and accumulator words, and the widest datapath
    registers. `chip` and `profile` name where the sizes and the widths came from."""

    chip: str
    neurons: int
    synapses: int
    weight_bits: int
    max_delay: int = 4095
    ring_words: int = 1 << 20
    acc_words: int = 1 << 20
    max_layer: int = 1 << 16
    max_acc_bits: int = 48
    max_u_bits: int = 64
    profile: str = ""

    @classmethod
    def of(cls, chip: str | Path | Chip, profile: Profile) -> CoreLimits:
        """The core of `chip` (a name `load_chip` knows, a TOML file, or a `Chip`) running
        `profile`'s arithmetic; a chip the RTL cannot be or whose words cannot hold the
        profile's weights is refused (LimitError naming the chip)."""
        found = load_chip(chip)
        word = found.synapse_bits["dense"]  # a dense synapse is a bare weight on every chip
        _check_chip(found, word, profile)
        return cls(found.name, found.neurons, found.synapse_memory_bits // word,
                   profile.weight_bits + 1, max_delay=profile.max_delay, profile=profile.name)

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
                f"{self.neurons:,} per core of chip {self.chip!r} ([core] neurons); use a "
                f"smaller network or {_larger('neurons', RTL_NEURONS)}")

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
                f"the {self.synapses:,} per core of chip {self.chip!r} ([core] "
                f"synapse_memory_bits over its synapse word; a convolution is stored "
                f"unrolled); use a smaller network or "
                f"{_larger('synapse_memory_bits', RTL_SYNAPSES, ' synapse words')}")

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
