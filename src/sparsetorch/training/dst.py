"""Dynamic sparse training at constant sparsity: the drop-and-grow loop shared by SET and RigL.

Rule, per target layer `l` at an update step `t` (every `update_every` optimizer steps from
`start` to `end`):

    n_l   = floor(alpha_t * |active_l|)               # alpha_t: the drop fraction at step t
    drop  : the n_l active weights of smallest |w|
    grow  : the n_l inactive weights (just-dropped ones included) of highest grow score
    alpha_t = alpha                                                   (constant)
            = alpha * (1 + cos(pi * (t - start) / (end - start))) / 2  (cosine, RigL)

Each layer keeps its number of active weights, so the sparsity stays at the initial allocation
(random masks at `sparsity` under "uniform" or "erk"). Grown weights start at 0 with zeroed
optimizer state (see `base`). Subclasses define only the grow score.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from sparsetorch.training.base import SparseTrainingMethod
from sparsetorch.training.config import ScheduledConfig
from sparsetorch.training.ops import MaskUpdate, allocate, drop_and_grow, magnitude_scores, random_masks
from sparsetorch.training.schedules import cosine_decay


@dataclass(frozen=True)
class DynamicSparseConfig(ScheduledConfig):
    """Drop-and-grow hyperparameters.

    Attributes:
        drop_fraction: fraction `alpha` of each layer's active weights dropped (and regrown) at an
            update, in (0, 1).
        drop_fraction_anneal: "constant" or "cosine" (decayed to 0 at `end`).
    """

    distribution: str = "erk"
    drop_fraction: float = 0.3
    drop_fraction_anneal: str = "constant"

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.drop_fraction, bool) or not isinstance(self.drop_fraction, int | float):
            raise ValueError(f"drop_fraction must be a number in (0, 1), got {self.drop_fraction!r}")
        if not 0.0 < self.drop_fraction < 1.0:
            raise ValueError(f"drop_fraction must be in (0, 1), got {self.drop_fraction!r}")
        if self.drop_fraction_anneal not in ("constant", "cosine"):
            raise ValueError(
                f"drop_fraction_anneal must be 'constant' or 'cosine', got {self.drop_fraction_anneal!r}"
            )


class DynamicSparseMethod(SparseTrainingMethod):
    """Random sparse init, then drop by magnitude and grow by `grow_scores` at every update."""

    Config = DynamicSparseConfig
    distributions: ClassVar[tuple[str, ...]] = ("uniform", "erk")

    def grow_scores(self, fqn: str, weight: Tensor, grad: Tensor | None) -> Tensor:
        """Score of each weight for growth (only inactive ones are read); higher grows first."""
        raise NotImplementedError

    def check(self, shapes: dict[str, torch.Size]) -> None:
        if self.config.drop_fraction_anneal == "cosine" and self.end is None:
            if self.total_steps is None:
                raise ValueError(
                    f"{self.name}: a cosine drop-fraction anneal needs an end: pass end= or "
                    "prepare(..., total_steps=N)"
                )
            self.end = self.total_steps

    def drop_fraction(self, step: int) -> float:
        """`alpha_t`, the fraction of active weights dropped at update step `step`."""
        config = self.config
        if config.drop_fraction_anneal == "constant":
            return config.drop_fraction
        return cosine_decay(step, initial=config.drop_fraction, start=self.start, end=self.end)

    def initial_masks(self, weights: dict[str, Tensor]) -> MaskUpdate:
        shapes = {f: tuple(w.shape) for f, w in weights.items()}
        pruned = allocate(self.config.distribution, shapes, self.config.sparsity)
        devices = {f: w.device for f, w in weights.items()}
        masks = random_masks(shapes, pruned, generator=self.generator, device=devices)
        return MaskUpdate(masks, pruned, self.config.sparsity)

    def is_update_step(self, step: int) -> bool:
        if step <= self.start or (self.end is not None and step > self.end):
            return False
        return (step - self.start) % self.config.update_every == 0

    def update_masks(
        self, step: int, weights: dict[str, Tensor], masks: dict[str, Tensor], grads: dict[str, Tensor]
    ) -> MaskUpdate:
        fraction = self.drop_fraction(step)
        new, pruned = {}, {}
        for f, mask in masks.items():
            n = math.floor(fraction * int(mask.sum()))
            scores = self.grow_scores(f, weights[f], grads.get(f))
            new[f] = drop_and_grow(mask, magnitude_scores(weights[f], mask), scores, n)
            pruned[f] = mask.numel() - int(mask.sum())
        return MaskUpdate(new, pruned, self.config.sparsity)
