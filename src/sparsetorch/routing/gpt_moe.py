"""Deprecated: the MoE tiny GPT moved to `sparsetorch.models.moe_gpt`, its trainer to
`sparsetorch.models.moe_train`.

The old names still resolve here for one release, each with a `DeprecationWarning` on use:
`MoEBlock`, `MoEGPT`, `MoEGPTConfig`, `MoEGPTOutput`, `post_moe_layers` (from `models.moe_gpt`) and
`MoETrainResult`, `train_moe_gpt` (from `models.moe_train`).
"""

from __future__ import annotations

from sparsetorch._deprecation import moved

_MOVED = {
    **{n: f"sparsetorch.models.moe_gpt.{n}" for n in ("MoEBlock", "MoEGPT", "MoEGPTConfig", "MoEGPTOutput")},
    "post_moe_layers": "sparsetorch.models.moe_gpt.post_moe_layers",
    "MoETrainResult": "sparsetorch.models.moe_train.MoETrainResult",
    "train_moe_gpt": "sparsetorch.models.moe_train.train_moe_gpt",
}
__all__ = sorted(_MOVED)
__getattr__ = moved(__name__, _MOVED)
