"""GraNet: gradual magnitude pruning with zero-cost neuroregeneration.

Paper key `granet`: Liu, Chen, Chen, Atashgahi, Yin, Kou, Shen, Pechenizkiy, Wang and Mocanu 2021,
"Sparse Training via Boosting Pruning Plasticity with Neuroregeneration" (reference code
VITA-Group/GraNet, `CIFAR/sparselearning/core.py`, `Masking.step`, `pruning`, `truncate_weights`).

Rule, at every `update_every`-th optimizer step `t > start`:

1. gradual pruning (while `t <= end`), GMP with a global magnitude threshold:
       s_t = s_f + (s_i - s_f) * (1 - (t - start) / (end - start))**3
       keep the largest |w| of the active weights over all layers, to overall sparsity s_t;
2. zero-cost neuroregeneration, per layer, at the sparsity just reached:
       r_t = r_min + (r - r_min) * (1 + cos(pi * t / T)) / 2          (T: total training steps)
       n_l = ceil(r_t * |active_l|)
       drop the n_l active weights of smallest |w|, grow the n_l inactive weights of largest
       |dL/d(w * m)| (just-pruned and just-dropped ones are eligible), new weights at 0.

Regeneration moves weights within a layer, so it costs no sparsity ("zero-cost"); grown weights
start at 0 with zeroed optimizer state (the reference zeroes SGD momentum only).

Defaults (reference CIFAR recipe, ResNet-50 / VGG-19): `initial_sparsity=0` ("GraNet (s_i = 0)",
dense to sparse; use 0.5 for the sparse-to-sparse "s_i = 0.5", whose initial masks are random
with ERK budgets, `init_distribution`), `sparsity=0.9`, `distribution="global"`,
`update_every=1000`, `start=0`, `end=0.6875` (110 of 160 epochs), `regeneration_rate=0.5`
decayed by a cosine over the whole training to `regeneration_floor=0.005`. `prepare` needs
`total_steps`.

As in the reference code, regeneration goes on at every update step after the pruning phase
ends (with its decayed rate), until the end of training. Deviations: exact counts instead of the
reference's `>` thresholds (which prune extra weights on ties and let growth pick active weights
whose masked gradient is 0, so density drifts); an extra pruning step at `end` when it is not a
multiple of `update_every`; the "uniform" variant is plain uniform, without the reference's
hard-coded 20% density for layers named "classifier" (default targets keep the classifier dense).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from sparsetorch.training.base import TRAINERS
from sparsetorch.training.gmp import GMPConfig, GradualPruning
from sparsetorch.training.ops import (
    MaskUpdate,
    allocate,
    drop_and_grow,
    magnitude_prune,
    magnitude_scores,
    random_masks,
)
from sparsetorch.training.schedules import cosine_decay


@dataclass(frozen=True)
class GraNetConfig(GMPConfig):
    """GraNet's hyperparameters.

    Attributes:
        init_distribution: budgets of the random initial masks when `initial_sparsity > 0`.
        regeneration_rate: initial fraction `r` of each layer's active weights regenerated.
        regeneration_floor: the value `r_min` the cosine decays to at the end of training.
    """

    distribution: str = "global"
    init_distribution: str = "erk"
    update_every: int = 1000
    end: int | float | None = 0.6875
    regeneration_rate: float = 0.5
    regeneration_floor: float = 0.005

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.init_distribution not in ("uniform", "erk"):
            raise ValueError(f"init_distribution must be 'uniform' or 'erk', got {self.init_distribution!r}")
        for label in ("regeneration_rate", "regeneration_floor"):
            value = getattr(self, label)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value < 1.0:
                raise ValueError(f"{label} must be a number in [0, 1), got {value!r}")
        if self.regeneration_floor > self.regeneration_rate:
            raise ValueError(
                f"regeneration_floor ({self.regeneration_floor}) exceeds regeneration_rate "
                f"({self.regeneration_rate})"
            )


@TRAINERS.register("granet")
class GraNet(GradualPruning):
    """Global gradual magnitude pruning, then gradient-based regeneration at each update step."""

    name = "granet"
    paper = "granet"
    Config = GraNetConfig
    grows = True

    def check(self, shapes: dict[str, torch.Size]) -> None:
        if self.total_steps is None:
            raise ValueError(
                f"{self.name}: the regeneration rate decays over the whole training; "
                "pass prepare(..., total_steps=N)"
            )

    def regeneration_rate(self, step: int) -> float:
        """`r_t`, the fraction of each layer's active weights regenerated at step `step`."""
        config = self.config
        return cosine_decay(
            step, initial=config.regeneration_rate, end=self.total_steps, minimum=config.regeneration_floor
        )

    def initial_masks(self, weights: dict[str, Tensor]) -> MaskUpdate:
        shapes = {f: tuple(w.shape) for f, w in weights.items()}
        initial = self.config.initial_sparsity
        pruned = allocate(self.config.init_distribution, shapes, initial)
        devices = {f: w.device for f, w in weights.items()}
        return MaskUpdate(
            random_masks(shapes, pruned, generator=self.generator, device=devices), pruned, initial
        )

    def is_update_step(self, step: int) -> bool:
        return self.is_pruning_step(step) or (
            step > self.start and (step - self.start) % self.config.update_every == 0
        )

    def update_masks(
        self, step: int, weights: dict[str, Tensor], masks: dict[str, Tensor], grads: dict[str, Tensor]
    ) -> MaskUpdate:
        if self.is_pruning_step(step):
            pruned = magnitude_prune(weights, masks, self.target_sparsity(step), self.config.distribution)
        else:
            zeros = {f: m.numel() - int(m.sum()) for f, m in masks.items()}
            pruned = MaskUpdate(masks, zeros, self.config.sparsity)
        rate = self.regeneration_rate(step)
        new = {}
        for f, mask in pruned.masks.items():
            active = int(mask.sum())
            n = min(active, math.ceil(rate * active))
            new[f] = drop_and_grow(mask, magnitude_scores(weights[f], mask), grads[f].abs(), n)
        return MaskUpdate(new, pruned.pruned, pruned.sparsity)
