"""`fit` and `evaluate`: classification on the training substrate (`training.loop.train_steps`).

Not a framework: one model, in-memory tensors, cross-entropy, SGD/Adam/AdamW with an optional
cosine learning-rate schedule, a sparse-training method stepped after every optimizer step, and a
rich progress bar. Anything else hooks in through `on_step` / `on_eval` (see `training.loop`), or
calls `train_steps` with its own `loss_fn`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sparsetorch.evaluation import classification_metrics
from sparsetorch.training.base import TRAINERS, SparseTrainingMethod
from sparsetorch.training.loop import (
    Loss,
    OnEval,
    OnStep,
    Step,
    TrainLog,
    as_callbacks,
    epoch_batches,
    train_mode,
    train_steps,
)

__all__ = ["OPTIMIZERS", "Data", "build_optimizer", "evaluate", "fit", "progress_bar", "tensors"]

Data = Any  # a TensorDataset, or an (inputs, labels) pair of tensors
OPTIMIZERS = ("sgd", "adam", "adamw")


def tensors(data: Data, what: str = "data") -> tuple[Tensor, Tensor]:
    """`(inputs, labels)` of a `TensorDataset` or a pair of tensors, of the same non-zero length.

    Raises:
        TypeError: `data` is neither.
        ValueError: empty, or inputs and labels of different lengths.
    """
    found = getattr(data, "tensors", data)
    if (
        not isinstance(found, tuple | list)
        or len(found) < 2
        or not all(isinstance(t, Tensor) for t in found[:2])
    ):
        raise TypeError(
            f"{what} must be a TensorDataset or an (inputs, labels) pair, got {type(data).__name__}"
        )
    x, y = found[0], found[1]
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(
            f"{what}: need the same non-zero number of inputs and labels, got {len(x)} and {len(y)}"
        )
    return x, y


def build_optimizer(
    spec: str | Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer],
    model: nn.Module,
    *,
    lr: float,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
) -> torch.optim.Optimizer:
    """The optimizer `spec` names ("sgd" with `momentum`, "adam", "adamw") over `model`, or `spec(params)`."""
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
    """Accuracy and mean cross-entropy of `model` on `data`: the one classification evaluation."""
    x, y = tensors(data, "data")
    device = next(model.parameters()).device
    return classification_metrics(model, x.to(device), y.to(device), batch_size=batch_size)


def progress_bar(enabled: bool, *fields: str):
    """A rich progress bar (description, bar, count, elapsed time, then `fields` as text columns)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    columns += [TextColumn(f) for f in fields]
    return Progress(*columns, disable=not enabled)


def _check_options(*, lr_schedule: str, **counts: int) -> None:
    for label, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{label} must be a positive integer, got {value!r}")
    if lr_schedule not in ("cosine", "constant"):
        raise ValueError(f"lr_schedule must be 'cosine' or 'constant', got {lr_schedule!r}")


def _method_metrics(method: SparseTrainingMethod | None) -> dict[str, float]:
    if method is None:
        return {"sparsity": 0.0, "mask_updates": 0, "mask_update_seconds": 0.0}
    stats = method.stats
    return {
        "sparsity": method.sparsity,
        "mask_updates": stats["updates"],
        "mask_update_seconds": stats["update_seconds"],
    }


def _classification_loss(x: Tensor, y: Tensor, device: torch.device) -> Callable[[nn.Module, Any], Loss]:
    def loss_fn(model: nn.Module, micro: tuple[Tensor, int]) -> Loss:
        index, examples = micro
        # Sum over the micro-batch / examples of the step: the mean over the step.
        loss = F.cross_entropy(model(x[index].to(device)), y[index].to(device), reduction="sum") / examples
        return Loss(loss)

    return loss_fn


