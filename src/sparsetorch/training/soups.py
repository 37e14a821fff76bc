"""Sparse Model Soups (SMS): IMP prune-retrain cycles whose retraining runs share one mask and are
averaged, each cycle starting from the previous soup.

Paper key `sparse-model-soups`: Zimmer, Spiegel and Pokutta 2023, "Sparse Model Soups: A Recipe for
Improved Pruning via Model Averaging" (reference code ZIB-IOL/SMS, `strategies/ensembleStrategies.py`).

Rule, from a (pre)trained model theta_0 (the soup of cycle 0), for cycles c = 1 .. C:

    s_c      = 1 - (1 - s)**(c / C)                     (the same fraction of the remaining per cycle)
    mask_c   = the largest |w| of the active weights of soup_{c-1} at s_c (global by default)
    theta_ci = retrain(mask_c * soup_{c-1}, variation i)   for i = 1 .. m  (the "ingredients")
    soup_c   = (1/m) sum_i theta_ci                          (the uniform soup)

The ingredients share `mask_c` by construction (their pruned weights stay exactly zero), so the
soup keeps the sparsity. Variation i retrains with its own seed (batch order and any randomness of
the model), the variation of the paper's main experiments. With `ingredients=1` this is plain IMP
(prune, then retrain from the pruned weights, no rewinding).

This is a driver, not a registered training method: a soup needs m models trained side by side, which
the one-model lifecycle of `SparseTrainingMethod` (`prepare`/`step`/`finish`) cannot express. Every
retraining run is a `sparsetorch.training.fit` call on a copy of the soup with the masks attached.

Deviations: only the uniform soup (the paper's greedy soup, which adds an ingredient only if a held-
out accuracy does not drop, needs a validation split: average `result.ingredients` yourself); the
variation is the seed (the paper also varies weight decay and other settings); batch-norm statistics
are recomputed on the training data after averaging (the reference's recalibration) only for models
with batch norm; exact counts, the final classifier dense by default.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from sparsetorch.masks import attach, get_masks, named_weights, resolve_targets
from sparsetorch.patterns import n_pruned
from sparsetorch.training.fit import Data, evaluate, fit, tensors
from sparsetorch.training.ops import magnitude_prune


@dataclass
class SoupResult:
    """What `sparse_model_soups` returns.

    Attributes:
        model: the final soup (the input model, masks attached).
        sparsities: the sparsity of each cycle.
        soup_accuracy: the soup's test accuracy after each cycle (with `test`).
        ingredient_accuracy: the test accuracies of each cycle's ingredients (with `test`).
        ingredients: the last cycle's ingredient models.
    """

    model: nn.Module
    sparsities: list[float] = field(default_factory=list)
    soup_accuracy: list[float] = field(default_factory=list)
    ingredient_accuracy: list[list[float]] = field(default_factory=list)
    ingredients: list[nn.Module] = field(default_factory=list)


def cycle_sparsity(c: int, *, sparsity: float, cycles: int) -> float:
    """`s_c = 1 - (1 - s)**(c / C)`; the last cycle reaches `sparsity` exactly."""
    if not 1 <= c <= cycles:
        raise ValueError(f"cycle must be in [1, {cycles}], got {c}")
    return sparsity if c == cycles else 1.0 - (1.0 - sparsity) ** (c / cycles)


def average(models: list[nn.Module]) -> dict[str, Tensor]:
    """The mean of the floating-point entries of the models' state dicts; the other entries (masks,
    counters) must agree and are taken from the first.

    Raises:
        ValueError: the models disagree on a mask or a non-float entry.
    """
    states = [m.state_dict() for m in models]
    out = {}
    for key, first in states[0].items():
        if first.is_floating_point():
            out[key] = torch.stack([s[key] for s in states]).mean(0)
        else:
            if any(not torch.equal(s[key], first) for s in states[1:]):
                raise ValueError(f"the ingredients disagree on {key!r}; a soup needs one shared mask")
            out[key] = first.clone()
    return out


def _recalibrate(model: nn.Module, x: Tensor, *, batch_size: int) -> None:
    """Recompute batch-norm running statistics on `x` (cumulative average), in place."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative moving average over the passes
    was = model.training
    model.train()
    device = next(model.parameters()).device
    with torch.no_grad():
        for batch in x.split(batch_size):
            model(batch.to(device))
    model.train(was)
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum


