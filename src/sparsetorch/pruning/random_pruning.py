"""Random pruning: keep a uniformly random subset of each layer, once, after training.

A classic one-shot baseline. The paper `random-pruning` (Liu et al. 2022, "The Unreasonable
Effectiveness of Random Pruning") trains from static random masks; that method is the training
method `random-pruning` (`sparsetorch.training.random_pruning`), which alone claims the paper. Rule: score_ij ~ U(0, 1) i.i.d. from an explicit generator seeded by `prune(seed=...)`,
drawn layer by layer in target order, so the same seed gives the same masks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from sparsetorch.methods import MethodConfig
from sparsetorch.pruning.base import PRUNERS, OneShotPruner
from sparsetorch.pruning.calibration import LayerStats


@dataclass(frozen=True)
class RandomConfig(MethodConfig):
    """No hyperparameters: the randomness comes from `prune(seed=...)`."""


@PRUNERS.register("random")
class Random(OneShotPruner):
    """score ~ U(0, 1), independent of the weights."""

    name = "random"
    paper = ""  # a classic baseline; the paper's method is the training method "random-pruning"
    Config = RandomConfig

    def scores(self, weight: Tensor, stats: LayerStats | None, *, generator: torch.Generator) -> Tensor:
        return torch.rand(weight.shape, generator=generator)