def _with_step_size(batches: Iterable[Any]):
    for group in batches:  # each micro-batch carries the example count of its whole step
        examples = sum(len(b) for b in group)
        yield type(group)((index, examples) for index in group)


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
    on_step: OnStep | Sequence[OnStep] | None = None,
    on_eval: OnEval | Sequence[OnEval] | None = None,
    eval_at: Iterable[int] = (),
    log: TrainLog | None = None,
) -> dict[str, float]:
    """Train a classifier with a sparse-training method and return its metrics.

    Args:
        model: the classifier; trained in place (its masks stay attached: call `method.finish()`).
        method: an unprepared `SparseTrainingMethod`, a registered name (with its defaults), or None
            for dense training. It is prepared here with the optimizer and `total_steps`, and stepped
            after every optimizer step (before `on_step`).
        data: training data, a `TensorDataset` or `(inputs, labels)`; epochs: passes over it.
        test: data to evaluate on after training (adds `test_accuracy`, `test_loss`).
        optimizer: "sgd" (with `momentum`), "adam", "adamw", or a callable `params -> Optimizer`.
        lr, momentum, weight_decay: optimizer settings (ignored by a callable).
        lr_schedule: "cosine" (to 0 over training, per optimizer step; restarted per phase where the
            method says so, see `SparseTrainingMethod.lr_position`) or "constant".
        batch_size: examples per micro-batch.
        accumulate: micro-batches per optimizer step (gradient accumulation); the loss is the mean
            over the examples of the whole step, as with one batch of `accumulate * batch_size`.
        seed: seeds the shuffling and the global RNG inside the call (restored afterwards).
        targets, ignore: passed to `method.prepare`. progress: show a rich progress bar.
        on_step, on_eval, eval_at: callbacks of `training.loop.train_steps`.
        log: a `TrainLog` that receives the run's rows (per-step `loss` and the `on_step` values, the
            `on_eval` rows), as with `fit_lm`, whose return value it is; None: not kept.

    The model is trained in train mode and left in the mode it was in before the call.

    Returns:
        `train_loss` (mean over the last epoch), `steps`, `epochs`, `seconds`, `sparsity` (of the
        method's targets; 0 when dense), `mask_updates`, `mask_update_seconds`, and with `test`
        `test_accuracy` and `test_loss`.
    """
    _check_options(epochs=epochs, batch_size=batch_size, accumulate=accumulate, lr_schedule=lr_schedule)
    x, y = tensors(data, "data")
    if isinstance(method, str):
        method = TRAINERS.get(method)()
    steps_per_epoch = math.ceil(math.ceil(len(x) / batch_size) / accumulate)
    total_steps = epochs * steps_per_epoch
    opt = build_optimizer(optimizer, model, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if method is not None:
        method.prepare(model, opt, targets, ignore, total_steps=total_steps)
    schedule = _cosine(opt, method, total_steps) if lr_schedule == "cosine" else None
    batches = epoch_batches(len(x), batch_size, torch.Generator().manual_seed(seed), accumulate=accumulate)
    began = time.perf_counter()
    with progress_bar(progress, "loss {task.fields[loss]:.4f}") as bar, train_mode(model):
        monitor = _FitStep(method, schedule, bar, epochs, steps_per_epoch, len(x))
        loss_fn = _classification_loss(x, y, next(model.parameters()).device)
        callbacks = [monitor, *as_callbacks(on_step, "on_step")]
        train_steps(
            model, opt, _with_step_size(batches), loss_fn, steps=total_steps, seed=seed, on_step=callbacks,
            on_eval=on_eval, eval_at=eval_at, log=log,
        )  # fmt: skip
    metrics: dict[str, float] = {"train_loss": monitor.train_loss, "epochs": epochs, "steps": total_steps}
    metrics |= {"seconds": time.perf_counter() - began, **_method_metrics(method)}
    if test is not None:
        metrics.update({f"test_{k}": v for k, v in evaluate(model, test).items()})
    return metrics


def _cosine(
    opt: torch.optim.Optimizer, method: SparseTrainingMethod | None, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Cosine to 0 over the run, or over each phase the method defines (IMP's rewinding rounds)."""

    def factor(step: int) -> float:
        position, length = method.lr_position(step) if method is not None else (step, total_steps)
        return 0.5 * (1.0 + math.cos(math.pi * position / length))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


class _FitStep:
    """`fit`'s own `on_step`: the method's and the schedule's step, the epoch loss, the progress bar."""

    def __init__(
        self,
        method: SparseTrainingMethod | None,
        schedule: torch.optim.lr_scheduler.LambdaLR | None,
        bar: Any,
        epochs: int,
        steps_per_epoch: int,
        examples: int,
    ) -> None:
        self.method, self.schedule, self.bar = method, schedule, bar
        self.epochs, self.steps_per_epoch, self.examples = epochs, steps_per_epoch, examples
        self.name = method.name if method is not None else "dense"
        self.task = bar.add_task(
            f"{self.name} epoch 1/{epochs}", total=epochs * steps_per_epoch, loss=math.nan
        )
        self.loss_sum, self.train_loss = 0.0, math.nan  # the mean over the last finished epoch

    def __call__(self, step: Step) -> None:
        if self.method is not None:
            self.method.step()
        if self.schedule is not None:
            self.schedule.step()
        self.loss_sum += step.loss * step.batch[0][1]  # the step's mean loss times its examples
        if (step.index + 1) % self.steps_per_epoch == 0:
            self.loss_sum, self.train_loss = 0.0, self.loss_sum / self.examples
        epoch = min(step.index + 1, step.steps - 1) // self.steps_per_epoch + 1
        self.bar.update(
            self.task, advance=1, loss=step.loss, description=f"{self.name} epoch {epoch}/{self.epochs}"
        )
