"""Pure mask operations shared by the training methods: top-k, drop-and-grow, random masks, budgets.

Every operation makes exact counts with the library's tie rule: among equal scores the earlier
element (in flattened order) is kept, as in `patterns.select`. Reference code breaks ties with
`>` thresholds (GraNet, which over-prunes on ties) or tiny random noise (RigL); exact counts are
what make "achieved sparsity equals the target" checkable after every update.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from sparsetorch import allocation, patterns
from sparsetorch.patterns import NM, Pattern, n_pruned, select


class MaskUpdate(NamedTuple):
    """New masks and what they must achieve, checked exactly by the base after they are attached.

    Attributes:
        masks: `{fqn: bool mask}` for every target (True = kept).
        pruned: `{fqn: number of zeros}` each mask must have.
        sparsity: the overall target over all targets (their zeros must total
            `n_pruned(total, sparsity)`).
    """

    masks: dict[str, Tensor]
    pruned: dict[str, int]
    sparsity: float


def keep_top_among(scores: Tensor, k: int, *, candidates: Tensor | None = None) -> Tensor:
    """Bool mask of the `k` highest `scores` of the whole tensor among `candidates` (all if None);
    ties keep the earlier.

    One global top-k: `patterns.keep_top` (which keeps the top k of every slice along a dim) over the
    flattened tensor, with non-candidates ranked last.

    Raises:
        ValueError: `k` negative or more than the candidates, or NaN scores.
    """
    flat = scores.detach().reshape(-1).float()
    allowed = None if candidates is None else candidates.reshape(-1)
    available = flat.numel() if allowed is None else int(allowed.sum())
    if not 0 <= k <= available:
        raise ValueError(f"cannot keep {k} of {available} candidates")
    if torch.isnan(flat).any():
        raise ValueError("scores contain NaN")
    if allowed is not None:
        flat = flat.masked_fill(~allowed, -math.inf)
    return patterns.keep_top(flat, k, dim=0).reshape(scores.shape)


def keep_top(scores: Tensor, k: int, candidates: Tensor | None = None) -> Tensor:
    """Deprecated: `keep_top_among` (renamed apart from the per-slice `patterns.keep_top`)."""
    warnings.warn(
        "sparsetorch.training.ops.keep_top is deprecated and will be removed in the next release: use "
        "sparsetorch.training.ops.keep_top_among (a global top-k; patterns.keep_top is per slice)",
        DeprecationWarning,
        stacklevel=2,
    )
    return keep_top_among(scores, k, candidates=candidates)


def drop_and_grow(mask: Tensor, drop_scores: Tensor, grow_scores: Tensor, n: int) -> Tensor:
    """Drop the `n` lowest-`drop_scores` active weights, then grow the `n` highest-`grow_scores` inactive.

    The inactive set for growth includes the weights just dropped (as in RigL, SET and GraNet), so
    a dropped weight can come straight back; the number of active weights is unchanged.

    Args:
        mask: bool mask (True = active).
        drop_scores: importance of the active weights (e.g. |w|); higher is kept.
        grow_scores: importance of the inactive weights for growth (e.g. |dL/dW|, random).
        n: how many to drop and grow, `0 <= n <= active`.
    """
    active = int(mask.sum())
    if not 0 <= n <= active:
        raise ValueError(f"cannot drop {n} of {active} active weights")
    kept = keep_top_among(drop_scores, active - n, candidates=mask)
    grown = keep_top_among(grow_scores, n, candidates=~kept)
    return kept | grown


def allocate(distribution: str, shapes: Mapping[str, Sequence[int]], sparsity: float) -> dict[str, int]:
    """Per-layer zero counts for a shape-only allocation ("uniform" or "erk"), exact in total."""
    if distribution not in ("uniform", "erk"):
        raise ValueError(f"distribution must be 'uniform' or 'erk' here, got {distribution!r}")
    per_layer = allocation.ALLOCATIONS.get(distribution)(shapes, sparsity)
    return {f: n_pruned(math.prod(shapes[f]), s) for f, s in per_layer.items()}


def random_masks(
    shapes: Mapping[str, Sequence[int]],
    pruned: Mapping[str, int],
    *,
    generator: torch.Generator,
    pattern: Pattern | None = None,
    device: Mapping[str, torch.device] | None = None,
) -> dict[str, Tensor]:
    """Uniformly random masks with exactly `pruned[fqn]` zeros each (N:M: random within each group).

    Scores are drawn on the CPU from `generator`, layer by layer in `shapes` order, so the same
    seed gives the same masks on any device.
    """
    out = {}
    for fqn, shape in shapes.items():
        scores = torch.rand(tuple(shape), generator=generator)
        if isinstance(pattern, NM):
            mask = select(scores, pattern, name=fqn)
        else:
            mask = keep_top_among(scores, math.prod(shape) - pruned[fqn])
        out[fqn] = mask.to(device[fqn]) if device else mask
    return out


def magnitude_scores(weight: Tensor, mask: Tensor) -> Tensor:
    """|w| on active weights and -1 on inactive ones, so pruning by it never revives a weight."""
    return weight.detach().abs().float().masked_fill(~mask, -1.0)


def reset_optimizer_state(optimizer: torch.optim.Optimizer, param: Tensor, where: Tensor) -> None:
    """Zero the per-element optimizer state of `param` at the positions `where`.

    Every state tensor of the parameter's shape is reset: SGD's `momentum_buffer`, Adam/AdamW's
    `exp_avg`, `exp_avg_sq` and (amsgrad) `max_exp_avg_sq`, and the like of other optimizers.
    Scalar state (Adam's `step`) is shared by the whole tensor and left alone.
    """
    for value in optimizer.state.get(param, {}).values():
        if isinstance(value, Tensor) and value.shape == param.shape:
            value.masked_fill_(where, 0)


def keep_highest(scores: Mapping[str, Tensor], sparsity: float, distribution: str) -> MaskUpdate:
    """Masks that keep the highest `scores` so that the targets reach `sparsity` exactly.

    Args:
        scores: `{fqn: score}`, higher is kept; every score finite.
        sparsity: overall fraction of zeros.
        distribution: "global" (one threshold over all layers; ties are broken by layer order,
            then position) or "uniform" / "erk" (per-layer budgets, the highest scores per layer).

    Raises:
        ValueError: NaN scores or an unknown distribution.
    """
    shapes = {f: tuple(s.shape) for f, s in scores.items()}
    if distribution == "global":
        per_layer = allocation.global_budget(scores, sparsity)
        pruned = {f: n_pruned(math.prod(shapes[f]), s) for f, s in per_layer.items()}
    else:
        pruned = allocate(distribution, shapes, sparsity)
    masks = {f: keep_top_among(scores[f], math.prod(shapes[f]) - pruned[f]) for f in scores}
    return MaskUpdate(masks, pruned, sparsity)


def magnitude_prune(
    weights: Mapping[str, Tensor], masks: Mapping[str, Tensor], sparsity: float, distribution: str
) -> MaskUpdate:
    """Keep the largest |w| of the active weights so that the targets reach `sparsity`.

    Layer budgets come from `distribution`: "uniform" or "erk" on the shapes, or "global" (one
    magnitude threshold over all layers). Inactive weights score -1, so they are pruned first and
    a schedule of non-decreasing sparsity never revives one.
    """
    return keep_highest({f: magnitude_scores(weights[f], masks[f]) for f in weights}, sparsity, distribution)
