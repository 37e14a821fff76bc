"""Reproduction of `wgsef`: the group envelope regularizer reaches a preset neuron sparsity exactly
with negligible accuracy loss; compared with magnitude group pruning at the same sparsity.

The paper claims that WGSEF, trained by proximal gradient, reaches a preset structured sparsity at
convergence with negligible accuracy degradation (or gains). Here: LeNet-300-100 on
Fashion-MNIST; groups are the rows (neurons) of the two hidden layers, and half of each layer's
neurons (150 of 300, 50 of 100) are to be removed. Three arms, the same recipe and epochs
(`fashion_runs`): dense; `wgsef` (lam = 1, prox after every optimizer step for the first half of
training, then the 50% of rows of largest norm fixed); and magnitude group pruning, the same
method with lam = 0 (train dense for half of training, keep the rows of largest norm, fine-tune).
The claim holds when the achieved row sparsity is exactly the preset one and WGSEF's mean accuracy
is within one point of dense ("negligible"); WGSEF against magnitude group pruning is reported.
"""

from __future__ import annotations

from sparsetorch.papers.base import Result
from sparsetorch.papers.fashion_runs import Run, accuracies

GROUP_SPARSITY = 0.5


def reproduce(scale: str) -> Result:
    import sparsetorch.training.wgsef  # noqa: F401  (registers "wgsef")
    from sparsetorch.training import TRAINERS

    def arm(lam: float):
        return lambda seed: TRAINERS.get("wgsef")(sparsity=GROUP_SPARSITY, lam=lam, end=0.5, seed=seed)

    runs = [Run("dense"), Run("wgsef", arm(1.0)), Run("magnitude_group", arm(0.0))]
    metrics, note = accuracies(runs, scale)
    metrics["wgsef_drop_points"] = 100 * (metrics["dense_accuracy_mean"] - metrics["wgsef_accuracy_mean"])
    metrics["wgsef_minus_magnitude_points"] = 100 * (
        metrics["wgsef_accuracy_mean"] - metrics["magnitude_group_accuracy_mean"]
    )
    checks = {
        "wgsef_reaches_the_preset_group_sparsity": ("wgsef_sparsity", ">=", GROUP_SPARSITY - 1e-9),
        "wgsef_not_above_the_preset_group_sparsity": ("wgsef_sparsity", "<=", GROUP_SPARSITY + 1e-9),
        "wgsef_within_1_point_of_dense": ("wgsef_drop_points", "<=", 1.0),
    }
    note = (
        f"{note}; row (neuron) groups of the hidden layers at group sparsity {GROUP_SPARSITY}; wgsef lam 1, "
        "prox until half of training, then masks fixed; magnitude_group = the same schedule with lam 0"
    )
    return Result.from_comparisons(metrics, checks=checks, note=note)
