"""`fit` and `evaluate`: a minimal classification training loop for the bench and the papers.

Not a framework: one model, in-memory tensors, cross-entropy, SGD/Adam/AdamW with an optional
cosine learning-rate schedule, a sparse-training method stepped after every optimizer step, and a
rich progress bar. Anything else belongs in the caller's own loop, which `SparseTrainingMethod`
supports directly.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sparsetorch.evaluation import classification_metrics
from sparsetorch.training.base import TRAINERS, SparseTrainingMethod

Data = Any  # a TensorDataset, or an (inputs, labels) pair of tensors
OPTIMIZERS = ("sgd", "adam", "adamw")


def _tensors(data: Data, what: str) -> tuple[Tensor, Tensor]:
    tensors = getattr(data, "tensors", data)
    if (
        not isinstance(tensors, tuple | list)
        or len(tensors) < 2
        or not all(isinstance(t, Tensor) for t in tensors[:2])
    ):
        raise TypeError(
            f"{what} must be a TensorDataset or an (inputs, labels) pair, got {type(data).__name__}"
        )
    x, y = tensors[0], tensors[1]
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(
            f"{what}: need the same non-zero number of inputs and labels, got {len(x)} and {len(y)}"
        )
    return x, y


def _optimizer(
    spec: str | Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer],
    model: nn.Module,
    *,
    lr: float,
    momentum: float,
    weight_decay: float,
) -> torch.optim.Optimizer:
    if callable(spec):
        return spec(model.parameters())
    if spec == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    if spec == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    if spec == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    raise ValueError(f"optimizer must be one of {OPTIMIZERS} or a callable params -> Optimizer, got {spec!r}")


def evaluate(model: nn.Module, data: Data, *, batch_size: int = 1000) -> dict[str, float]:
    """Accuracy and mean cross-entropy of `model` on `data` (see `evaluation.classification_metrics`)."""
    x, y = _tensors(data, "data")
    device = next(model.parameters()).device
    return classification_metrics(model, x.to(device), y.to(device), batch_size=batch_size)


def fit(
    model: nn.Module,
    method: SparseTrainingMethod | str | None,
    data: Data,
    *,
    epochs: int,
    test: Data | None = None,
    optimizer: str | Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer] = "sgd",
    lr: float = 0.1,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    lr_schedule: str = "cosine",
    batch_size: int = 128,
    accumulate: int = 1,
    seed: int = 0,
    targets: str | Iterable[str] | None = None,
    ignore: str | Iterable[str] | None = None,
    progress: bool = True,
) -> dict[str, float]:
    """Train a classifier with a sparse-training method and return its metrics.

    Args:
        model: the classifier; trained in place (its masks stay attached: call `method.squash()`).
        method: an unprepared `SparseTrainingMethod`, a registered name (with its defaults), or None
            for dense training. It is prepared here with the optimizer and `total_steps`.
        data: training data, a `TensorDataset` or `(inputs, labels)`.
        epochs: passes over `data`.
        test: data to evaluate on after training (adds `test_accuracy`, `test_loss`).
        optimizer: "sgd" (with `momentum`), "adam", "adamw", or a callable `params -> Optimizer`.
        lr, momentum, weight_decay: optimizer settings (ignored by a callable).
        lr_schedule: "cosine" (to 0 over training, per optimizer step; restarted per phase where the
            method says so, see `SparseTrainingMethod.lr_position`) or "constant".
        batch_size: examples per micro-batch.
        accumulate: micro-batches per optimizer step (gradient accumulation); the loss is the mean
            over the examples of the whole step, as with one batch of `accumulate * batch_size`.
        seed: seeds the shuffling and the global RNG inside the call (restored afterwards).
        targets, ignore: passed to `method.prepare`.
        progress: show a rich progress bar.

    Returns:
        `train_loss` (mean over the last epoch), `steps`, `epochs`, `seconds`, `sparsity` (of the
        method's targets; 0 when dense), `mask_updates`, `mask_update_seconds`, and with `test`
        `test_accuracy` and `test_loss`.
    """
    for label, value in (("epochs", epochs), ("batch_size", batch_size), ("accumulate", accumulate)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{label} must be a positive integer, got {value!r}")
    if lr_schedule not in ("cosine", "constant"):
        raise ValueError(f"lr_schedule must be 'cosine' or 'constant', got {lr_schedule!r}")
    x, y = _tensors(data, "data")
    if isinstance(method, str):
        method = TRAINERS.get(method)()
    device = next(model.parameters()).device
    steps_per_epoch = math.ceil(math.ceil(len(x) / batch_size) / accumulate)
    total_steps = epochs * steps_per_epoch
    opt = _optimizer(optimizer, model, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if method is not None:
        method.prepare(model, opt, targets, ignore, total_steps=total_steps)

    def cosine(step: int) -> float:  # to 0 over the run, or over each phase the method defines (IMP)
        position, length = method.lr_position(step) if method is not None else (step, total_steps)
        return 0.5 * (1.0 + math.cos(math.pi * position / length))

    schedule = torch.optim.lr_scheduler.LambdaLR(opt, cosine) if lr_schedule == "cosine" else None
    name = method.name if method is not None else "dense"

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TimeElapsedColumn(),
    )
    began = time.perf_counter()
    train_loss = math.nan
    with torch.random.fork_rng(devices=[]), Progress(*columns, disable=not progress) as bar:
        torch.manual_seed(seed)
        shuffle = torch.Generator().manual_seed(seed)
        task = bar.add_task(f"{name} epoch 1/{epochs}", total=total_steps, loss=math.nan)
        model.train()
        for epoch in range(epochs):
            bar.update(task, description=f"{name} epoch {epoch + 1}/{epochs}")
            batches = torch.randperm(len(x), generator=shuffle).split(batch_size)
            loss_sum = 0.0
            for first in range(0, len(batches), accumulate):
                group = batches[first : first + accumulate]
                examples = sum(len(b) for b in group)
                step_loss = 0.0
                for index in group:
                    xb, yb = x[index].to(device), y[index].to(device)
                    # Sum over the micro-batch / examples of the step: the mean over the step.
                    loss = F.cross_entropy(model(xb), yb, reduction="sum") / examples
                    loss.backward()
                    step_loss += loss.item()
                opt.step()
                if method is not None:
                    method.step()
                opt.zero_grad(set_to_none=True)
                if schedule is not None:
                    schedule.step()
                loss_sum += step_loss * examples
                bar.update(task, advance=1, loss=step_loss)
            train_loss = loss_sum / len(x)
    metrics: dict[str, float] = {
        "train_loss": train_loss,
        "epochs": epochs,
        "steps": total_steps,
        "seconds": time.perf_counter() - began,
        "sparsity": method.sparsity if method is not None else 0.0,
        "mask_updates": method.stats["updates"] if method is not None else 0,
        "mask_update_seconds": method.stats["update_seconds"] if method is not None else 0.0,
    }
    if test is not None:
        metrics.update({f"test_{k}": v for k, v in evaluate(model, test).items()})
    return metrics
