"""Reproduction of `sparse-model-soups`: the soup beats its best ingredient and plain IMP.

LeNet-300-100 on Fashion-MNIST, pretrained dense, then pruned to 90% in prune-retrain cycles
(`sparsetorch.training.sparse_model_soups`): SMS retrains three ingredients per cycle (seeds differ:
batch order) and averages them, each cycle starting from the previous soup; plain IMP retrains one
model per cycle with the same epochs per run. The claim holds when the final soup's mean test
accuracy beats both the mean of the best final-cycle ingredient and the mean plain-IMP accuracy.
Every run uses `fit` (SGD lr 0.1 with a cosine decay per run, momentum 0.9, wd 5e-4, batch 128).

Scales: `tiny` (2,048 / 1,000 images, 1 pretraining epoch, 2 cycles of 2 ingredients of 1 epoch,
1 seed), `small` (the full split, 2 pretraining epochs, 2 cycles of 3 ingredients of 1 epoch, 3
seeds), `full` (10 pretraining epochs, 3 cycles of 5 ingredients of 3 epochs, 5 seeds).
The paper's out-of-distribution claim is not measured.
"""

from __future__ import annotations

import copy
import statistics

import torch

from sparsetorch.papers.base import Result, check_scale
from sparsetorch.papers.fashion_runs import fashion_data

SPARSITY = 0.9
SCALES = {
    "tiny": {"pretrain": 1, "cycles": 2, "ingredients": 2, "epochs": 1, "seeds": (0,)},
    "small": {"pretrain": 2, "cycles": 2, "ingredients": 3, "epochs": 1, "seeds": (0, 1, 2)},
    "full": {"pretrain": 10, "cycles": 3, "ingredients": 5, "epochs": 3, "seeds": (0, 1, 2, 3, 4)},
}


def _sparsity(model: torch.nn.Module) -> float:
    """The measured fraction of zeros of the masked weights."""
    from sparsetorch.masks import get_masks

    attached = get_masks(model)
    total = sum(m.numel() for m in attached.values())
    return sum(int((~m).sum()) for m in attached.values()) / total


def reproduce(scale: str) -> Result:
    from sparsetorch.models import create_model
    from sparsetorch.training import evaluate, fit, sparse_model_soups

    cfg = SCALES[check_scale(scale)]
    train, test = fashion_data(scale)
    runs = {"dense": [], "soup": [], "best_ingredient": [], "mean_ingredient": [], "imp": []}
    sparsities = {"soup": [], "imp": []}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for seed in cfg["seeds"]:
            dense = create_model("lenet-300-100", seed=seed)
            fit(dense, None, train, epochs=cfg["pretrain"], seed=seed, progress=False)
            runs["dense"].append(evaluate(dense, test)["accuracy"])
            options = {"sparsity": SPARSITY, "cycles": cfg["cycles"], "epochs": cfg["epochs"], "test": test}
            soup = sparse_model_soups(
                copy.deepcopy(dense), train, ingredients=cfg["ingredients"], seed=seed, **options
            )
            imp = sparse_model_soups(copy.deepcopy(dense), train, ingredients=1, seed=seed, **options)
            runs["soup"].append(soup.soup_accuracy[-1])
            runs["best_ingredient"].append(max(soup.ingredient_accuracy[-1]))
            runs["mean_ingredient"].append(statistics.fmean(soup.ingredient_accuracy[-1]))
            runs["imp"].append(imp.soup_accuracy[-1])
            sparsities["soup"].append(_sparsity(soup.model))
            sparsities["imp"].append(_sparsity(imp.model))
    finally:
        torch.set_num_threads(threads)
    metrics = {}
    for name, accs in runs.items():
        metrics[f"{name}_accuracy_mean"] = statistics.fmean(accs)
        metrics[f"{name}_accuracy_std"] = statistics.stdev(accs) if len(accs) > 1 else 0.0
    for name, values in sparsities.items():
        metrics[f"{name}_sparsity"] = statistics.fmean(values)
    metrics["dense_sparsity"] = 0.0
    checks = {
        "soup_beats_best_ingredient": ("soup_accuracy_mean", ">", "best_ingredient_accuracy_mean"),
        "soup_beats_plain_imp": ("soup_accuracy_mean", ">", "imp_accuracy_mean"),
    }
    note = (
        f"{scale}: Fashion-MNIST ({len(train[0])} train / {len(test[0])} test images), LeNet-300-100 "
        f"pretrained {cfg['pretrain']} epoch(s), then {cfg['cycles']} prune-retrain cycles to "
        f"{SPARSITY:.0%} (global magnitude), {cfg['ingredients']} ingredients of {cfg['epochs']} epoch(s) "
        f"per cycle (plain IMP: 1), seeds {list(cfg['seeds'])}; uniform soups"
    )
    return Result.from_comparisons(metrics, checks=checks, note=note)
