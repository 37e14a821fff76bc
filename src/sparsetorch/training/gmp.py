"""GMP: gradual magnitude pruning on a cubic sparsity schedule, dense to sparse.

Zhu and Gupta 2017, "To prune, or not to prune: exploring the efficacy of pruning for model
compression" (no key in the papers catalogue; the baseline of GraNet and RigL).

Rule, at every `update_every`-th optimizer step `t` with `start < t <= end` (and at `end`):

    s_t = s_f + (s_i - s_f) * (1 - (t - start) / (end - start))**3
    mask_l = the largest |w| of layer l's active weights, keeping (1 - s_t,l) of the layer

with the layer sparsities `s_t,l` from `distribution` at overall sparsity `s_t`: "uniform" (every
layer at `s_t`, Zhu & Gupta), "global" (one threshold over all layers, GraNet's GMP baseline) or
"erk". Pruning is monotone: a pruned weight never returns. Masks are fixed after `end`.

Defaults: `initial_sparsity=0`, `sparsity=0.9`, `update_every=100`, `start=0`, `end=0.75` of
training (so `prepare` needs `total_steps`), "uniform". Zhu & Gupta leave `t0`, `n` and `Δt` to
the user; these follow the RigL paper's convention of stopping mask changes at 75% of training.

Deviations: an extra update at `end` when `end - start` is not a multiple of `update_every`, so
the final sparsity is always reached; exact counts (ties keep the earlier weight).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from sparsetorch.training.base import TRAINERS, SparseTrainingMethod
from sparsetorch.training.config import ScheduledConfig
from sparsetorch.training.ops import MaskUpdate, magnitude_prune
from sparsetorch.training.schedules import cubic


@dataclass(frozen=True)
class GMPConfig(ScheduledConfig):
    """Gradual magnitude pruning.

    Attributes:
        initial_sparsity: `s_i`, applied by magnitude at `prepare`; `sparsity` is `s_f`.
    """

    initial_sparsity: float = 0.0
    update_every: int = 100
    start: int | float = 0
    end: int | float | None = 0.75

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.initial_sparsity, bool) or not isinstance(self.initial_sparsity, int | float):
            raise ValueError(f"initial_sparsity must be a number, got {self.initial_sparsity!r}")
        if not 0.0 <= self.initial_sparsity <= self.sparsity:
            raise ValueError(
                f"initial_sparsity must be in [0, sparsity={self.sparsity}], got {self.initial_sparsity!r}"
            )
        if self.end is None:
            raise ValueError("a gradual pruning schedule needs an end (a step or a fraction of training)")


class GradualPruning(SparseTrainingMethod):
    """Shared by GMP and GraNet: the cubic schedule and its update steps."""

    distributions: ClassVar[tuple[str, ...]] = ("uniform", "erk", "global")

    def target_sparsity(self, step: int) -> float:
        """`s_t` of the cubic schedule."""
        config = self.config
        return cubic(
            step, initial=config.initial_sparsity, final=config.sparsity, start=self.start, end=self.end
        )

    def is_pruning_step(self, step: int) -> bool:
        """A step of the pruning phase: every `update_every` steps after `start`, and `end`."""
        if step <= self.start or step > self.end:
            return False
        return (step - self.start) % self.config.update_every == 0 or step == self.end


@TRAINERS.register("gmp")
class GMP(GradualPruning):
    """Magnitude pruning to the cubic schedule's sparsity at each update step."""

    name = "gmp"
    Config = GMPConfig

    def initial_masks(self, weights: dict[str, Tensor]) -> MaskUpdate:
        ones = {f: torch.ones_like(w, dtype=torch.bool) for f, w in weights.items()}
        return magnitude_prune(weights, ones, self.config.initial_sparsity, self.config.distribution)

    def is_update_step(self, step: int) -> bool:
        return self.is_pruning_step(step)

    def update_masks(
        self, step: int, weights: dict[str, Tensor], masks: dict[str, Tensor], grads: dict[str, Tensor]
    ) -> MaskUpdate:
        return magnitude_prune(weights, masks, self.target_sparsity(step), self.config.distribution)
