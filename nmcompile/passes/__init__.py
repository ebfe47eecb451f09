"""Graph transformations, each a small function Graph -> Graph.

`fold_linear` (fold.py) needs PyTorch and is imported on first use, so that the passes that
do not (`bias.bias_sources`, used by the NIR reader) import without it.
"""

from typing import Any

__all__ = ["fold_linear"]


def __getattr__(name: str) -> Any:
    if name == "fold_linear":
        from .fold import fold_linear

        return fold_linear
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
