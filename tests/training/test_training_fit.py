"""`fit` and `evaluate` on synthetic data, and a tiny real Fashion-MNIST smoke run."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import TensorDataset

from sparsetorch.masks import get_masks as attached
from sparsetorch.training import TRAINERS, evaluate, fit
from tests.training.training_testutil import net


def blobs(n=96, seed=0):
    """Three separable Gaussian blobs in 12 dimensions."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    centers = torch.randn(3, 12, generator=g) * 3
    return centers[y] + torch.randn(n, 12, generator=g), y


@pytest.mark.parametrize("name", ["rigl", "gmp"])
def test_fit_trains_to_the_target_sparsity(name):
    model = net()
    data = blobs()
    m = TRAINERS.get(name)(sparsity=0.5, update_every=2)
    metrics = fit(model, m, data, epochs=3, test=blobs(seed=0), batch_size=16, lr=0.05, progress=False)
    assert metrics["steps"] == 18 and metrics["epochs"] == 3
    assert metrics["sparsity"] == pytest.approx(0.5, abs=1e-9)
    assert metrics["mask_updates"] >= 4
    assert metrics["test_accuracy"] > 0.6
    assert set(attached(model)) == {"0.weight", "2.weight"}


def test_fit_accepts_names_datasets_and_accumulation():
    x, y = blobs()
    one = fit(net(), "set", TensorDataset(x, y), epochs=1, batch_size=32, progress=False)
    two = fit(net(), "set", (x, y), epochs=1, batch_size=16, accumulate=2, progress=False)
    assert one["steps"] == two["steps"] == 3
    assert two["train_loss"] == pytest.approx(one["train_loss"], rel=1e-4)


def test_fit_dense_and_progress_bar():
    x, y = blobs()
    metrics = fit(net(), None, (x, y), epochs=1, optimizer="adamw", lr=0.01, lr_schedule="constant")
    assert metrics["sparsity"] == 0.0 and metrics["mask_updates"] == 0
    assert set(evaluate(net(), (x, y))) == {"accuracy", "loss"}


def test_fit_is_seeded_and_restores_the_global_rng():
    x, y = blobs()
    state = torch.get_rng_state()
    a = fit(net(), "rigl", (x, y), epochs=1, batch_size=16, seed=3, progress=False)
    assert torch.equal(torch.get_rng_state(), state)
    b = fit(net(), "rigl", (x, y), epochs=1, batch_size=16, seed=3, progress=False)
    assert a["train_loss"] == b["train_loss"]


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"optimizer": "lbfgs"}, ValueError),
        ({"epochs": 0}, ValueError),
        ({"accumulate": 0}, ValueError),
        ({"lr_schedule": "step"}, ValueError),
        ({"data": [1, 2]}, TypeError),
    ],
)
def test_fit_bad_input(kwargs, error):
    args = {"epochs": 1, "progress": False, "data": blobs(), **kwargs}
    with pytest.raises(error):
        fit(net(), None, **args)


@pytest.mark.data
def test_fashion_mnist_smoke():
    from sparsetorch.data import load_fashion_mnist
    from sparsetorch.models import create_model

    train = load_fashion_mnist("train").tensors
    test = load_fashion_mnist("test").tensors
    model = create_model("lenet-300-100", seed=0)
    metrics = fit(
        model,
        TRAINERS.get("rigl")(sparsity=0.9, update_every=4),
        (train[0][:512], train[1][:512]),
        epochs=1,
        test=(test[0][:256], test[1][:256]),
        batch_size=16,
        optimizer="adam",
        lr=3e-3,
        weight_decay=0.0,
        progress=False,
    )
    assert metrics["sparsity"] == pytest.approx(0.9, abs=1e-6)
    assert metrics["mask_updates"] == 6  # 32 steps, every 4 until 75% (step 24)
    assert metrics["test_accuracy"] > 0.25  # 10 classes: chance is 0.1 (measured 0.43)
