"""One-shot, post-training pruning: score the weights, select under a pattern, attach masks."""

from sparsetorch.pruning import magnitude, random  # noqa: F401  (fill the registry)
from sparsetorch.pruning.api import PruneReport, prune
from sparsetorch.pruning.base import PRUNERS, OneShotPruner

__all__ = ["PRUNERS", "OneShotPruner", "PruneReport", "prune"]
