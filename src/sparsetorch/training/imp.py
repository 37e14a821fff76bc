"""IMP: iterative magnitude pruning with weight rewinding (lottery ticket rewinding), in one run.

Frankle and Carbin 2019, "The Lottery Ticket Hypothesis: Finding Sparse, Trainable Neural
Networks", with the rewinding of Frankle, Dziugaite, Roy and Carbin 2020, "Linear Mode
Connectivity and the Lottery Ticket Hypothesis" (no key in the papers catalogue; the IMP of
`sparse-model-soups` and the LTR baseline of `cts`; reference code facebookresearch/open_lth).

Rule, with p = `prune_fraction`, final sparsity s and R = ceil(log(1 - s) / log(1 - p)) rounds:

    train phase 0 for L steps, remembering every weight (and buffer) at step k (`rewind`)
    for r = 1 .. R:
        s_r  = 1 - (1 - p)**r   (s for r = R)
        mask = the largest |w| of the active weights at sparsity s_r    (prune p of the remaining)
        rewind every parameter and buffer to its step-k value, masked; reset the optimizer state
        train phase r: L - k steps (resuming "from step k")

All of it runs inside one training run of `total_steps = L + R * (L - k)` optimizer steps:
`prepare(..., total_steps=T)` solves for L, and `step()` prunes and rewinds at the phase ends
(`prune_steps`). This is why IMP is a method here and not a driver: it fits the lifecycle (one
`prepare`, a `step` per optimizer step, `fit`, DDP, checkpoints through `state_dict`), at the price
of the learning-rate schedule (see the deviations).

Defaults: `sparsity=0.9`, `prune_fraction=0.2` (Frankle & Carbin's 20% per round), global
magnitude (`distribution="global"`, as Frankle et al. 2020 for deep networks; "uniform" and "erk"
give per-layer budgets), `rewind=0.05` (5% of a phase: an early iteration, as rewinding needs;
`rewind=0` is the original reset to initialization).

Deviations:
- The learning-rate schedule is the caller's. `lr_position` gives open_lth's restart (phase r runs
  the schedule's steps k .. L again) and `sparsetorch.training.fit` follows it; a hand-written
  loop must do the same (or use a constant rate), else later phases train at the annealed rate.
- The optimizer state is reset at every rewind (a fresh optimizer, as open_lth builds one per
  level); the step-k optimizer state is not restored.
- Exact counts (ties keep the earlier weight); the last round prunes to exactly `sparsity`; the
  final classifier stays dense by default (Frankle & Carbin prune the output layer at half the
  rate; pass `targets=` to include it).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from sparsetorch.masks import Mask
from sparsetorch.training.base import TRAINERS, SparseTrainingMethod
from sparsetorch.training.config import TrainingConfig
from sparsetorch.training.ops import MaskUpdate, magnitude_prune
from sparsetorch.training.schedules import check_boundary


@dataclass(frozen=True)
class IMPConfig(TrainingConfig):
    """Iterative magnitude pruning with rewinding.

    Attributes:
        prune_fraction: `p`, the fraction of the remaining weights pruned per round, in (0, 1).
        rewind: the step `k` weights are rewound to: an int step, or a float fraction of a phase.
    """

    distribution: str = "global"
    prune_fraction: float = 0.2
    rewind: int | float = 0.05

    def __post_init__(self) -> None:
        super().__post_init__()
        p = self.prune_fraction
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 < p < 1.0:
            raise ValueError(f"prune_fraction must be a number in (0, 1), got {p!r}")
        check_boundary(self.rewind, "rewind", name=type(self).__name__)
        if isinstance(self.rewind, float) and self.rewind >= 1.0:
            raise ValueError(f"rewind={self.rewind} as a fraction of a phase must be below 1")


def rounds(sparsity: float, prune_fraction: float) -> int:
    """R: the rounds of pruning `prune_fraction` of the remaining weights that reach `sparsity`."""
    if sparsity == 0:
        return 0
    return math.ceil(math.log(1.0 - sparsity) / math.log(1.0 - prune_fraction) - 1e-9)


def round_sparsity(r: int, *, sparsity: float, prune_fraction: float) -> float:
    """`s_r = 1 - (1 - p)**r` after round r (1-based); the last round reaches `sparsity` exactly."""
    total = rounds(sparsity, prune_fraction)
    if not 1 <= r <= total:
        raise ValueError(f"round must be in [1, {total}], got {r}")
    return sparsity if r == total else 1.0 - (1.0 - prune_fraction) ** r


@TRAINERS.register("imp")
class IMP(SparseTrainingMethod):
    """Prune p of the remaining by magnitude at each phase end, rewind to step k, retrain."""

    name = "imp"
    Config = IMPConfig
    distributions: ClassVar[tuple[str, ...]] = ("global", "uniform", "erk")

    def __init__(self, config: IMPConfig | None = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.rewind_step = 0
        self.phase_length = 0
        self.prune_steps: dict[int, int] = {}  # optimizer step -> round
        self._rewind_state: dict[str, Tensor] | None = None

    @property
    def phase_starts(self) -> list[int]:
        """The optimizer steps after which a training phase starts (0, then every prune step)."""
        return [0, *self.prune_steps]

    def lr_position(self, step: int) -> tuple[int, int]:
        """Phase 0 runs the schedule's steps 0 .. L, every later phase its steps k .. L again
        (steps left after the last phase extend it, clamped at L)."""
        if not self.prune_steps:  # sparsity 0: one phase, the whole run
            return super().lr_position(step)
        length, k = self.phase_length, self.rewind_step
        if step < length:
            return step, length
        phase = min((step - length) // (length - k), len(self.prune_steps) - 1)
        return min(k + step - length - phase * (length - k), length), length

    def check(self, shapes: dict[str, torch.Size]) -> None:
        config, total = self.config, self.total_steps
        if total is None:
            raise ValueError(f"{self.name}: the round schedule needs prepare(..., total_steps=N)")
        n = rounds(config.sparsity, config.prune_fraction)
        if isinstance(config.rewind, int):  # T = L + n (L - k)
            k = config.rewind
            length = (total + n * k) // (n + 1)
        else:
            length = math.floor(total / (1 + n * (1.0 - config.rewind)))
            k = round(config.rewind * length)
        if length - k < 1:
            raise ValueError(
                f"{self.name}: total_steps={total} is too short for {n} rounds rewinding to step {k}: "
                f"each phase needs at least {k + 1} steps"
            )
        self.rewind_step, self.phase_length = k, length
        self.prune_steps = {length + (r - 1) * (length - k): r for r in range(1, n + 1)}

    def initial_masks(self, weights: dict[str, Tensor]) -> MaskUpdate:
        ones = {f: torch.ones_like(w, dtype=torch.bool) for f, w in weights.items()}
        return MaskUpdate(ones, dict.fromkeys(weights, 0), 0.0)

    def prepare(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        targets: str | Iterable[str] | None = None,
        ignore: str | Iterable[str] | None = None,
        *,
        total_steps: int | None = None,
    ) -> nn.Module:
        """`SparseTrainingMethod.prepare`; with `rewind` at step 0 the initial weights are kept."""
        model = super().prepare(model, optimizer, targets, ignore, total_steps=total_steps)
        if self.rewind_step == 0:
            self._rewind_state = self._snapshot()
        return model

    def step(self) -> bool:
        """`SparseTrainingMethod.step`; keeps the weights of step k for the rewinds."""
        updated = super().step()
        if self._rewind_state is None and self.step_count >= self.rewind_step:
            self._rewind_state = self._snapshot()
        return updated

    def is_update_step(self, step: int) -> bool:
        return step in self.prune_steps

    def update_masks(
        self, step: int, weights: dict[str, Tensor], masks: dict[str, Tensor], grads: dict[str, Tensor]
    ) -> MaskUpdate:
        config = self.config
        level = round_sparsity(
            self.prune_steps[step], sparsity=config.sparsity, prune_fraction=config.prune_fraction
        )
        update = magnitude_prune(weights, masks, level, config.distribution)  # of the trained weights
        self._rewind()
        return update

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["rewind_state"] = (
            None if self._rewind_state is None else {k: v.clone() for k, v in self._rewind_state.items()}
        )
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        saved = state.get("rewind_state")
        self._rewind_state = None if saved is None else {k: v.clone() for k, v in saved.items()}

    def _tensors(self) -> dict[str, Tensor]:
        """Every parameter and buffer of the model except the mask buffers."""
        masks = {id(m.mask) for m in self.model.modules() if isinstance(m, Mask)}
        named = [*self.model.named_parameters(), *self.model.named_buffers()]
        return {name: t for name, t in named if id(t) not in masks}

    def _snapshot(self) -> dict[str, Tensor]:
        return {name: t.detach().clone() for name, t in self._tensors().items()}

    def _rewind(self) -> None:
        """Every parameter and buffer back to step k (the base then zeroes the newly pruned);
        the optimizer starts afresh."""
        if self._rewind_state is None:
            raise RuntimeError(f"{self.name}: no weights of step {self.rewind_step} to rewind to")
        with torch.no_grad():
            for name, tensor in self._tensors().items():
                tensor.copy_(self._rewind_state[name])
        self.optimizer.state.clear()
