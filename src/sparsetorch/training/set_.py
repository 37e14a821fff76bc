"""Deprecated: SET lives in `sparsetorch.training.sparse_evolutionary` (`set_` was named around `set`)."""

from __future__ import annotations

import warnings

from sparsetorch.training.sparse_evolutionary import SET, SETConfig

__all__ = ["SET", "SETConfig"]

warnings.warn(
    "sparsetorch.training.set_ is deprecated; import from sparsetorch.training.sparse_evolutionary",
    DeprecationWarning,
    stacklevel=2,
)
