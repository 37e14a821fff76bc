"""Shared by the sparse-training reproductions: train LeNet-300-100 on Fashion-MNIST with several
methods at one seed, equal epochs for all, and report each arm's test accuracy.

Every run uses `sparsetorch.training.fit` with the same recipe (SGD, momentum 0.9, lr 0.1 with a
cosine decay, weight decay 5e-4, batch 128); the seed fixes the model initialisation, the data
order and the method's seed, the same for every arm (so arms compare paired). Seeds are repeated
outside, by the bench (`sparsetorch papers run`, 3 seeds at small scale), and combined by
`sparsetorch.papers.stats`. Scales:

- `tiny` (seconds, for tests): 2,048 training images, 1,000 test images, 1 epoch;
- `small`: the full 60,000 / 10,000 split, 2 epochs;
- `full`: the full split, 20 epochs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from sparsetorch.papers.base import check_scale

SCALES: dict[str, dict[str, Any]] = {
    "tiny": {"train": 2048, "test": 1000, "epochs": 1},
    "small": {"train": None, "test": None, "epochs": 2},
    "full": {"train": None, "test": None, "epochs": 20},
}


@dataclass(frozen=True)
class Run:
    """One arm of a comparison.

    Attributes:
        label: the metric prefix (`<label>_accuracy` ...).
        method: builds a fresh, unprepared training method for a seed (None: dense training).
        model: `create_model("lenet-300-100", ...)` config overrides (e.g. widths).
        calibration: training examples given to the method's `calibrate` (pruning at
            initialization); 0 for methods without calibration data.
    """

    label: str
    method: Callable[[int], Any] | None = None
    model: dict[str, Any] = field(default_factory=dict)
    calibration: int = 0


def fashion_data(scale: str) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """`(train, test)` pairs of Fashion-MNIST at `scale` (the first images of each split)."""
    from sparsetorch.data import load_fashion_mnist

    cfg = SCALES[check_scale(scale)]
    train_x, train_y = load_fashion_mnist("train").tensors
    test_x, test_y = load_fashion_mnist("test").tensors
    if cfg["train"]:
        train_x, train_y = train_x[: cfg["train"]], train_y[: cfg["train"]]
    if cfg["test"]:
        test_x, test_y = test_x[: cfg["test"]], test_y[: cfg["test"]]
    return (train_x, train_y), (test_x, test_y)


def accuracies(
    runs: Sequence[Run], scale: str, *, seed: int, epochs: Mapping[str, int] | None = None
) -> tuple[dict[str, float], str]:
    """Train every run at `scale` with `seed`; metrics `<label>_accuracy`, `<label>_sparsity` and
    `<label>_seconds` (the wall time of the run), and a note.

    `epochs` (`{scale: epochs}`) overrides the scale's default number of epochs, the same for
    every run of the comparison; it is then also reported as the metric `epochs`.
    """
    from sparsetorch.models import create_model
    from sparsetorch.training import fit

    cfg = SCALES[check_scale(scale)]
    n_epochs = int(epochs[scale]) if epochs is not None else cfg["epochs"]
    (train_x, train_y), (test_x, test_y) = fashion_data(scale)
    metrics: dict[str, float] = {} if epochs is None else {"epochs": n_epochs}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one intra-op thread is faster on a shared machine
    try:
        for run in runs:
            model = create_model("lenet-300-100", seed=seed, **run.model)
            method = run.method(seed) if run.method is not None else None
            if run.calibration:
                g = torch.Generator().manual_seed(seed)
                pick = torch.randperm(len(train_x), generator=g)[: run.calibration]
                method.calibrate((train_x[pick], train_y[pick]))
            began = time.perf_counter()
            out = fit(
                model,
                method,
                (train_x, train_y),
                epochs=n_epochs,
                test=(test_x, test_y),
                seed=seed,
                progress=False,
            )
            metrics[f"{run.label}_seconds"] = time.perf_counter() - began
            metrics[f"{run.label}_accuracy"] = out["test_accuracy"]
            metrics[f"{run.label}_sparsity"] = out["sparsity"]
    finally:
        torch.set_num_threads(threads)
    n_train, n_test = len(train_x), len(test_x)
    note = (
        f"{scale}: Fashion-MNIST ({n_train} train / {n_test} test images), LeNet-300-100, "
        f"{n_epochs} epoch(s) for every method, seed {seed}; SGD lr 0.1 cosine, "
        "momentum 0.9, wd 5e-4, batch 128"
    )
    return metrics, note
