"""One-shot, post-training pruning: score the weights, select under a pattern, attach masks."""

from sparsetorch.pruning import dsnot, icbs, magnitude, random, sparsegpt, wanda  # noqa: F401  (fill the registry)
from sparsetorch.pruning.api import PruneReport, prune
from sparsetorch.pruning.base import PRUNERS, LayerPrune, OneShotPruner
from sparsetorch.pruning.calibration import LayerStats

__all__ = ["PRUNERS", "LayerPrune", "LayerStats", "OneShotPruner", "PruneReport", "prune"]
