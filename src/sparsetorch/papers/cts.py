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

The claim holds when CTS's mean test accuracy exceeds SNIP's at both sparsities. Metrics are
`<arm>_<pct>_accuracy_{mean,std}` over the seeds, `_sparsity`, `_seconds` (one run's wall time,
mask search included) and the gains in points.
"""

from __future__ import annotations

from typing import Any

from sparsetorch.papers.base import Result, check_scale
from sparsetorch.papers.fashion_runs import Run, accuracies

__all__ = ["SCALES", "SNIP_BATCH", "SPARSITIES", "reproduce"]

SPARSITIES = (0.98, 0.99)
SNIP_BATCH = 512  # one CTS minibatch; the SNIP paper scores one minibatch
# Training epochs (the same for every arm) and the CTS search: steps of `batch` images drawn from
# `calibration` training images (the reference searches 1/8 of the training epochs over the full set).
SCALES: dict[str, dict[str, Any]] = {
    "tiny": {"epochs": 4, "iterations": 20, "batch": 256, "calibration": 2048},
    "small": {"epochs": 4, "iterations": 600, "batch": 512, "calibration": 60000},
    "full": {"epochs": 20, "iterations": 2000, "batch": 512, "calibration": 60000},
}  # fmt: skip


def reproduce(scale: str) -> Result:
    """Train CTS, SNIP and random arms at 98% and 99% at `scale` (see the module docstring)."""
    from sparsetorch.training import TRAINERS

    cfg = SCALES[check_scale(scale)]
    search = {"iterations": cfg["iterations"], "batch_size": cfg["batch"]}

    def arm(name: str, sparsity: float) -> Run:
        label = f"{name}_{round(100 * sparsity)}"
        if name == "cts":
            return Run(
                label,
                lambda seed: TRAINERS.get("cts")(sparsity=sparsity, seed=seed, **search),
                calibration=cfg["calibration"],
            )
        if name == "snip":
            return Run(
                label, lambda seed: TRAINERS.get("snip")(sparsity=sparsity, seed=seed), calibration=SNIP_BATCH
            )
        return Run(label, lambda seed: TRAINERS.get("random-pruning")(sparsity=sparsity, seed=seed))

    runs = [arm(name, s) for s in SPARSITIES for name in ("cts", "snip", "random")]
    epochs = {s: c["epochs"] for s, c in SCALES.items()}
    metrics, note = accuracies(runs, scale, epochs=epochs)
    checks = {}
    for sparsity in SPARSITIES:
        pct = round(100 * sparsity)
        for base in ("snip", "random"):
            metrics[f"cts_minus_{base}_points_{pct}"] = 100 * (
                metrics[f"cts_{pct}_accuracy_mean"] - metrics[f"{base}_{pct}_accuracy_mean"]
            )
        checks[f"cts_beats_snip_at_{pct}"] = (f"cts_{pct}_accuracy_mean", ">", f"snip_{pct}_accuracy_mean")
    metrics["cts_iterations"] = cfg["iterations"]
    note = (
        f"{note}; hidden layers pruned at init (classifier dense), CTS-KL and SNIP with one global "
        f"threshold, random with ERK budgets; CTS searches {cfg['iterations']} steps of {cfg['batch']} "
        f"images from {cfg['calibration']} training images (reference: 1/8 of the training epochs over "
        f"the full set), SNIP scores one batch of {SNIP_BATCH}; LeNet-300-100 / Fashion-MNIST instead "
        "of ResNet-20 / CIFAR-10; LTR is not compared"
    )
    return Result.from_comparisons(metrics, checks=checks, note=note)
