"""The evaluation metrics, one per task type: classification (`classification_metrics`), causal language
modelling (`lm_metrics`, and `lm_perplexity` on non-overlapping windows), sentence embeddings
(`embedding_agreement`). `training.evaluate` and `training.evaluate_lm` apply them to datasets."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

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


def logits_of(output: Any) -> torch.Tensor:
    """The logits of a model's output: a tensor, an object with `.logits` (`MoEGPTOutput`), or a
    tuple whose first item is the logits (`(logits, aux)`)."""
    if isinstance(output, torch.Tensor):
        return output
    logits = getattr(output, "logits", None)
    if logits is None and isinstance(output, tuple | list) and output:
        logits = output[0]
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"cannot find logits in a model output of type {type(output).__name__}")
    return logits


@torch.inference_mode()
def lm_metrics(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    batch_size: int = 16,
    on_output: Callable[[Any], None] | None = None,
) -> dict[str, float]:
    """Next-token metrics of a causal LM on `inputs` (n, T) with `targets` (n, T), in eval mode.

    Returns `loss` (mean NLL per token, nats; also as `nll`), `perplexity = exp(loss)`, `bits_per_byte`
    (`loss / ln 2`, for byte-level models) and `tokens`. `on_output` sees each batch's model output
    (e.g. to collect routing statistics). Rows are moved to the device of the model's parameters
    batch by batch.
    """
    if len(inputs) == 0 or inputs.shape != targets.shape:
        raise ValueError(
            f"need non-empty inputs and targets of one shape, got {inputs.shape}, {targets.shape}"
        )
    device = next(model.parameters(), torch.empty(0)).device  # a model without parameters runs on the CPU
    was_training = model.training
    model.eval()
    nll, count = 0.0, 0
    try:
        for xb, yb in zip(inputs.split(batch_size), targets.split(batch_size), strict=True):
            output = model(xb.to(device))
            logits = logits_of(output)
            yb = yb.to(device)
            nll += F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), yb.reshape(-1), reduction="sum"
            ).item()
            count += yb.numel()
            if on_output is not None:
                on_output(output)
    finally:
        model.train(was_training)
    mean = nll / count
    return {
        "loss": mean,
        "nll": mean,
        "perplexity": math.exp(mean),
        "bits_per_byte": mean / math.log(2),
        "tokens": count,
    }


def lm_perplexity(
    model: nn.Module, ids: torch.Tensor, *, seq_len: int, batch_size: int = 16
) -> dict[str, float]:
    """Perplexity of a causal LM on non-overlapping windows of `ids` (the Wanda/SparseGPT protocol).

    Returns `perplexity = exp(mean NLL)`, `nll` and, for byte-level models, `bits_per_byte = NLL / ln 2`
    (see `lm_metrics`).
    """
    n = (len(ids) - 1) // seq_len
    if n < 1:
        raise ValueError(f"need more than {seq_len} tokens to evaluate, got {len(ids)}")
    # (n * seq_len + 1,) -> inputs (n, seq_len) and next-token targets (n, seq_len)
    x = ids[: n * seq_len].reshape(n, seq_len)
    y = ids[1 : n * seq_len + 1].reshape(n, seq_len)
    metrics = lm_metrics(model, x, y, batch_size=batch_size)
    del metrics["loss"]  # the protocol reports `nll`
    return metrics


@torch.inference_mode()
def embedding_agreement(reference: torch.Tensor, candidate: torch.Tensor) -> dict[str, float]:
    """How well `candidate` sentence embeddings (N, d) agree with `reference` ones.

    - `cosine`: mean cosine similarity between each sentence's two embeddings;
    - `top1_agreement`: fraction of sentences whose nearest neighbour among the others is the
      same under both embeddings (retrieval agreement);
    - `top10_overlap`: mean overlap of the 10 nearest neighbours.
    """
    if reference.shape != candidate.shape or len(reference) < 2:
        raise ValueError(
            f"need two embeddings of the same shape (N >= 2, d), got {reference.shape}, {candidate.shape}"
        )
    ref, cand = F.normalize(reference.float(), dim=-1), F.normalize(candidate.float(), dim=-1)
    cosine = (ref * cand).sum(-1).mean().item()
    eye = torch.eye(len(ref), dtype=torch.bool)
    k = min(10, len(ref) - 1)
    near_ref = (ref @ ref.T).masked_fill(eye, -2).topk(k, dim=-1).indices
    near_cand = (cand @ cand.T).masked_fill(eye, -2).topk(k, dim=-1).indices
    top1 = (near_ref[:, 0] == near_cand[:, 0]).float().mean().item()
    overlap = sum(len(set(a.tolist()) & set(b.tolist())) for a, b in zip(near_ref, near_cand, strict=True))
    return {"cosine": cosine, "top1_agreement": top1, "top10_overlap": overlap / (k * len(ref))}
