"""The one-shot pruning method base: prune one layer, seen as a matrix, given its input statistics.

A method implements `prune_layer(weight, stats, pattern, sparsity, ...)` on the layer's weight as
an `(out, in)` matrix (see `calibration.as_matrix`) and returns the kept mask and the new weight
(equal to `weight * mask` unless the method reconstructs, as SparseGPT does). Score-based methods
only define `scores`; the base turns scores into a mask with `patterns.select`, on the weight's
true shape so that N:M, block and channel patterns mean the same everywhere.
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

import torch
from torch import Tensor

from sparsetorch.methods import Method, method_registry
from sparsetorch.patterns import NM, Block, Channel, Group, Pattern, Unstructured, select
from sparsetorch.pruning.calibration import LayerStats, as_matrix, from_matrix

PRUNERS = method_registry("pruning")


class LayerPrune(NamedTuple):
    """A pruned layer as matrices `(out, in)`: the kept mask and the weight to store."""

    mask: Tensor
    weight: Tensor


class OneShotPruner(Method):
    """A post-training pruner.

    Class attributes:
        needs_calibration: the method reads input statistics (`stats` is then never None).
        group: comparison group for unstructured selection, "tensor" or "row": the weights whose
            scores compete for the kept slots.
        supports_global: scores are comparable across layers (global allocation is possible).
        needs_xtx: the method reads `stats.xtx` (X^T X up to a power-of-two factor), accumulated
            even when errors are off.
        patterns: the pattern types the method supports (checked before any work is done).
    """

    needs_calibration: ClassVar[bool] = False
    needs_xtx: ClassVar[bool] = False
    patterns: ClassVar[tuple[type, ...]] = (Unstructured, NM, Block, Channel)
    group: ClassVar[Group] = "tensor"
    supports_global: ClassVar[bool] = True

    def scores(self, weight: Tensor, stats: LayerStats | None, *, generator: torch.Generator) -> Tensor:
        """Importance of each element of the `(out, in)` weight matrix; higher is kept."""
        raise NotImplementedError(f"{self.name} defines no per-weight scores")

    def prune_layer(
        self,
        weight: Tensor,
        stats: LayerStats | None,
        *,
        pattern: Pattern,
        sparsity: float,
        shape: torch.Size,
        name: str,
        generator: torch.Generator,
    ) -> LayerPrune:
        """Prune one layer. `weight` is its `(out, in)` matrix, `shape` the true weight shape."""
        scores = self.scores(weight, stats, generator=generator)
        mask = as_matrix(select(from_matrix(scores, shape), pattern, sparsity, group=self.group, name=name))
        return LayerPrune(mask, weight * mask)
