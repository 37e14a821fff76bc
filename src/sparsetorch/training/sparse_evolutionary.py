"""SET: Sparse Evolutionary Training, drop by magnitude and regrow uniformly at random.

Mocanu, Mocanu, Stone, Nguyen, Gibescu and Liotta 2018, "Scalable training of artificial neural
networks with adaptive sparse connectivity inspired by network science" (no key in the papers
catalogue).

Rule, per layer at every `update_every`-th optimizer step (the `dst` loop):

    n_l   = floor(zeta * |active_l|),  zeta = 0.3
    drop  : the n_l active weights of smallest |w|
    grow  : n_l inactive weights drawn uniformly at random (just-dropped ones are eligible)

Grown weights start at 0 with zeroed optimizer state. The initial masks are random at `sparsity`
with Erdős–Rényi layer budgets ("erk", which is SET's ER for Linear layers).

Defaults: `drop_fraction=0.3` (zeta), constant, `update_every=100`, no end (SET evolves the
topology for the whole training), `distribution="erk"`, `sparsity=0.9`.

Deviations:
- SET removes the fraction zeta of the smallest positive and of the largest negative weights
  separately; here the smallest |w| overall, as in the RigL and sparse_learning implementations.
- SET evolves once per epoch; the step-based default follows Evci et al.'s SET baseline. Pass
  `update_every=steps_per_epoch` to match the paper, and `end=0.75,
  drop_fraction_anneal="cosine"` for the RigL paper's SET baseline.
- Random growth draws from the method's seeded generator (`seed`), so runs are reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from sparsetorch.training.base import TRAINERS
from sparsetorch.training.dst import DynamicSparseConfig, DynamicSparseMethod


@dataclass(frozen=True)
class SETConfig(DynamicSparseConfig):
    """SET's defaults (see the module docstring)."""

    distribution: str = "erk"
    drop_fraction: float = 0.3
    drop_fraction_anneal: str = "constant"
    update_every: int = 100
    end: int | float | None = None


@TRAINERS.register("set")
class SET(DynamicSparseMethod):
    """Grow score ~ U(0, 1) from the method's generator."""

    name = "set"
    Config = SETConfig

    def grow_scores(self, fqn: str, weight: Tensor, grad: Tensor | None) -> Tensor:
        return torch.rand(tuple(weight.shape), generator=self.generator).to(weight.device)
