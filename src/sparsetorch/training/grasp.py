"""GraSP: gradient signal preservation, pruning at initialization.

Wang, Zhang and Grosse 2020, "Picking Winning Tickets Before Training by Preserving Gradient Flow"
(no key in the papers catalogue; reference code alecwangcq/GraSP `pruner/GraSP.py`).

Rule, once at `prepare` on a calibration batch D (see `pai`):

    L   = CrossEntropy(f(x; w) / T, y)  over D           (T = temperature, 200)
    g   = dL/dw,   Hg = d(g_stop . g)/dw                  (Hessian-gradient product, double backprop)
    S   = -w * Hg                                          (the change of the gradient norm when
                                                            w is removed, to first order)
    prune the sparsity * n HIGHEST S over all targets; keep the lowest.

Removing a weight with a high S reduces the gradient flow the most, so those go first. Internally
the keep score is `w * Hg = -S` and the highest are kept. The masks never change.

Defaults: `sparsity=0.9`, `distribution="global"`, `temperature=200` (the reference's `T`). The
paper samples ten examples per class (`samples_per_class`, CIFAR-10) for the batch; pass such a
balanced batch as the calibration data.

Deviations: exact counts (the reference keeps `S <= threshold`, which keeps ties at the threshold);
one pass over the batch instead of the reference's two half-batches (g and Hg then differ only by
constant factors, so the ranking is the same); the reference re-initialises the Linear layers of
its scoring copy with Xavier-normal (`reinit=True`), so it scores other Linear weights than the
ones it trains: here the model's own weights are scored; the final classifier stays dense by
default (pass `targets=` to include it).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sparsetorch.training.base import TRAINERS
from sparsetorch.training.pai import PaIConfig, PruneAtInit


@dataclass(frozen=True)
class GraSPConfig(PaIConfig):
    """GraSP's hyperparameters.

    Attributes:
        temperature: the logits are divided by it before the loss (the reference's `T = 200`).
    """

    temperature: float = 200.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if (
            isinstance(self.temperature, bool)
            or not isinstance(self.temperature, int | float)
            or not self.temperature > 0
        ):
            raise ValueError(f"temperature must be a positive number, got {self.temperature!r}")


def grasp_scores(
    model: nn.Module, params: dict[str, Tensor], inputs: Tensor, labels: Tensor, *, temperature: float
) -> dict[str, Tensor]:
    """Keep scores `w * Hg` (`-S` of the paper) of each tensor in `params` on the batch."""
    weights = list(params.values())
    loss = F.cross_entropy(model(inputs) / temperature, labels)
    grads = torch.autograd.grad(loss, weights, create_graph=True, allow_unused=True)
    # z = g_stop . g; dz/dw = H g_stop (the stopped copy makes it the Hessian-gradient product).
    z = sum((g.detach() * g).sum() for g in grads if g is not None)
    if not isinstance(z, Tensor) or not z.requires_grad:  # no target on the path to the loss
        return {f: torch.zeros_like(w) for f, w in params.items()}
    hg = torch.autograd.grad(z, weights, allow_unused=True)
    return {
        f: (torch.zeros_like(w) if h is None else w * h).detach()
        for (f, w), h in zip(params.items(), hg, strict=True)
    }


@TRAINERS.register("grasp")
class GraSP(PruneAtInit):
    """Prune the highest `-w * Hg` on a calibration batch, one global threshold, fixed masks."""

    name = "grasp"
    Config = GraSPConfig

    def scores(
        self, model: nn.Module, params: dict[str, Tensor], inputs: Tensor, labels: Tensor | None
    ) -> dict[str, Tensor]:
        return grasp_scores(model, params, inputs, labels, temperature=self.config.temperature)
