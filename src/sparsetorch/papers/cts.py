"""Reproduction of `cts`: Concrete Ticket Search (CTS-KL) against SNIP at 98% and 99% sparsity.

The paper's claim (its abstract): CTS's subnetworks outperform saliency-based pruning at
initialization across all sparsities, most of all in the sparse regime (ResNet-20 / CIFAR-10,
99.3% sparsity at 74.0% accuracy). Here: LeNet-300-100 on Fashion-MNIST, its two hidden layers
pruned at initialization to 98% and to 99% (classifier dense, one global threshold for CTS and
SNIP), then trained with fixed masks, the same recipe and epochs for all arms (`fashion_runs`);
static random masks (ERK budgets) are the floor.

- CTS: the reverse-KL search of `sparsetorch.training.cts` with its defaults except the number of
  steps (`SCALES`), on a random subset of the training images (labels unused).
- SNIP: connection sensitivity on one batch of `SNIP_BATCH` random training images.
- random: `random-pruning` (ERK), the method's default.

One call is one seed (initialisation, calibration sample, search and training order, the same for
every arm); the bench repeats it over seeds and `sparsetorch.papers.stats` pairs the arms. Scales
(`SCALES`): tiny 2,048 / 1,000 images, 4 epochs, 20 search steps of 256; small the full split, 4
epochs, 600 steps of 512; full 20 epochs, 2,000 steps of 512.

Claim checks (strict: better, not equal):

- `cts_beats_snip_at_98`, `cts_beats_snip_at_99`: CTS's test accuracy > SNIP's at that sparsity.
  Paper: CTS outperforms saliency-based pruning at initialization across all sparsities, most in
  the sparse regime (ResNet-20 / CIFAR-10 at 99.3% sparsity: 74.0%).

Sanity checks: every arm reaches its sparsity (`<arm>_reaches_<pct>`).

Broken arm (`BROKEN_ARMS`): `snip-twice`, SNIP (same seed, same calibration batch) in place of CTS:
the two arms are the same run, so both strict checks fail.

Metrics: `<arm>_<pct>_accuracy`, `_sparsity`, `_seconds` (the run's wall time, mask search
included) and the gains in points. Deviations: LeNet-300-100 / Fashion-MNIST instead of ResNet-20 /
CIFAR-10; a shorter CTS search than the reference's (`SCALES`); LTR is not compared.
"""

from __future__ import annotations

from typing import Any

from sparsetorch.papers.base import BrokenArm, Result, check_scale
from sparsetorch.papers.fashion_runs import Run, accuracies

__all__ = ["BROKEN_ARMS", "SCALES", "SNIP_BATCH", "SPARSITIES", "reproduce"]

SPARSITIES = (0.98, 0.99)
SNIP_BATCH = 512  # one CTS minibatch; the SNIP paper scores one minibatch
# Training epochs (the same for every arm) and the CTS search: steps of `batch` images drawn from
# `calibration` training images (the reference searches 1/8 of the training epochs over the full set).
SCALES: dict[str, dict[str, Any]] = {
    "tiny": {"epochs": 4, "iterations": 20, "batch": 256, "calibration": 2048},
    "small": {"epochs": 4, "iterations": 600, "batch": 512, "calibration": 60000},
    "full": {"epochs": 20, "iterations": 2000, "batch": 512, "calibration": 60000},
}  # fmt: skip

BROKEN_ARMS = {
    "snip-twice": BrokenArm(
        "SNIP (same seed, same calibration batch) in place of CTS: both arms are the same run",
        fails=("cts_beats_snip_at_98", "cts_beats_snip_at_99"),
    ),
}


def reproduce(scale: str, *, seed: int = 0, broken: str | None = None) -> Result:
    """Train CTS, SNIP and random arms at 98% and 99% at `scale` with `seed` (see the module
    docstring); `broken="snip-twice"` trains SNIP in place of CTS."""
    from sparsetorch.training import TRAINERS

    cfg = SCALES[check_scale(scale)]
    search = {"iterations": cfg["iterations"], "batch_size": cfg["batch"]}

    def arm(name: str, sparsity: float) -> Run:
        label = f"{name}_{round(100 * sparsity)}"
        if name == "cts" and broken == "snip-twice":
            return Run(label, arm("snip", sparsity).method, calibration=SNIP_BATCH)
        if name == "cts":
            return Run(
                label,
                lambda s: TRAINERS.get("cts")(sparsity=sparsity, seed=s, **search),
                calibration=cfg["calibration"],
            )
        if name == "snip":
            return Run(
                label, lambda s: TRAINERS.get("snip")(sparsity=sparsity, seed=s), calibration=SNIP_BATCH
            )
        return Run(label, lambda s: TRAINERS.get("random-pruning")(sparsity=sparsity, seed=s))

    runs = [arm(name, s) for s in SPARSITIES for name in ("cts", "snip", "random")]
    epochs = {s: c["epochs"] for s, c in SCALES.items()}
    metrics, note = accuracies(runs, scale, seed=seed, epochs=epochs)
    checks, sanity, paper = {}, {}, {}
    for sparsity in SPARSITIES:
        pct = round(100 * sparsity)
        for base in ("snip", "random"):
            metrics[f"cts_minus_{base}_points_{pct}"] = 100 * (
                metrics[f"cts_{pct}_accuracy"] - metrics[f"{base}_{pct}_accuracy"]
            )
        checks[f"cts_beats_snip_at_{pct}"] = (f"cts_{pct}_accuracy", ">", f"snip_{pct}_accuracy")
        paper[f"cts_beats_snip_at_{pct}"] = (
            "CTS outperforms saliency-based pruning at initialization across all sparsities, most in the "
            "sparse regime; ResNet-20 / CIFAR-10 at 99.3% sparsity: 74.0% (abstract)"
        )
        for name in ("cts", "snip", "random"):
            sanity[f"{name}_reaches_{pct}"] = (f"{name}_{pct}_sparsity", ">=", sparsity - 1e-3)
    metrics["cts_iterations"] = cfg["iterations"]
    note = (
        f"{note}; hidden layers pruned at init (classifier dense), CTS-KL and SNIP with one global "
        f"threshold, random with ERK budgets; CTS searches {cfg['iterations']} steps of {cfg['batch']} "
        f"images from {cfg['calibration']} training images (reference: 1/8 of the training epochs over "
        f"the full set), SNIP scores one batch of {SNIP_BATCH}; LeNet-300-100 / Fashion-MNIST instead "
        "of ResNet-20 / CIFAR-10; LTR is not compared"
    )
    return Result.from_comparisons(metrics, checks=checks, sanity=sanity, paper=paper, note=note)
