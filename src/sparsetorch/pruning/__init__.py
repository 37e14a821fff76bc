"""One-shot, post-training pruning: score the weights, select under a pattern, attach masks."""

from sparsetorch.pruning import (  # noqa: F401  (fill the registry)
    dsnot,
    icbs,
    magnitude,
    random_pruning,
    sparsegpt,
    wanda,
)
from sparsetorch.pruning.api import PruneReport, prune
from sparsetorch.pruning.base import PRUNERS, LayerPrune, OneShotPruner
from sparsetorch.pruning.calibration import LayerStats

__all__ = ["PRUNERS", "LayerPrune", "LayerStats", "OneShotPruner", "PruneReport", "prune"]
