"""The base of the calibrated per-layer pruners (SparseGPT, DSnoT, iCBS): one checked entry point.

These methods read the layer's input statistics and support unstructured and N:M patterns only.
`CalibratedPruner.prune_layer` parses and checks the pattern and the statistics once, then hands
the method a `LayerJob` (pattern, sparsity, true shape, name, generator) in `prune_matrix`, so
each method states only its own rule.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from sparsetorch.patterns import NM, Pattern, Unstructured, parse_pattern
from sparsetorch.pruning.base import LayerPrune, OneShotPruner
from sparsetorch.pruning.calibration import LayerStats

__all__ = ["CalibratedPruner", "LayerJob"]


class LayerJob(NamedTuple):
    """One layer to prune: its parsed pattern, target sparsity, true weight shape, FQN, generator."""

    pattern: Unstructured | NM
    sparsity: float
    shape: torch.Size
    name: str
    generator: torch.Generator


class CalibratedPruner(OneShotPruner):
    """A one-shot pruner that reads calibration statistics, for unstructured and N:M patterns.

    Subclasses implement `prune_matrix`; set `needs_xtx = True` when it reads `stats.xtx`.
    """

    needs_calibration = True
    supports_global = False
    patterns = (Unstructured, NM)

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
        pattern = parse_pattern(pattern)
        if not isinstance(pattern, Unstructured | NM):
            raise ValueError(f"{name}: {self.name} supports unstructured and N:M patterns, not {pattern}")
        if stats is None or (self.needs_xtx and stats.xtx is None):
            wanted = " with X^T X" if self.needs_xtx else ""
            raise ValueError(f"{name}: {self.name} needs calibration statistics{wanted}")
        return self.prune_matrix(weight, stats, LayerJob(pattern, sparsity, shape, name, generator))

    def prune_matrix(self, weight: Tensor, stats: LayerStats, job: LayerJob) -> LayerPrune:
        """Prune one layer's `(out, in)` matrix; `stats` and `job.pattern` are already checked."""
        raise NotImplementedError(f"{self.name} defines no prune_matrix")
