"""The one-shot pruning method base: a score per weight, turned into masks by `patterns.select`."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from sparsetorch.methods import Method, method_registry
from sparsetorch.patterns import Group

PRUNERS = method_registry("pruning")


class OneShotPruner(Method):
    """A post-training pruner. Subclasses define `scores`; higher scores are kept.

    `group` is the comparison group for unstructured selection ("tensor" or "row"): the set of
    weights whose scores compete for the kept slots. Methods that need activations set
    `needs_calibration` (calibration lands with the block-sequential calibrator).
    """

    needs_calibration: ClassVar[bool] = False
    group: ClassVar[Group] = "tensor"

    def scores(self, weight: Tensor, *, fqn: str, generator: torch.Generator) -> Tensor:
        """Importance of each element of `weight` (same shape)."""
        raise NotImplementedError
