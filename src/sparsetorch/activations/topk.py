"""Top-k activation (`lazy-neuron`): per token, keep the k largest activations and zero the rest.

Paper: Li et al. (2022), "The Lazy Neuron Phenomenon: On Emergence of Activation Sparsity in
Transformers". Their Top-k Transformer keeps, for every token, the k largest post-ReLU MLP
activations: with hidden pre-activations z in R^n,

    h = TopK_k(ReLU(z)),   h_i = ReLU(z_i) if i is among the k largest z_i, else 0,

and the gradient flows only through the kept entries (dh_i/dz_i = 1 for kept positive entries,
0 otherwise). `TopK(k, relu=True)` is exactly that; `relu=False` keeps the k largest values
whatever their sign (plain top-k, the k-WTA rule without boosting).

Ties are deterministic: among equal values the lowest index wins, so exactly k entries are kept
(fewer with `relu=True` when fewer than k are positive). The per-token choice is the last
dimension of `(..., n)`; every leading position (batch, sequence) is one token.

Deviation: none in the rule. The paper leaves tie-breaking unspecified; `torch.topk`'s is
unspecified too, hence the explicit rule (`sparsetorch.patterns.keep_top`). The function is
`kwinners` without boosting; `topk_activation` is its deprecated old name.
"""

from __future__ import annotations

import warnings
from typing import ClassVar

from torch import Tensor, nn

from sparsetorch.activations.base import ACTIVATIONS
from sparsetorch.activations.kwta import check_k, kwinners

__all__ = ["TopK", "topk_activation"]


def topk_activation(x: Tensor, k: int, *, dim: int = -1, relu: bool = False) -> Tensor:
    """Deprecated: `kwinners(x, k, dim=dim, relu=relu)` (k-WTA without boosting) does the same."""
    warnings.warn(
        "topk_activation is deprecated; use sparsetorch.activations.kwinners(x, k, dim=..., relu=...)",
        DeprecationWarning,
        stacklevel=2,
    )
    return kwinners(x, k, dim=dim, relu=relu)


@ACTIVATIONS.register("topk")
class TopK(nn.Module):
    """Top-k activation module; see the module docstring.

    Args:
        k: entries kept per token; validated against n at each forward (k in [1, n]).
        dim: the hidden-unit dimension (default: last).
        relu: Top-k of ReLU (the lazy-neuron Top-k Transformer); False keeps negatives too.
    """

    paper: ClassVar[str] = "lazy-neuron"

    def __init__(self, k: int, *, dim: int = -1, relu: bool = True) -> None:
        super().__init__()
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be an integer >= 1, got {k!r}")
        self.k, self.dim, self.relu = k, dim, relu

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 0:
            raise ValueError("TopK needs at least one dimension")
        check_k(self.k, x.shape[self.dim])
        return kwinners(x, self.k, dim=self.dim, relu=self.relu)

    def extra_repr(self) -> str:
        return f"k={self.k}, dim={self.dim}, relu={self.relu}"
