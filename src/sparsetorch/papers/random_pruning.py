"""Reproduction of `random-pruning`: the gap between a randomly pruned network and its dense
equivalent shrinks as the network grows wider.

The paper's claim (i): "as the original dense networks grow wider and deeper, the performance of
training a randomly pruned sparse network will quickly grow to matching that of its dense
equivalent, even at high sparsity ratios". Here: LeNet-300-100 on Fashion-MNIST with its hidden
widths multiplied by 1, 2 and 4 (300-100, 600-200, 1200-400), each trained dense and with a static
random mask at 90% sparsity with ERK budgets on the two hidden layers (the paper's recommended
layer-wise ratios; the classifier dense), the same recipe and epochs for all arms
(`fashion_runs`, epochs per scale).

The claim holds when the gap (dense minus sparse mean accuracy, in points) decreases strictly from
x1 to x2 and from x2 to x4.
"""

from __future__ import annotations

from itertools import pairwise

from sparsetorch.papers.base import Result
from sparsetorch.papers.fashion_runs import Run, accuracies

EPOCHS = {"tiny": 1, "small": 2, "full": 20}
SPARSITY = 0.9
WIDTHS = (1, 2, 4)
BASE = (300, 100)


def reproduce(scale: str) -> Result:
    from sparsetorch.training import TRAINERS

    def random_masks(seed: int):
        return TRAINERS.get("random-pruning")(sparsity=SPARSITY, distribution="erk", seed=seed)

    runs = []
    for k in WIDTHS:
        model = {"hidden": (BASE[0] * k, BASE[1] * k)}
        runs += [Run(f"dense_x{k}", model=model), Run(f"random_x{k}", random_masks, model=model)]
    metrics, note = accuracies(runs, scale, epochs=EPOCHS)
    for k in WIDTHS:
        metrics[f"gap_points_x{k}"] = 100 * (
            metrics[f"dense_x{k}_accuracy_mean"] - metrics[f"random_x{k}_accuracy_mean"]
        )
    checks = {
        f"gap_shrinks_x{a}_to_x{b}": (f"gap_points_x{b}", "<", f"gap_points_x{a}")
        for a, b in pairwise(WIDTHS)
    }
    note = (
        f"{note}; hidden widths 300-100 x{{1, 2, 4}}; random masks at 90% with ERK budgets, classifier dense"
    )
    return Result.from_comparisons(metrics, checks=checks, note=note)
