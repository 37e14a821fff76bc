"""SynFlow: iterative synaptic flow pruning, data-free, at initialization.

Tanaka, Kunin, Yamins and Ganguli 2020, "Pruning neural networks without any data by iteratively
conserving synaptic flow" (no key in the papers catalogue; reference code ganguli-lab/Synaptic-Flow,
`Pruners/pruners.py` `SynFlow`, `prune.py` `prune_loop`).

Rule, at `prepare`, on a linearised copy of the network (every parameter and buffer replaced by
its absolute value, batch norm in eval mode, float64) fed an all-ones input `1` of one example:

    for e = 1 .. E:                                        (E = `iterations`, 100)
        R   = sum(f(1; |theta| * mask))                    (the synaptic flow)
        S   = |dR/dtheta * theta|                          (on the masked |theta|)
        s_e = 1 - (1 - sparsity) ** (e / E)                (the exponential schedule)
        mask = keep the highest S over all targets at sparsity s_e

No data is needed: the calibration data only gives the input shape (`data=inputs` is enough;
labels are ignored). The masks are fixed after `prepare`.

Defaults: `sparsity=0.9`, `distribution="global"` (the reference's `--mask-scope global`),
`iterations=100`, the exponential schedule.

Deviations: a pruned weight ranks below every active one, so an iteration never revives it (with
the reference's `score <= threshold` rule zero scores are pruned anyway, and ties at the threshold
over-prune: counts here are exact); weights are ranked by `log S` and float64 is used throughout
the scoring (the reference computes in the
model's dtype, with `model.double()` commented out; float32 flow overflows or underflows on deep
networks); the default targets leave the final classifier dense (it still carries flow).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from sparsetorch.training.base import TRAINERS
from sparsetorch.training.ops import MaskUpdate, keep_highest
from sparsetorch.training.pai import PaIConfig, PruneAtInit

_ZERO, _PRUNED = -1e30, -2e30  # ranks of a zero score and of a pruned weight (below any log S)


@dataclass(frozen=True)
class SynFlowConfig(PaIConfig):
    """SynFlow's hyperparameters.

    Attributes:
        iterations: pruning iterations `E` of the exponential schedule (the paper's 100).
    """

    iterations: int = 100

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.iterations, bool) or not isinstance(self.iterations, int) or self.iterations < 1:
            raise ValueError(f"iterations must be a positive integer, got {self.iterations!r}")


def schedule(iteration: int, *, sparsity: float, iterations: int) -> float:
    """`s_e = 1 - (1 - sparsity) ** (e / E)`: the sparsity after iteration `e` of `E` (exponential)."""
    if not 1 <= iteration <= iterations:
        raise ValueError(f"iteration must be in [1, {iterations}], got {iteration}")
    return 1.0 - (1.0 - sparsity) ** (iteration / iterations)


def synflow_masks(
    model: nn.Module,
    params: dict[str, Tensor],
    input_shape: tuple[int, ...],
    *,
    sparsity: float,
    iterations: int,
    distribution: str,
) -> MaskUpdate:
    """Iterative SynFlow masks of `params` (tensors of `model`, a scratch copy that is linearised
    in place)."""
    model.double().eval()
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            if tensor.is_floating_point():
                tensor.abs_()
    absolute = {f: w.detach().clone() for f, w in params.items()}
    device = next(iter(params.values())).device
    ones = torch.ones((1, *input_shape), dtype=torch.float64, device=device)
    masks = {f: torch.ones_like(w, dtype=torch.bool) for f, w in params.items()}
    update = MaskUpdate(masks, dict.fromkeys(params, 0), 0.0)
    for e in range(1, iterations + 1):
        with torch.no_grad():
            for f, w in params.items():
                w.copy_(absolute[f] * masks[f])
        flow = model(ones).sum()
        grads = torch.autograd.grad(flow, list(params.values()), allow_unused=True)
        scores = {f: _rank(w, g, masks[f]) for (f, w), g in zip(params.items(), grads, strict=True)}
        # The last iteration prunes to `sparsity` itself, not to its float round trip.
        level = sparsity if e == iterations else schedule(e, sparsity=sparsity, iterations=iterations)
        update = keep_highest(scores, level, distribution)
        masks = update.masks
    return update


def _rank(weight: Tensor, grad: Tensor | None, mask: Tensor) -> Tensor:
    """`log S` of the active weights (S = 0 scores -1e30) and -2e30 for pruned ones.

    The selection works in float32, where the raw flow of a deep network under- or overflows;
    the float64 logarithm keeps the order and fits.
    """
    score = torch.zeros_like(weight) if grad is None else (grad * weight).detach().abs()
    ranked = torch.where(score > 0, score.clamp_min(1e-300).log(), torch.full_like(score, _ZERO))
    return ranked.masked_fill(~mask, _PRUNED)  # a pruned weight never comes back


@TRAINERS.register("synflow")
class SynFlow(PruneAtInit):
    """Iterative data-free synaptic flow scores on the linearised network, fixed masks."""

    name = "synflow"
    Config = SynFlowConfig
    needs_labels = False

    def select(
        self, model: nn.Module, params: dict[str, Tensor], inputs: Tensor, labels: Tensor | None
    ) -> MaskUpdate:
        config = self.config
        return synflow_masks(
            model,
            params,
            tuple(inputs.shape[1:]),
            sparsity=config.sparsity,
            iterations=config.iterations,
            distribution=config.distribution,
        )
