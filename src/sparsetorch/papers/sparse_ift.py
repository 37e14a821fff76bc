"""Reproduction of `sparse-ift`: a Sparse Wide network beats its dense original at the same FLOPs.

The paper's claim: replacing dense layers by Sparse-IFT (here its Sparse Wide member) raises
accuracy at the same FLOPs, more so at higher sparsity (ResNet-18 on ImageNet +3.5% at s = 0.9,
with dynamic sparse training). Here: LeNet-300-100 on Fashion-MNIST against its Sparse Wide
transformations at s = 0.5 (k = 1.41: 424-141) and s = 0.75 (k = 2: 600-200), trained with RigL
(paper defaults, every layer sparse with the iso-FLOP budgets of `training.sparse_ift`), the same
recipe and epochs for all arms (`fashion_runs`, epochs per scale).

FLOPs are measured with `sparsetorch.accounting.report` on one example (the dense model with
all-ones masks on its three layers, so that the classifier is counted; the sparse wide model as
`prepare` leaves it) and must agree to within rounding (relative difference <= 1e-9). The claim
holds when they do and every sparse wide mean accuracy exceeds the dense mean.
"""

from __future__ import annotations

import torch

from sparsetorch.papers.base import Result
from sparsetorch.papers.fashion_runs import Run, accuracies

EPOCHS = {"tiny": 2, "small": 4, "full": 30}
SPARSITIES = (0.5, 0.75)


def forward_flops(model: torch.nn.Module, method=None) -> int:
    """Effective FLOPs of one 28x28 example through every Linear layer of `model`, measured by
    `accounting.report`: prepared by `method` if given, else with all-ones masks (dense)."""
    from sparsetorch.accounting import report
    from sparsetorch.masks import attach

    if method is not None:
        method.prepare(model, torch.optim.SGD(model.parameters(), lr=0.1), total_steps=1)
    else:
        ones = {n: torch.ones_like(p, dtype=torch.bool) for n, p in model.named_parameters() if p.dim() == 2}
        attach(model, ones)
    return report(model, torch.zeros(1, 1, 28, 28)).effective_flops


def reproduce(scale: str) -> Result:
    from sparsetorch.models import create_model
    from sparsetorch.training.sparse_ift import sparse_wide

    metrics: dict[str, float] = {"flops_dense": forward_flops(create_model("lenet-300-100", seed=0))}
    runs = [Run("dense")]
    checks = {}
    for s in SPARSITIES:
        wide = sparse_wide(s)
        label = f"wide_s{round(100 * s)}"
        flops = forward_flops(
            create_model("lenet-300-100", seed=0, **wide.model_config()), wide.method("rigl", seed=0)
        )
        metrics[f"flops_{label}"] = flops
        metrics[f"flops_rel_diff_{label}"] = abs(flops / metrics["flops_dense"] - 1.0)
        metrics[f"width_multiplier_{label}"] = wide.width_multiplier
        checks[f"iso_flops_{label}"] = (f"flops_rel_diff_{label}", "<=", 1e-9)

        def rigl(seed: int, wide=wide):
            return wide.method("rigl", seed=seed)

        runs.append(Run(label, rigl, model=wide.model_config()))
    measured, note = accuracies(runs, scale, epochs=EPOCHS)
    metrics.update(measured)
    for s in SPARSITIES:
        label = f"wide_s{round(100 * s)}"
        gain = f"{label}_minus_dense_points"
        metrics[gain] = 100 * (metrics[f"{label}_accuracy_mean"] - metrics["dense_accuracy_mean"])
        checks[f"{label}_beats_dense"] = (gain, ">", 0.0)
    note = (
        f"{note}; Sparse Wide at s = 0.5 (424-141) and 0.75 (600-200), every layer sparse with "
        "nnz = the dense layer's weights, trained with RigL (paper defaults)"
    )
    return Result.from_comparisons(metrics, checks=checks, note=note)