def sparse_model_soups(
    model: nn.Module,
    data: Data,
    *,
    sparsity: float = 0.9,
    cycles: int = 3,
    ingredients: int = 3,
    epochs: int = 1,
    distribution: str = "global",
    targets: str | Iterable[str] | None = None,
    ignore: str | Iterable[str] | None = None,
    test: Data | None = None,
    seed: int = 0,
    **fit_options: Any,
) -> SoupResult:
    """Prune `model` to `sparsity` in `cycles` prune-retrain-average cycles (see the module docstring).

    Args:
        model: the (pre)trained model; pruned and overwritten with the soups in place.
        data: training data for the retraining runs, as `fit` takes it.
        sparsity: final fraction of zeros over the targets.
        cycles: prune-retrain cycles `C`.
        ingredients: retraining runs averaged per cycle `m` (1: plain IMP).
        epochs: retraining epochs of each run.
        distribution: "global" (one magnitude threshold), "uniform" or "erk".
        targets, ignore: FQN globs of the pruned weights (default: Linear/Conv but the classifier).
        test: data to measure the soups and ingredients on.
        seed: ingredient i of cycle c retrains with seed `seed + 1000 * c + i`.
        **fit_options: passed to every `fit` call (`lr`, `optimizer`, `batch_size` ...).

    Raises:
        ValueError: bad counts, or a sparsity outside [0, 1).
        RuntimeError: a soup that misses its sparsity (cannot happen with one shared mask).
    """
    for label, value in (("cycles", cycles), ("ingredients", ingredients), ("epochs", epochs)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{label} must be a positive integer, got {value!r}")
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity!r}")
    x, _ = tensors(data, "data")
    fqns = resolve_targets(model, targets, ignore)
    if not fqns:
        raise ValueError(f"no target weights in {type(model).__name__}")
    lookup = {f: (module, name) for f, module, name in named_weights(model)}
    result = SoupResult(model)
    fit_options = {"progress": False, **fit_options}
    for c in range(1, cycles + 1):
        level = cycle_sparsity(c, sparsity=sparsity, cycles=cycles)
        current = get_masks(model)
        with torch.no_grad():
            weights = {f: getattr(*lookup[f]).detach() for f in fqns}
        active = {f: current.get(f, torch.ones_like(w, dtype=torch.bool)) for f, w in weights.items()}
        update = magnitude_prune(weights, active, level, distribution)
        attach(model, update.masks)
        runs = []
        for i in range(ingredients):
            candidate = copy.deepcopy(model)
            fit(candidate, None, data, epochs=epochs, seed=seed + 1000 * c + i, **fit_options)
            runs.append(candidate)
        model.load_state_dict(average(runs))
        _recalibrate(model, x, batch_size=fit_options.get("batch_size", 128))
        total = sum(m.numel() for m in get_masks(model).values())
        zeros = sum(int((getattr(*lookup[f]) == 0).sum()) for f in fqns)
        if zeros < n_pruned(total, level):
            raise RuntimeError(
                f"soup of cycle {c}: {zeros} zeros, sparsity {level:g} needs {n_pruned(total, level)}"
            )
        result.sparsities.append(level)
        result.ingredients = runs
        if test is not None:
            result.soup_accuracy.append(evaluate(model, test)["accuracy"])
            result.ingredient_accuracy.append([evaluate(r, test)["accuracy"] for r in runs])
    return result
