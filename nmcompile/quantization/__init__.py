"""Quantisation: fixed-point profiles and the quantiser."""

from .profiles import PROFILES, Profile, get_profile
from .quantizer import QuantizationReport, quantize

__all__ = ["PROFILES", "Profile", "QuantizationReport", "get_profile", "quantize"]
