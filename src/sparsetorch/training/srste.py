"""Deprecated module name of `sparsetorch.training.sr_ste` (the method is registered as `sr-ste`)."""

import warnings

from sparsetorch.training.sr_ste import SRSTE

warnings.warn(
    "sparsetorch.training.srste is deprecated: import sparsetorch.training.sr_ste",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["SRSTE"]
