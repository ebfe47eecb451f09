"""Mapping a quantised graph onto a chip's cores (issue 15): chip descriptions so far."""

from .chips import Chip, available, load_chip

__all__ = ["Chip", "available", "load_chip"]
