"""SNIP: single-shot network pruning by connection sensitivity, at initialization.

Lee, Ajanthan and Torr 2019, "SNIP: Single-shot Network Pruning based on Connection Sensitivity"
(no key in the papers catalogue; the PaI baseline of `cts`; reference code namhoonlee/snip-public,
and the PyTorch rendition in ganguli-lab/Synaptic-Flow `Pruners/pruners.py`).

Rule, once at `prepare` on a calibration batch D (see `pai`):

    L(c) = CrossEntropy(f(x; c * w), y)  over D,   c = 1 (a multiplicative gate per weight)
    s_j  = |dL/dc_j| = |g_j * w_j|,   g = dL/dw                     (connection sensitivity)
    keep the (1 - sparsity) * n highest s over all targets (one global threshold)

The paper normalises s by its sum, which changes no ranking and is skipped. The masks never change.

Defaults: `sparsity=0.9`, `distribution="global"`. The scoring pass runs the model in its current
mode (train mode for a fresh model), as the reference does on a minibatch at initialization.

Deviations: exact counts (ties keep the earlier weight, by layer order then position) instead of a
`>=` threshold; the default targets leave the final classifier dense (pass `targets=` to include
it, the reference prunes every layer); a calibration tensor is one batch, used in one pass.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sparsetorch.training.base import TRAINERS
from sparsetorch.training.pai import PruneAtInit


def snip_scores(
    model: nn.Module, params: dict[str, Tensor], inputs: Tensor, labels: Tensor
) -> dict[str, Tensor]:
    """`|dL/dw * w|` of each tensor in `params` for the mean cross-entropy of `model` on the batch."""
    loss = F.cross_entropy(model(inputs), labels)
    grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
    return {
        f: (torch.zeros_like(w) if g is None else g * w).detach().abs()
        for (f, w), g in zip(params.items(), grads, strict=True)
    }


@TRAINERS.register("snip")
class SNIP(PruneAtInit):
    """Connection sensitivity `|g * w|` on a calibration batch, one global threshold, fixed masks."""

    name = "snip"

    def scores(
        self, model: nn.Module, params: dict[str, Tensor], inputs: Tensor, labels: Tensor | None
    ) -> dict[str, Tensor]:
        return snip_scores(model, params, inputs, labels)
