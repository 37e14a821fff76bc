"""Magnitude pruning: keep the weights of largest absolute value.

Classic baseline (Han et al. 2015, "Learning both Weights and Connections"; Zhu & Gupta 2017).
Rule: score_ij = |W_ij|, compared within the whole tensor (layer-wise) by default; the layer
budgets come from the allocation (uniform, ERK or global magnitude across layers).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from sparsetorch.methods import MethodConfig
from sparsetorch.pruning.base import PRUNERS, OneShotPruner
from sparsetorch.pruning.calibration import LayerStats


@dataclass(frozen=True)
class MagnitudeConfig(MethodConfig):
    """Magnitude pruning has no hyperparameters beyond sparsity and pattern."""


@PRUNERS.register("magnitude")
class Magnitude(OneShotPruner):
    """score = |W|."""

    name = "magnitude"
    Config = MagnitudeConfig

    def scores(self, weight: Tensor, stats: LayerStats | None, *, generator: torch.Generator) -> Tensor:
        return weight.detach().abs()
