"""Fixed-point profiles: what a target can store, as data. A new target is one more entry."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import NmcompileError


@dataclass(frozen=True)
class Profile:
    """Widths and ranges of one fixed-point target: its arithmetic only. What a core holds
    (neurons, synapse memory) is the chip's (`nmcompile/mapping/chips/*.toml`), not the
    profile's: one arithmetic runs on cores of many sizes.

    Neuron arithmetic is Loihi's (docs/fixed_point.md): 24-bit u and v, 12-bit decays,
    17-bit vth, 13-bit bias mantissa with a 3-bit exponent; these fields say so, and a
    profile may only narrow what the emulator implements. Weights are `weight_bits`-bit
    mantissas (sign included) times 2**weight_exp.
    """

    name: str
    weight_bits: int = 8
    weight_exp_range: tuple[int, int] = (-8, 7)
    state_bits: int = 24
    vth_bits: int = 17
    bias_mant_bits: int = 13
    bias_exp_range: tuple[int, int] = (0, 7)
    #: Largest fraction of the 24-bit state range a layer's calibrated peak may use.
    headroom: float = 0.5
    #: Below this density a matrix projection becomes QSparse.
    sparse_below: float = 0.2
    #: Loihi's mixed-sign synapses store a `weight_bits` mantissa m and apply 2m (Lava's
    #: `truncate_weights` drops the 9-bit weight's lowest bit): the quantiser emits m and
    #: moves the factor into `weight_exp`, so a mixed matrix's exponents span
    #: `weight_exp_range` plus one (docs/fixed_point.md, section 3.1).
    drop_low_bit_if_mixed: bool = True
    #: Longest edge delay in steps (Loihi 2's delay lines through Lava; the Verilog core's
    #: delay ring, `backends/hdl/limits.py`, reads the same value).
    max_delay: int = 4095

    def __post_init__(self) -> None:
        # A profile may only narrow what the IR and the emulator implement.
        from ..ir.graph import MAX_DELAY
        from ..ir.quantized import WEIGHT_EXP_RANGE, WEIGHT_MANT_MAX

        lo, hi = WEIGHT_EXP_RANGE
        if not 2 <= self.weight_bits <= WEIGHT_MANT_MAX.bit_length() - 1:
            raise NmcompileError(f"profile {self.name!r}: weight_bits={self.weight_bits} is "
                                 f"outside [2, {WEIGHT_MANT_MAX.bit_length() - 1}]")
        if not lo <= self.weight_exp_range[0] <= self.weight_exp_range[1] <= hi:
            raise NmcompileError(f"profile {self.name!r}: weight_exp_range="
                                 f"{self.weight_exp_range} is outside [{lo}, {hi}]")
        if not 0 <= self.max_delay <= MAX_DELAY:
            raise NmcompileError(f"profile {self.name!r}: max_delay={self.max_delay} is "
                                 f"outside [0, {MAX_DELAY}]")


PROFILES: dict[str, Profile] = {
    # Loihi 2 through Lava 0.10: Dense/Sparse weights 8-bit (sign mode per matrix), weight_exp
    # a small shift. Its core sizes are the loihi2 chip's (nmcompile/mapping/chips/loihi2.toml).
    "loihi2": Profile("loihi2"),
    # A wider FPGA variant: 16-bit weights; the same neuron arithmetic.
    "fpga16": Profile("fpga16", weight_bits=16, weight_exp_range=(-16, 15),
                      drop_low_bit_if_mixed=False),
}


def get_profile(profile: str | Profile) -> Profile:
    if isinstance(profile, Profile):
        return profile
    try:
        return PROFILES[profile]
    except KeyError:
        raise NmcompileError(f"unknown profile {profile!r}; known: {', '.join(PROFILES)}") from None
