"""N:M from scratch: dense weights trained through an N:M mask recomputed every step, by a
straight-through estimator. The shared base of `sr-ste` and `bdwp`.

Rule, for every target weight W (stored dense, `parametrizations.weight.original`):

    mask_t  = N:M of |W_t|: the n largest |w| of every m consecutive weights along the input dim
    forward : W~_t = mask_t * W_t                          (the effective weight; zeros elsewhere)
    backward: dL/dW_t := dL/dW~_t + lambda_w * (~mask_t) * W_t     (STE plus the sparse refinement)
    update  : the optimizer steps the dense W with that gradient, then the mask is recomputed

The mask is recomputed after every optimizer step (`step()`), which is when W changes, so the
forward pass always sees the N:M of the current weights, as in the reference code that recomputes
it inside every forward. Pruned weights keep their values and their optimizer state: they are
trained (through the straight-through gradient) and can come back; only the effective weight is
zero where the mask is off, and `finish` bakes the last mask in.

This departs from the base's mask convention (where a pruned weight's stored value and optimizer
state are zeroed at every update): these methods set the base's `trains_pruned` flag, so a mask
update swaps the mask buffers in place, and their `parametrization` hook attaches a
straight-through `Mask`. The refinement term is added to `original.grad` by an optimizer step
pre-hook, once per optimizer step.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from sparsetorch.masks import Mask, mask_of, stored
from sparsetorch.patterns import NM, parse_pattern, select
from sparsetorch.training.base import SparseTrainingMethod
from sparsetorch.training.config import TrainingConfig
from sparsetorch.training.ops import MaskUpdate


@dataclass(frozen=True)
class NMConfig(TrainingConfig):
    """N:M training from scratch.

    Attributes:
        pattern: the N:M pattern ("2:4": n kept of every m along the input dimension).
        sparsity: implied by the pattern (`1 - n/m`); None takes it from there, a number must match.
        decay: `lambda_w`, the weight of the sparse-refined term on the pruned weights (SR-STE's
            2e-4; 0 is the vanilla straight-through estimator).
    """

    sparsity: float | None = None
    pattern: str = "2:4"
    decay: float = 2e-4

    def __post_init__(self) -> None:
        pattern = parse_pattern(self.pattern)
        if not isinstance(pattern, NM):
            raise ValueError(
                f"pattern {str(pattern)!r} is incompatible: N:M training needs an 'N:M' pattern such as '2:4'"
            )
        if self.sparsity is None:
            object.__setattr__(self, "sparsity", pattern.sparsity)
        super().__post_init__()
        if not math.isclose(self.sparsity, pattern.sparsity, abs_tol=1e-9):
            raise ValueError(
                f"pattern {pattern} keeps {pattern.n} of every {pattern.m}, i.e. sparsity "
                f"{pattern.sparsity:g}; pass sparsity={pattern.sparsity:g} (or leave it out), not {self.sparsity:g}"
            )
        if self.distribution != "uniform":
            raise ValueError(f"pattern {pattern} fixes every layer's sparsity; pass distribution='uniform'")
        if isinstance(self.decay, bool) or not isinstance(self.decay, int | float) or not self.decay >= 0:
            raise ValueError(f"decay must be a non-negative number, got {self.decay!r}")


class _StraightThrough(torch.autograd.Function):
    """`where(mask, w, 0)` forward, identity backward: the gradient reaches every weight."""

    @staticmethod
    def forward(ctx: Any, weight: Tensor, mask: Tensor) -> Tensor:
        return torch.where(mask, weight, weight.new_zeros(()))

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return grad, None


class StraightThroughMask(Mask):
    """A `Mask` whose backward passes the gradient of the effective weight to the dense weight."""

    def forward(self, weight: Tensor) -> Tensor:
        return _StraightThrough.apply(weight, self.mask)


def nm_mask(weight: Tensor, pattern: NM) -> Tensor:
    """The n largest |w| of every m consecutive weights along dim 1 (ties keep the earlier)."""
    return select(weight.detach().abs(), pattern)


class NMFromScratch(SparseTrainingMethod):
    """Dense weights behind a straight-through N:M mask recomputed after every optimizer step."""

    Config = NMConfig
    patterns: ClassVar[tuple[type, ...]] = (NM,)
    distributions: ClassVar[tuple[str, ...]] = ("uniform",)
    trains_pruned: ClassVar[bool] = True

    def parametrization(self, fqn: str, mask: Tensor) -> Mask:
        """The straight-through parametrization attached to target `fqn` at `prepare`."""
        return StraightThroughMask(mask, self.pattern)

    def check(self, shapes: dict[str, torch.Size]) -> None:
        masked = [f for f, (module, name) in self.owners.items() if parametrize.is_parametrized(module, name)]
        if masked:
            raise ValueError(
                f"{self.name}: targets {masked[:3]} are already parametrized (masked?); N:M training "
                "from scratch needs plain dense weights"
            )

    def dense(self) -> dict[str, Tensor]:
        """`{fqn: the stored dense weight}` (a pruned weight keeps its value)."""
        return {f: stored(module, name).detach() for f, (module, name) in self.owners.items()}

    def masks_of(self, dense: dict[str, Tensor]) -> MaskUpdate:
        """N:M masks of `dense`, each layer at exactly `(m - n) / m` zeros."""
        pattern = self.pattern
        masks = {f: nm_mask(w, pattern) for f, w in dense.items()}
        pruned = {f: w.numel() * (pattern.m - pattern.n) // pattern.m for f, w in dense.items()}
        return MaskUpdate(masks, pruned, self.config.sparsity)

    def initial_masks(self, weights: dict[str, Tensor]) -> MaskUpdate:
        return self.masks_of(weights)  # no mask is attached yet: these are the dense weights

    def is_update_step(self, step: int) -> bool:
        return True

    def update_masks(
        self, step: int, weights: dict[str, Tensor], masks: dict[str, Tensor], grads: dict[str, Tensor]
    ) -> MaskUpdate:
        return self.masks_of(self.dense())  # `weights` are the masked ones: read the dense ones

    def prepare(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        targets: str | Iterable[str] | None = None,
        ignore: str | Iterable[str] | None = None,
        *,
        total_steps: int | None = None,
    ) -> nn.Module:
        """`SparseTrainingMethod.prepare`, plus the optimizer pre-step hook adding the refinement."""
        model = super().prepare(model, optimizer, targets, ignore, total_steps=total_steps)
        self.remove_at_finish(optimizer.register_step_pre_hook(self._refine))
        return model

    def _refine(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        """grad += lambda_w * (~mask) * W on every target, before the optimizer reads it."""
        decay = self.config.decay
        if decay == 0 or self.finished:
            return
        with torch.no_grad():
            for module, name in self.owners.values():
                original = module.parametrizations[name].original
                if original.grad is not None:
                    mask = mask_of(module, name).mask
                    original.grad.add_(torch.where(mask, original.new_zeros(()), original), alpha=decay)
