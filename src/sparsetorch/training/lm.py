"""`fit_lm` and `evaluate_lm`: causal language models on the training substrate (`training.loop`).

The recipe of the `gpt-tiny` reference model, shared by every byte-level LM trainer and reproduction:
AdamW with betas (0.9, 0.99) and weight decay on matrices only (GPT-2), linear warmup then cosine
from `lr` to `min_lr`, global gradient-norm clipping, batches of `batch_size` windows drawn uniformly
(with replacement) by a seeded generator, dropout seeded by the same seed. Windows are `(N, T + 1)`
token rows (`data.shakespeare.byte_windows`): inputs `[:, :-1]`, next-token targets `[:, 1:]`.

The default loss is `lm_loss`: next-token cross-entropy plus the model's own `aux_loss` when its
output carries one (`MoEGPTOutput`); `extra_loss(step, output)` adds terms computed from the output
(router schedules, activation penalties). `on_step` / `on_eval` are those of `training.loop`.

Windows are moved to the device of the model's parameters batch by batch, in training and in
evaluation. `fit_lm` trains in train mode and leaves the model in the mode it was in before the call
(as `fit` does).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sparsetorch.evaluation import lm_metrics, logits_of
from sparsetorch.training.loop import (
    Loss,
    OnEval,
    OnStep,
    TrainLog,
    random_batches,
    takes_step,
    train_mode,
    train_steps,
)

__all__ = ["evaluate_lm", "fit_lm", "lm_loss", "lm_optimizer", "spaced_windows", "warmup_cosine"]


def lm_optimizer(model: nn.Module, *, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW with betas (0.9, 0.99) and weight decay on matrices only (GPT-2): the LM recipe's optimizer."""
    matrices = [p for p in model.parameters() if p.dim() >= 2]
    others = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW(
        [{"params": matrices, "weight_decay": weight_decay}, {"params": others, "weight_decay": 0.0}],
        lr=lr,
        betas=(0.9, 0.99),
    )


def warmup_cosine(step: int, *, lr: float, min_lr: float, warmup: int, steps: int) -> float:
    """Learning rate at `step`: linear warmup over `warmup` steps, then cosine from `lr` to `min_lr`."""
    if step < warmup:
        return lr * (step + 1) / warmup
    t = (step - warmup) / max(1, steps - warmup)
    return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * min(t, 1.0)))


def lm_loss(model: nn.Module, batch: Tensor) -> Loss:
    """Next-token cross-entropy of `batch` (B, T + 1) plus the output's `aux_loss`, if it has one.

    Parts: `task` (the cross-entropy) and, with an aux loss, `aux_loss`.
    """
    output = model(batch[:, :-1])
    logits = logits_of(output)  # (B, T, V)
    task = F.cross_entropy(logits.reshape(-1, logits.size(-1)), batch[:, 1:].reshape(-1))
    aux = getattr(output, "aux_loss", None)
    if aux is None:
        return Loss(task, output, {"task": task.detach()})
    return Loss(task + aux, output, {"task": task.detach(), "aux_loss": aux.detach()})


def spaced_windows(windows: Tensor, num_windows: int) -> Tensor:
    """`num_windows` evenly spaced rows of `windows` (all of them when there are fewer)."""
    starts = torch.linspace(0, len(windows) - 1, min(num_windows, len(windows))).long()
    return windows[starts]


def evaluate_lm(
    model: nn.Module,
    windows: Tensor,
    *,
    num_windows: int | None = None,
    batch_size: int = 16,
    on_output: Callable[[Any], None] | None = None,
) -> dict[str, float]:
    """Held-out next-token `loss` (nats), `perplexity`, `bits_per_byte` on `windows` (N, T + 1): the one
    LM evaluation (`evaluation.lm_metrics`), on `num_windows` evenly spaced windows (None: all)."""
    rows = windows if num_windows is None else spaced_windows(windows, num_windows)
    return lm_metrics(model, rows[:, :-1], rows[:, 1:], batch_size=batch_size, on_output=on_output)


def fit_lm(
    model: nn.Module,
    train: Tensor,
    *,
    steps: int,
    batch_size: int,
    lr: float = 1e-3,
    min_lr: float = 1e-4,
    warmup_steps: int | None = None,
    weight_decay: float = 0.1,
    grad_clip: float | None = 1.0,
    seed: int = 0,
    optimizer: torch.optim.Optimizer | None = None,
    loss_fn: Callable[..., Loss] = lm_loss,
    extra_loss: Callable[[int, Any], Tensor] | None = None,
    on_step: OnStep | Sequence[OnStep] | None = None,
    on_eval: OnEval | Sequence[OnEval] | None = None,
    eval_at: Iterable[int] = (),
    log: TrainLog | None = None,
) -> TrainLog:
    """Train a causal LM in place on `train` windows (N, T + 1) by the recipe of the module docstring.

    Args:
        steps: optimizer steps of `batch_size` windows.
        lr, min_lr, warmup_steps: linear warmup to `lr` (default `max(1, steps // 10)` steps), then
            cosine to `min_lr`.
        weight_decay: AdamW decay on matrices (`lm_optimizer`), ignored with `optimizer`.
        grad_clip: max global gradient norm (None: no clipping).
        seed: batch sampling and the global RNG (dropout) inside the call; the caller's RNG is restored.
        optimizer: replaces `lm_optimizer` (its learning rate is still set by the schedule).
        loss_fn: `(model, batch) -> Loss` (default `lm_loss`), or `(model, batch, *, step) -> Loss` to
            see the 0-based index of the step (as in `train_steps`); `batch` is on the model's device.
        extra_loss: `(step, output) -> Tensor` added to the loss (aux terms as return values).
        on_step, on_eval, eval_at: callbacks of `training.loop.train_steps`.
        log: a `TrainLog` to append the rows to (as `fit`'s), or None for a new one.

    Returns:
        The `TrainLog` (per-step `loss`, `task`, `aux_loss` and callback values; evaluations). The
        model is left in the mode it was in before the call.

    Raises:
        ValueError: windows that are not a 2-D integer tensor of at least two tokens per row, or
            non-positive sizes.
    """
    if train.dim() != 2 or train.shape[1] < 2 or train.is_floating_point() or len(train) == 0:
        raise ValueError(f"train must be integer windows (N, T + 1) with T >= 1, got {tuple(train.shape)}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not (lr > 0 and min_lr >= 0):
        raise ValueError(f"need lr > 0 and min_lr >= 0, got {lr}, {min_lr}")
    warmup = max(1, steps // 10) if warmup_steps is None else warmup_steps
    opt = optimizer if optimizer is not None else lm_optimizer(model, lr=lr, weight_decay=weight_decay)

    device, with_step = next(model.parameters()).device, takes_step(loss_fn)

    def loss(model: nn.Module, index: Tensor, *, step: int) -> Loss:
        batch = train[index].to(device)  # (B, T + 1) windows
        result = loss_fn(model, batch, step=step) if with_step else loss_fn(model, batch)
        if extra_loss is None:
            return result
        return result._replace(total=result.total + extra_loss(step, result.output))

    with train_mode(model):
        return train_steps(
            model,
            opt,
            random_batches(len(train), batch_size, torch.Generator().manual_seed(seed)),
            loss,
            steps=steps,
            lr_at=lambda step: warmup_cosine(step, lr=lr, min_lr=min_lr, warmup=warmup, steps=steps),
            grad_clip=grad_clip,
            on_step=on_step,
            on_eval=on_eval,
            eval_at=eval_at,
            seed=seed,
            log=log,
        )
