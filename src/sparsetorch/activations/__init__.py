"""The activations axis: which units fire.

- `kwta`: k-winners-take-all, 1-D and 2-D (local / global), with duty-cycle boosting;
- `topk`: the per-token top-k activation of the lazy-neuron paper;
- `stats`: per-layer, per-token activation sparsity of any model, via forward hooks;
- `gather`: activation-sparse FFN execution at batch 1 (read only the active weight rows).
"""

from __future__ import annotations

from sparsetorch.activations.gather import (
    GatherLinear,
    SparseFFN,
    active_rows,
    dense_activation,
    gather_linear,
)
from sparsetorch.activations.kwta import (
    KWinners,
    KWinners2d,
    KWinnersBase,
    check_k,
    kwinners,
    kwinners2d,
    topk_mask,
    update_boost_strength,
)
from sparsetorch.activations.stats import ActivationSparsity, LayerSparsity, measure_activation_sparsity
from sparsetorch.activations.topk import TopK, topk_activation

__all__ = [
    "ActivationSparsity",
    "GatherLinear",
    "KWinners",
    "KWinners2d",
    "KWinnersBase",
    "LayerSparsity",
    "SparseFFN",
    "TopK",
    "active_rows",
    "check_k",
    "dense_activation",
    "gather_linear",
    "kwinners",
    "kwinners2d",
    "measure_activation_sparsity",
    "topk_activation",
    "topk_mask",
    "update_boost_strength",
]
