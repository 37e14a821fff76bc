"""RigL: drop by magnitude, grow by the gradient of the masked weight, at constant sparsity.

Evci, Gale, Menick, Castro and Elsen 2020, "Rigging the Lottery: Making All Tickets Winners"
(no key in the papers catalogue; google-research/rigl is the reference code).

Rule, per layer at every `update_every`-th optimizer step until `end` (the `dst` loop):

    n_l   = floor(alpha_t * |active_l|),  alpha_t = 0.3 * (1 + cos(pi * t / T_end)) / 2
    drop  : the n_l active weights of smallest |w|
    grow  : the n_l inactive weights of largest |dL/d(w * m)|   (just-dropped ones are eligible)

`dL/d(w * m)` is the dense gradient with respect to the effective (masked) weight, summed over
the backward passes since the previous optimizer step (read through a hook, see `base`). Grown
weights start at 0 and their optimizer state (momentum, Adam moments) is zeroed. The initial
masks are random at `sparsity` with ERK layer budgets.

Defaults are the paper's ResNet-50 setting, not the reference code's flag defaults (constant
anneal, fixed end step): `drop_fraction=0.3`, cosine anneal, `update_every=100`, `end=0.75` (of
training, so `prepare` needs `total_steps`), `distribution="erk"`, `sparsity=0.9`.

Deviations:
- Ties are broken exactly (the earlier weight is kept) instead of by adding N(0, 1e-5) noise to the
  drop scores, so counts are exact and runs deterministic.
- The growth gradient is the one of the step's own minibatch(es), as in the PyTorch ports
  (rigl-torch), not a second gradient computation on a fresh batch.
- Default targets leave the final classifier dense (`sparsetorch.masks.resolve_targets`), whereas
  the reference sparsifies every layer under ERK; pass `targets=` to include it. The reference's
  "uniform" keeps the first layer dense; here "uniform" applies to every target (use `ignore=`).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from sparsetorch.training.base import TRAINERS
from sparsetorch.training.dst import DynamicSparseConfig, DynamicSparseMethod


@dataclass(frozen=True)
class RigLConfig(DynamicSparseConfig):
    """RigL's paper defaults (see the module docstring)."""

    distribution: str = "erk"
    drop_fraction: float = 0.3
    drop_fraction_anneal: str = "cosine"
    update_every: int = 100
    end: int | float | None = 0.75


@TRAINERS.register("rigl")
class RigL(DynamicSparseMethod):
    """Grow score = |dL/dW| of the effective weight."""

    name = "rigl"
    Config = RigLConfig
    grows = True

    def grow_scores(self, fqn: str, weight: Tensor, grad: Tensor | None) -> Tensor:
        return grad.abs()
