"""`prune(model, method, sparsity, pattern, ...)`: one-shot pruning of a model in place."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from sparsetorch import allocation
from sparsetorch.accounting import SparsityReport, report
from sparsetorch.masks import attach, named_weights, resolve_targets
from sparsetorch.patterns import NM, Pattern, Unstructured, parse_pattern, select
from sparsetorch.pruning.base import PRUNERS, OneShotPruner


@dataclass(frozen=True)
class PruneReport:
    """What `prune` did: the method and its config, the targets' accounting, the time it took."""

    method: str
    config: dict[str, Any]
    pattern: str
    distribution: str
    target_sparsity: float
    seconds: float
    report: SparsityReport

    @property
    def sparsity(self) -> float:
        return self.report.sparsity

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "config": self.config,
            "pattern": self.pattern,
            "distribution": self.distribution,
            "target_sparsity": self.target_sparsity,
            "seconds": self.seconds,
            **self.report.to_dict(),
        }

    def __rich__(self):
        title = f"{self.method} · {self.pattern} · {self.distribution} · target {self.target_sparsity:.0%}"
        return self.report.table(title=title)


def prune(
    model: nn.Module,
    method: str = "magnitude",
    sparsity: float | None = 0.5,
    pattern: str | Pattern = "unstructured",
    *,
    calibration: Iterable[Any] | None = None,
    targets: str | Iterable[str] | None = None,
    ignore: str | Iterable[str] | None = None,
    distribution: str = "uniform",
    **config: Any,
) -> PruneReport:
    """Prune `model` in place with a one-shot method and return what was done.

    Args:
        model: the model; masks are attached to its targets (see `masks.resolve_targets`).
        method: a registered one-shot pruning method (`sparsetorch.list_methods(kind="pruning")`).
        sparsity: overall fraction of zeros over the targets; implied (may be None) under N:M.
        pattern: `"unstructured"`, `"2:4"`, `"block4x4"`, `"channel"` or a `Pattern`.
        calibration: batches for methods that need activations.
        targets: FQN globs of the weights to prune (default: Linear/Conv weights but the head).
        ignore: FQN globs to leave dense.
        distribution: layer budgets for unstructured patterns: "uniform", "erk" or "global".
        **config: the method's hyperparameters (its `Config` fields).

    Raises:
        ValueError: bad sparsity, pattern or distribution, a target the pattern cannot tile, NaN
            weights. The model is unchanged when anything is raised.
    """
    pruner: OneShotPruner = PRUNERS.get(method)(**config)
    pattern = parse_pattern(pattern)
    if pruner.needs_calibration and calibration is None:
        raise ValueError(f"method {method!r} needs calibration data: pass calibration=...")
    if isinstance(pattern, NM):
        sparsity = pattern.sparsity if sparsity is None else sparsity
    if distribution not in allocation.ALLOCATIONS:
        allocation.ALLOCATIONS.get(distribution)  # raises with "did you mean"
    if distribution != "uniform" and not isinstance(pattern, Unstructured):
        raise ValueError(
            f"distribution {distribution!r} applies to unstructured sparsity only, not {pattern}"
        )

    start = time.perf_counter()
    fqns = resolve_targets(model, targets, ignore)
    if not fqns:
        raise ValueError(f"{type(model).__name__} has no target weights to prune")
    weights = {fqn: getattr(module, name) for fqn, module, name in named_weights(model)}
    generator = torch.Generator().manual_seed(int(getattr(pruner.config, "seed", 0)))
    with torch.no_grad():
        scores = {fqn: pruner.scores(weights[fqn], fqn=fqn, generator=generator) for fqn in fqns}
    if isinstance(pattern, Unstructured):
        if distribution == "global":
            per_layer = allocation.global_(scores, sparsity)
        else:
            shapes = {fqn: tuple(weights[fqn].shape) for fqn in fqns}
            per_layer = allocation.ALLOCATIONS.get(distribution)(shapes, sparsity)
    else:
        per_layer = dict.fromkeys(fqns, sparsity)
    new_masks = {
        fqn: select(scores[fqn], pattern, per_layer[fqn], group=pruner.group, name=fqn) for fqn in fqns
    }
    attach(model, new_masks, patterns=dict.fromkeys(fqns, pattern))
    return PruneReport(
        method=method,
        config=asdict(pruner.config),
        pattern=str(pattern),
        distribution=distribution,
        target_sparsity=float(sparsity),
        seconds=time.perf_counter() - start,
        report=report(model),
    )
