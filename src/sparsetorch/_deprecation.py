"""Names that moved: a module `__getattr__` that still resolves them for one release, with a warning.

Why a run-time lookup: a name that moved up a layer (say, a model out of `routing` into `models`)
must not keep a static import from its old, lower home, or the layer contract would break.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Mapping
from typing import Any


def moved(module: str, targets: Mapping[str, str]) -> Callable[[str], Any]:
    """A `__getattr__` for `module` resolving each old name to its new dotted path, warning on use.

    Args:
        module: the old module's name (`__name__`), for the messages.
        targets: old name -> new dotted path, e.g. `{"MoEGPT": "sparsetorch.models.moe_gpt.MoEGPT"}`.
    """

    def __getattr__(name: str) -> Any:
        target = targets.get(name)
        if target is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        home, _, attr = target.rpartition(".")
        warnings.warn(
            f"{module}.{name} is deprecated and will be removed in the next release: use {target}",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(home), attr)

    return __getattr__
