"""Training helpers shared by the architecture searches and their reproductions, on the substrate.

One recipe for every arm of a comparison (proxy training during a search, the final training of a
found or a random configuration, the dense parent): SGD with momentum 0.9, weight decay 5e-4, a
cosine learning rate from `lr` to 0 over the run, batch 128, shuffled by a seeded generator; the
same recipe as `sparsetorch.papers.fashion_runs`. Masks attached with `SparseConfig.apply` stay
enforced (the effective weight is `where(mask, w, 0)`). `train` runs `training.loop.train_steps`;
`evaluate` is the one classification evaluation, `training.evaluate`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sparsetorch._checks import check_int
from sparsetorch.training.fit import evaluate
from sparsetorch.training.loop import Loss, check_finite, epoch_batches, train_steps

if TYPE_CHECKING:
    from sparsetorch.search.space import SparseConfig

__all__ = ["Data", "check_data", "evaluate", "retrain", "split_validation", "train"]

Data = tuple[Tensor, Tensor]  # (inputs (N, ...), labels (N,))


def check_data(data: object, what: str) -> Data:
    """`data` as an `(inputs, labels)` pair of equal, non-zero length.

    Raises:
        ValueError: anything else.
    """
    tensors = getattr(data, "tensors", data)
    if (
        not isinstance(tensors, tuple | list)
        or len(tensors) != 2
        or not all(isinstance(t, Tensor) for t in tensors)
    ):
        raise ValueError(f"{what} must be an (inputs, labels) pair of tensors, got {type(data).__name__}")
    x, y = tensors
    if len(x) == 0 or len(x) != len(y):
        raise ValueError(
            f"{what}: need the same non-zero number of inputs and labels, got {len(x)}, {len(y)}"
        )
    return x, y


def split_validation(data: Data, *, val_size: int, seed: int = 0) -> tuple[Data, Data]:
    """Split `data` into disjoint `(train, val)` parts by a seeded permutation; `val` has `val_size`.

    Raises:
        ValueError: `val_size` not in `[1, len(data) - 1]`.
    """
    x, y = check_data(data, "data")
    check_int("val_size", val_size, maximum=len(x) - 1)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    val, tr = order[:val_size], order[val_size:]
    return (x[tr], y[tr]), (x[val], y[val])


def train(
    model: nn.Module,
    data: Data,
    *,
    steps: int,
    batch_size: int = 128,
    lr: float = 0.1,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    seed: int = 0,
    val: Data | None = None,
    eval_at: Sequence[int] = (),
) -> list[float]:
    """Train `model` in place for `steps` optimizer steps (the recipe of the module docstring).

    Args:
        steps: optimizer steps; batches cycle through seeded reshuffles of `data`.
        eval_at: steps after which the accuracy on `val` is recorded (e.g. every epoch's end).

    Returns:
        The validation accuracies at `eval_at`, in order (empty without `eval_at`).

    Raises:
        RuntimeError: the loss became non-finite.
    """
    x, y = check_data(data, "data")
    check_int("steps", steps)
    if eval_at and val is None:
        raise ValueError("eval_at needs val data")
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    curve: list[float] = []

    def loss_fn(model: nn.Module, index: Tensor) -> Loss:
        return Loss(F.cross_entropy(model(x[index]), y[index]))

    def record(steps_done: int, model: nn.Module) -> None:
        assert val is not None
        curve.append(evaluate(model, val)["accuracy"])

    model.train()
    train_steps(
        model,
        opt,
        epoch_batches(len(x), batch_size, torch.Generator().manual_seed(seed)),
        loss_fn,
        steps=steps,
        on_step=[lambda step: schedule.step(), check_finite],
        on_eval=record if eval_at else None,
        eval_at=eval_at,
    )
    return curve


def retrain(
    config: SparseConfig | None,
    parent: nn.Module,
    data: Data,
    *,
    epochs: int,
    val: Data,
    test: Data,
    seed: int = 0,
    batch_size: int = 128,
    lr: float = 0.1,
) -> dict[str, object]:
    """Train `config` (None: the dense parent) from the parent's initial weights and test it.

    The parent is copied, not modified. The validation accuracy is recorded after every epoch (the
    convergence curve); the test set is evaluated once, after training.

    Returns:
        `test_accuracy`, `test_loss`, `val_curve` (one accuracy per epoch) and `sparsity`.
    """
    check_int("epochs", epochs)
    x, _ = check_data(data, "data")
    model = copy.deepcopy(parent)
    if config is not None:
        config.apply(model)
    per_epoch = math.ceil(len(x) / batch_size)
    curve = train(
        model,
        data,
        steps=epochs * per_epoch,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        val=val,
        eval_at=[per_epoch * (e + 1) for e in range(epochs)],
    )
    metrics = evaluate(model, test)
    return {
        "test_accuracy": metrics["accuracy"],
        "test_loss": metrics["loss"],
        "val_curve": curve,
        "sparsity": 0.0 if config is None else config.sparsity,
    }
