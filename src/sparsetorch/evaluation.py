"""Small, shared evaluation helpers (classification accuracy and loss)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


@torch.inference_mode()
def classification_metrics(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 1000
) -> dict[str, float]:
    """Accuracy and mean cross-entropy of `model` on inputs `x` (N, ...) and labels `y` (N,)."""
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"need the same non-zero number of inputs and labels, got {len(x)} and {len(y)}")
    was_training = model.training
    model.eval()
    correct, loss_sum = 0, 0.0
    for xb, yb in zip(x.split(batch_size), y.split(batch_size), strict=True):
        logits = model(xb)
        loss_sum += F.cross_entropy(logits, yb, reduction="sum").item()
        correct += (logits.argmax(-1) == yb).sum().item()
    model.train(was_training)
    return {"accuracy": correct / len(x), "loss": loss_sum / len(x)}
