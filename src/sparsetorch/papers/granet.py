"""Reproduction of `granet`: gradual pruning with zero-cost neuroregeneration against plain GMP.

The paper's claim: regenerating as many connections as are pruned (by gradient, at each pruning
step) improves pruning plasticity, so GraNet beats GMP at the same final sparsity and training
time (its CIFAR-10/100 and ImageNet tables at 80-98% sparsity; the abstract gives no number).

Setup, every scale: LeNet-300-100 on Fashion-MNIST, the two hidden layers pruned from dense to 90%
and to 95% (classifier dense), plus a dense reference, one seed per call, the same seed, recipe and
epochs for every arm (`fashion_runs`). Epochs: tiny 2 (2,048 training images), small 3, full 30
(the full split).

Both methods share one pruning schedule so that regeneration is the only difference: the cubic
schedule from step 0 to 75% of training, an update every 100 steps, one global magnitude
threshold (GraNet's GMP baseline). GraNet regenerates with its defaults (rate 0.5, cosine-decayed
over training to 0.005) at every update step, through the end of training.

Claim checks (strict: equal arms fail):

- `granet_beats_gmp_at_90`, `granet_beats_gmp_at_95`: GraNet accuracy minus GMP accuracy, in
  points, > 0 at each sparsity (paper: GraNet above GMP at the same sparsity in every table).

Sanity checks (hold by construction, reported apart): every pruned arm ends at its sparsity.

Broken arm `gmp-as-granet`: GMP trained in place of GraNet with the same seed and schedule (no
regeneration), so the two arms are identical and both claim checks fail.

Deviations from the paper: an MLP on Fashion-MNIST for a few epochs instead of ResNets on CIFAR
and ImageNet; the reference recipe updates every 1,000 steps and prunes until 68.75% of 160 epochs,
while a few thousand steps here call for updates every 100 steps and the RigL-style 75% end.
"""

from __future__ import annotations

from sparsetorch.papers.base import BrokenArm, Result
from sparsetorch.papers.fashion_runs import Run, accuracies

EPOCHS = {"tiny": 2, "small": 3, "full": 30}
SPARSITIES = (0.9, 0.95)
SCHEDULE = {"distribution": "global", "update_every": 100, "start": 0, "end": 0.75}

BROKEN_ARMS = {
    "gmp-as-granet": BrokenArm(
        "GMP (no regeneration) trained in place of GraNet with the same seed and schedule",
        fails=("granet_beats_gmp_at_90", "granet_beats_gmp_at_95"),
    ),
}

PAPER_TEXT = (
    "GraNet above GMP at the same sparsity and training time in the paper's CIFAR-10/100 (VGG-19, "
    "ResNet-50) and ImageNet (ResNet-50) tables; the abstract gives no number"
)


def reproduce(scale: str, *, seed: int = 0, broken: str | None = None) -> Result:
    from sparsetorch.training import TRAINERS

    if broken is not None and broken not in BROKEN_ARMS:
        raise ValueError(f"unknown broken arm {broken!r} (have: {', '.join(BROKEN_ARMS)})")

    def arm(name: str, sparsity: float, label: str) -> Run:
        return Run(label, lambda s: TRAINERS.get(name)(sparsity=sparsity, seed=s, **SCHEDULE))

    method = "gmp" if broken == "gmp-as-granet" else "granet"
    runs = [Run("dense")]
    for sparsity in SPARSITIES:
        pct = round(100 * sparsity)
        runs += [arm("gmp", sparsity, f"gmp_{pct}"), arm(method, sparsity, f"granet_{pct}")]
    metrics, note = accuracies(runs, scale, seed=seed, epochs=EPOCHS)
    checks, sanity, paper = {}, {}, {}
    for sparsity in SPARSITIES:
        pct = round(100 * sparsity)
        gain = f"granet_minus_gmp_points_{pct}"
        metrics[gain] = 100 * (metrics[f"granet_{pct}_accuracy"] - metrics[f"gmp_{pct}_accuracy"])
        checks[f"granet_beats_gmp_at_{pct}"] = (gain, ">", 0.0)
        paper[f"granet_beats_gmp_at_{pct}"] = PAPER_TEXT
        for label in ("gmp", "granet"):
            sanity[f"{label}_sparsity_{pct}"] = (f"{label}_{pct}_sparsity", ">=", sparsity - 1e-6)
    note = (
        f"{note}; both prune dense -> target on one cubic schedule (global threshold, every 100 "
        "steps, until 75% of training); GraNet regeneration rate 0.5 cosine-decayed"
    )
    if broken is not None:
        note = f"{note}; BROKEN ARM {broken}: {BROKEN_ARMS[broken].description}"
    return Result.from_comparisons(metrics, checks=checks, sanity=sanity, paper=paper, note=note)
