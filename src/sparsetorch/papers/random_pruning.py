"""Reproduction of `random-pruning`: the gap between a randomly pruned network and its dense
equivalent shrinks as the network grows wider.

The paper's claim (i): "as the original dense networks grow wider and deeper, the performance of
training a randomly pruned sparse network will quickly grow to matching that of its dense
equivalent, even at high sparsity ratios" (its CIFAR figures over ResNet depth and width; the
abstract's number is the ImageNet end point: a randomly pruned Wide ResNet-50 outperforms the
dense one).

Setup, every scale: LeNet-300-100 on Fashion-MNIST with its hidden widths multiplied by 1, 2 and 4
(300-100, 600-200, 1200-400), each trained dense and with a static random mask at 90% sparsity
with ERK budgets on the two hidden layers (the paper's recommended layer-wise ratios; the
classifier dense), one seed per call, the same seed, recipe and epochs for every arm
(`fashion_runs`). Epochs: tiny 1 (2,048 training images), small 2, full 20 (the full split).

Claim checks (strict: equal gaps fail), the gap being dense minus random accuracy in points:

- `gap_shrinks_x1_to_x2`: gap at x2 < gap at x1;
- `gap_shrinks_x2_to_x4`: gap at x4 < gap at x2
  (paper: the gap to dense closes as the network widens, Wide ResNet-50 random > dense on ImageNet).

Sanity checks (hold by construction, reported apart): every random arm ends at 90% sparsity.

Broken arm `no-widening`: every arm trained at width x1 (the x2 and x4 arms are the x1 arms run
again with the same seed), so the three gaps are equal and both claim checks fail.

Deviations from the paper: an MLP on Fashion-MNIST for a few epochs instead of ResNets and Wide
ResNets on CIFAR and ImageNet; only width grows here, not depth.
"""

from __future__ import annotations

from itertools import pairwise

from sparsetorch.papers.base import BrokenArm, Result
from sparsetorch.papers.fashion_runs import Run, accuracies

EPOCHS = {"tiny": 1, "small": 2, "full": 20}
SPARSITY = 0.9
WIDTHS = (1, 2, 4)
BASE = (300, 100)

BROKEN_ARMS = {
    "no-widening": BrokenArm(
        "every arm trained at width x1: the x2 and x4 arms repeat the x1 arms with the same seed",
        fails=("gap_shrinks_x1_to_x2", "gap_shrinks_x2_to_x4"),
    ),
}

PAPER_TEXT = (
    "the gap to dense closes as networks grow wider (CIFAR width/depth sweeps); a randomly pruned "
    "Wide ResNet-50 outperforms the dense one on ImageNet (abstract)"
)


def reproduce(scale: str, *, seed: int = 0, broken: str | None = None) -> Result:
    from sparsetorch.training import TRAINERS

    if broken is not None and broken not in BROKEN_ARMS:
        raise ValueError(f"unknown broken arm {broken!r} (have: {', '.join(BROKEN_ARMS)})")

    def random_masks(s: int):
        return TRAINERS.get("random-pruning")(sparsity=SPARSITY, distribution="erk", seed=s)

    runs = []
    for k in WIDTHS:
        width = 1 if broken == "no-widening" else k
        model = {"hidden": (BASE[0] * width, BASE[1] * width)}
        runs += [Run(f"dense_x{k}", model=model), Run(f"random_x{k}", random_masks, model=model)]
    metrics, note = accuracies(runs, scale, seed=seed, epochs=EPOCHS)
    for k in WIDTHS:
        metrics[f"gap_points_x{k}"] = 100 * (
            metrics[f"dense_x{k}_accuracy"] - metrics[f"random_x{k}_accuracy"]
        )
    checks = {
        f"gap_shrinks_x{a}_to_x{b}": (f"gap_points_x{b}", "<", f"gap_points_x{a}")
        for a, b in pairwise(WIDTHS)
    }
    paper = dict.fromkeys(checks, PAPER_TEXT)
    sanity = {f"random_x{k}_sparsity_90": (f"random_x{k}_sparsity", ">=", SPARSITY - 1e-6) for k in WIDTHS}
    note = (
        f"{note}; hidden widths 300-100 x{{1, 2, 4}}; random masks at 90% with ERK budgets, classifier dense"
    )
    if broken is not None:
        note = f"{note}; BROKEN ARM {broken}: {BROKEN_ARMS[broken].description}"
    return Result.from_comparisons(metrics, checks=checks, sanity=sanity, paper=paper, note=note)
