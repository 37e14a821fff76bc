"""The activations axis: which units fire.

`ACTIVATIONS` registers the activation-sparsity modules by name ("kwta", "kwta-2d", "topk", "chess",
"delta", "blockffn"); `sparsetorch.discovery` lists them as kind "activation".

- `kwta`: k-winners-take-all, 1-D and 2-D (local / global), with duty-cycle boosting;
- `topk`: the per-token top-k activation of the lazy-neuron paper (`kwinners` without boosting);
- `stats`: per-layer, per-token activation sparsity of any model, via forward hooks;
- `gather`: activation-sparse FFN execution at batch 1 (read only the active weight rows);
- `chess`: channel-wise activation thresholds (CHESS) and the single-threshold CATS baseline,
  applied to MiniLM and the tiny GPT, with selective attention-input sparsification;
- `blockffn`: the ReLU + RMSNorm-routed MoE-FFN with token- and chunk-level sparsity and losses;
- `delta`: the Delta Activation Layer (quantized temporal differences with an L1 penalty).
"""

from __future__ import annotations

from sparsetorch.activations.base import ACTIVATIONS
from sparsetorch.activations.blockffn import (
    BlockFFN,
    BlockFFNAux,
    BlockFFNConfig,
    chunk_loss,
    chunk_sparsity,
    locality_loss,
    token_sparsity,
)
from sparsetorch.activations.chess import (
    ChessConfig,
    ThresholdActivation,
    ThresholdInputLinear,
    channel_thresholds,
    layer_threshold,
    sparsify_gpt,
    sparsify_minilm,
)
from sparsetorch.activations.chess import calibrate as chess_calibrate
from sparsetorch.activations.delta import (
    DeltaActivation,
    DeltaConfig,
    DeltaOutput,
    accumulate,
    delta_sparsity,
    quantize,
    temporal_delta,
)
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
    "ACTIVATIONS",
    "ActivationSparsity",
    "BlockFFN",
    "BlockFFNAux",
    "BlockFFNConfig",
    "ChessConfig",
    "DeltaActivation",
    "DeltaConfig",
    "DeltaOutput",
    "GatherLinear",
    "KWinners",
    "KWinners2d",
    "KWinnersBase",
    "LayerSparsity",
    "SparseFFN",
    "ThresholdActivation",
    "ThresholdInputLinear",
    "TopK",
    "accumulate",
    "active_rows",
    "channel_thresholds",
    "check_k",
    "chess_calibrate",
    "chunk_loss",
    "chunk_sparsity",
    "delta_sparsity",
    "dense_activation",
    "gather_linear",
    "kwinners",
    "kwinners2d",
    "layer_threshold",
    "locality_loss",
    "measure_activation_sparsity",
    "quantize",
    "sparsify_gpt",
    "sparsify_minilm",
    "temporal_delta",
    "token_sparsity",
    "topk_activation",
    "topk_mask",
    "update_boost_strength",
]
