"""A small seeded training loop for MoE-GPT reproductions that need hooks `train_moe_gpt` lacks.

`train_moe_gpt` builds its own `MoEGPT`; the `graph-of-tokens-moe` and `magnet` reproductions train
other builds (`graph_moe_gpt`) or add a router schedule, so they share this loop: the same recipe
(AdamW with decay on matrices, linear warmup then cosine, grad clip 1, seeded batches and dropout).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sparsetorch.models.gpt import encode
from sparsetorch.models.pretrained import lm_optimizer, warmup_cosine


def windows(text: str, block_size: int) -> Tensor:
    """All (block_size + 1)-token windows of the bytes of `text`, a view (N, block_size + 1)."""
    ids = encode(text)
    if len(ids) < block_size + 2:
        raise ValueError(f"text of {len(ids)} bytes is too short for windows of {block_size + 1} tokens")
    return ids.unfold(0, block_size + 1, 1)


def shakespeare_windows(block_size: int, text: tuple[str, str] | None) -> tuple[Tensor, Tensor]:
    """(train, val) windows of Shakespeare (or of the caller's `text`)."""
    if text is None:
        from sparsetorch import data

        text = (data.load_shakespeare("train"), data.load_shakespeare("val"))
    return windows(text[0], block_size), windows(text[1], block_size)


def train_loop(
    model: nn.Module,
    train: Tensor,
    *,
    steps: int,
    batch_size: int,
    lr: float = 1e-3,
    min_lr: float = 1e-4,
    warmup_steps: int | None = None,
    weight_decay: float = 0.1,
    seed: int = 0,
    extra_loss: Callable[[Any], Tensor] | None = None,
    after_step: Callable[[int, Any, Tensor], None] | None = None,
) -> None:
    """Train a model whose forward returns `(logits, aux_loss, aux)` (a `MoEGPTOutput`).

    `extra_loss(out)` adds a term to the loss; `after_step(step, out, task_loss)` runs after each
    optimizer step (in training mode; it may switch modes and must restore training mode).
    """
    warmup = max(1, steps // 10) if warmup_steps is None else warmup_steps
    opt = lm_optimizer(model, lr=lr, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed)

    def lr_at(step: int) -> float:
        return warmup_cosine(step, lr=lr, min_lr=min_lr, warmup=warmup, steps=steps)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # dropout
        model.train()
        for step in range(steps):
            for group in opt.param_groups:
                group["lr"] = lr_at(step)
            batch = train[torch.randint(len(train), (batch_size,), generator=gen)]  # (B, T + 1)
            out = model(batch[:, :-1])
            task = F.cross_entropy(out.logits.reshape(-1, out.logits.size(-1)), batch[:, 1:].reshape(-1))
            loss = task + out.aux_loss
            if extra_loss is not None:
                loss = loss + extra_loss(out)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            if after_step is not None:
                after_step(step, out, task.detach())
    model.eval()


@torch.no_grad()
def evaluate(model: nn.Module, val: Tensor, *, num_windows: int, batch_size: int) -> float:
    """Mean held-out next-byte cross-entropy (nats) over `num_windows` evenly spaced windows."""
    was_training = model.training
    model.eval()
    starts = torch.linspace(0, len(val) - 1, min(num_windows, len(val))).long()
    total = 0.0
    for chunk in starts.split(batch_size):
        batch = val[chunk]
        logits = model(batch[:, :-1]).logits
        ce = F.cross_entropy(logits.reshape(-1, logits.size(-1)), batch[:, 1:].reshape(-1))
        total += ce.item() * len(chunk)
    model.train(was_training)
    return total / len(starts)


def probe_windows(val: Tensor, num_windows: int) -> Tensor:
    """Evenly spaced held-out windows (n, T) (inputs only) for routing probes."""
    starts = torch.linspace(0, len(val) - 1, min(num_windows, len(val))).long()
    return val[starts, :-1]
