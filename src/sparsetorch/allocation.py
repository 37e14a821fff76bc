"""Layer-wise sparsity budgets: uniform, ERK and global, with an exact overall sparsity.

Each function returns `{fqn: sparsity}` such that the number of pruned weights, counted as
`patterns.n_pruned(numel, sparsity)` per layer (what `select` prunes), sums exactly to
`round(sparsity * total)` over the targets. Per-layer counts are integers chosen by the largest
remainder method, so rounding never drifts the total.

- `uniform`: every layer at the same sparsity.
- `erk`: Erdős–Rényi-Kernel (Evci et al. 2020, "Rigging the Lottery", RigL's
  `get_sparsities`): the density of a layer is `eps * sum(shape) / prod(shape)`, with one `eps`
  for the whole model solved so the total matches; a layer whose density would exceed 1 is kept
  dense and `eps` is solved again over the rest. For a Linear layer this is Erdős–Rényi
  `(n_in + n_out) / (n_in * n_out)`; a Conv layer adds its kernel sizes.
- `global_budget` (registered as "global"): one threshold across all layers on given scores (the highest scores anywhere are
  kept; ties broken by layer order, then position).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from sparsetorch.patterns import keep_top, n_pruned
from sparsetorch.registry import Registry

Shapes = Mapping[str, Sequence[int]]


def _check(sparsity: float, shapes: Shapes) -> None:
    if isinstance(sparsity, bool) or not isinstance(sparsity, int | float) or not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be a number in [0, 1), got {sparsity!r}")
    if not shapes:
        raise ValueError("no target layers to allocate sparsity over")


def _numel(shape: Sequence[int]) -> int:
    return math.prod(shape)


def _counts_to_sparsity(counts: Mapping[str, int], shapes: Shapes) -> dict[str, float]:
    out = {fqn: counts[fqn] / _numel(shapes[fqn]) for fqn in shapes}
    # A float ratio must map back to the same integer count inside `select`.
    assert all(n_pruned(_numel(shapes[f]), s) == counts[f] for f, s in out.items())
    return out


def _apportion(target: int, ideal: Mapping[str, float], caps: Mapping[str, int]) -> dict[str, int]:
    """Integer counts near `ideal`, each in [0, cap], summing to `target` (largest remainder)."""
    counts = {k: min(caps[k], max(0, math.floor(v))) for k, v in ideal.items()}
    left = target - sum(counts.values())
    order = sorted(ideal, key=lambda k: (-(ideal[k] - math.floor(ideal[k])), k))
    while left > 0:
        progressed = False
        for k in order:
            if left and counts[k] < caps[k]:
                counts[k] += 1
                left -= 1
                progressed = True
        if not progressed:
            raise ValueError(f"cannot prune {target} weights: the layers hold only {sum(caps.values())}")
    while left < 0:
        for k in reversed(order):
            if left and counts[k] > 0:
                counts[k] -= 1
                left += 1
    return counts


def uniform(shapes: Shapes, sparsity: float) -> dict[str, float]:
    """The same sparsity in every layer, adjusted by whole weights so the total is exact."""
    _check(sparsity, shapes)
    total = sum(_numel(s) for s in shapes.values())
    ideal = {f: sparsity * _numel(s) for f, s in shapes.items()}
    caps = {f: _numel(s) for f, s in shapes.items()}
    return _counts_to_sparsity(_apportion(n_pruned(total, sparsity), ideal, caps), shapes)


def erk(shapes: Shapes, sparsity: float, *, power_scale: float = 1.0) -> dict[str, float]:
    """Erdős–Rényi-Kernel densities (RigL), dense fallback for layers that would exceed density 1.

    Args:
        shapes: `{fqn: weight shape}` of the target layers.
        sparsity: overall fraction of zeros over the targets.
        power_scale: exponent on the ER score (1.0 in the paper; 0.0 gives uniform).
    """
    _check(sparsity, shapes)
    numel = {f: _numel(s) for f, s in shapes.items()}
    total = sum(numel.values())
    keep_total = total - n_pruned(total, sparsity)
    raw = {f: (sum(s) / numel[f]) ** power_scale for f, s in shapes.items()}
    dense: set[str] = set()
    if keep_total == total:
        return dict.fromkeys(shapes, 0.0)
    while True:
        # eps * sum(raw_l * n_l) over sparse layers = kept budget left after dense layers.
        budget = keep_total - sum(numel[f] for f in dense)
        sparse = [f for f in shapes if f not in dense]
        eps = budget / sum(raw[f] * numel[f] for f in sparse)
        over = [f for f in sparse if eps * raw[f] > 1.0]
        if not over:
            break
        dense.update(over)
    ideal = {f: 0.0 if f in dense else numel[f] * (1.0 - eps * raw[f]) for f in shapes}
    caps = {f: 0 if f in dense else numel[f] for f in shapes}
    return _counts_to_sparsity(_apportion(total - keep_total, ideal, caps), shapes)


def global_budget(scores: Mapping[str, Tensor], sparsity: float) -> dict[str, float]:
    """Per-layer sparsities that keep the highest scores across all layers at once."""
    shapes = {f: tuple(s.shape) for f, s in scores.items()}
    _check(sparsity, shapes)
    flat = torch.cat([s.detach().float().reshape(-1) for s in scores.values()])
    if torch.isnan(flat).any():
        raise ValueError("global allocation: scores contain NaN")
    # On ties the earlier element (by layer order, then position) is kept, as in `select`.
    dropped = ~keep_top(flat, flat.numel() - n_pruned(flat.numel(), sparsity), dim=0)
    counts, start = {}, 0
    for fqn, shape in shapes.items():
        n = _numel(shape)
        counts[fqn] = int(dropped[start : start + n].sum())
        start += n
    return _counts_to_sparsity(counts, shapes)


def global_(scores: Mapping[str, Tensor], sparsity: float) -> dict[str, float]:
    """Deprecated name of `global_budget` (it was named around the keyword `global`)."""
    warnings.warn(
        "sparsetorch.allocation.global_ is deprecated; use allocation.global_budget",
        DeprecationWarning,
        stacklevel=2,
    )
    return global_budget(scores, sparsity)


# Allocations that need only shapes; `global` needs scores and is chosen by name in `prune`.
ALLOCATIONS: Registry = Registry("sparsity allocation")
ALLOCATIONS.register("uniform", uniform)
ALLOCATIONS.register("erk", erk)
ALLOCATIONS.register("global", global_budget)
