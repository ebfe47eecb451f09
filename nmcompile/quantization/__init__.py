"""Quantisation: fixed-point profiles, the quantiser and quantisation-aware fine-tuning.

`finetune` and `FakeQuantizer` (`nmcompile.quantization.qat`) need PyTorch and are loaded on
first use, so that importing this package (the CLI does) does not load it.
"""

from typing import Any

from .profiles import PROFILES, Profile, get_profile
from .quantizer import QuantizationReport, quantize

_API = ("FakeQuantizer", "FinetuneHistory", "finetune")

__all__ = ["PROFILES", "Profile", "QuantizationReport", "get_profile", "quantize", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        from . import qat

        return getattr(qat, name)
    raise AttributeError(f"module 'nmcompile.quantization' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
