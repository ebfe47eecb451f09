"""Graph transformations, each a small function Graph -> Graph."""

from .fold import fold_linear

__all__ = ["fold_linear"]
