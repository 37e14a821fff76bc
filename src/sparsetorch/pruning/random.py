"""Deprecated: random pruning lives in `sparsetorch.pruning.random_pruning` (`random` shadowed the stdlib)."""

from __future__ import annotations

import warnings

from sparsetorch.pruning.random_pruning import Random, RandomConfig

__all__ = ["Random", "RandomConfig"]

warnings.warn(
    "sparsetorch.pruning.random is deprecated; import from sparsetorch.pruning.random_pruning",
    DeprecationWarning,
    stacklevel=2,
)
