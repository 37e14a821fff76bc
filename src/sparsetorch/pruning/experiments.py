"""Deprecated: moved to `sparsetorch.papers.pruning_experiments` (experiments are not library code).

This alias stays for one release. Importing it warns; its names are looked up in the new module on
first use, by name, so the pruning axis holds no import of the papers layer above it.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

# The names resolve through `__getattr__` below (star imports included).
__all__ = ["Row", "Setting", "gpt_runs", "grid", "minilm_runs"]  # noqa: F822

_NEW_HOME = "sparsetorch.papers.pruning_experiments"

warnings.warn(
    f"sparsetorch.pruning.experiments is deprecated and will be removed in the next release; import {_NEW_HOME}",
    DeprecationWarning,
    stacklevel=2,
)


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module(_NEW_HOME), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
