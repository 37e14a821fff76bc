"""Training tasks: train LeNet-300-100 / LeNet-5 sparse on Fashion-MNIST, measure test accuracy.

Every method gets the same budget (epochs, training images, optimizer, learning rate, batch); the
dense baseline trains the same model with no method. Pruning-at-initialization methods score on
one mini-batch of the training subset, as SNIP does. The training subset, the model's init and
the method's generator all come from the run's seed.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from sparsetorch.bench.tasks.base import DENSE, TASKS, RunSpec, Task, size_metrics
from sparsetorch.patterns import parse_pattern


class FashionMNISTTask(Task):
    # 2: `fit` restarts the learning-rate schedule at every IMP phase (and anneals in closed form).
    version: ClassVar[int] = 2
    kind = "training"
    metric = "test_accuracy"
    higher_is_better = True
    model_name = ""
    reserved_params: ClassVar[frozenset[str]] = frozenset({"seed", "sparsity", "pattern"})  # set by the run
    default_budget: ClassVar[dict[str, Any]] = {
        "epochs": 2,
        "train_samples": 60000,
        "batch_size": 128,
        "optimizer": "sgd",
        "lr": 0.05,
    }

    def run(self, spec: RunSpec) -> dict[str, Any]:
        from sparsetorch.data import load_fashion_mnist
        from sparsetorch.discovery import create_method
        from sparsetorch.models import create_model
        from sparsetorch.training import fit

        b = self.budget(spec)
        x, y = load_fashion_mnist("train").tensors
        xt, yt = load_fashion_mnist("test").tensors
        gen = torch.Generator().manual_seed(spec.seed)
        keep = torch.randperm(len(x), generator=gen)[: int(b["train_samples"])]
        model = create_model(self.model_name, seed=spec.seed)
        method = None
        if spec.method != DENSE:
            extra: dict[str, Any] = {"sparsity": spec.sparsity}
            if spec.pattern != "unstructured":
                extra["pattern"] = spec.pattern
            if spec.sparsity is None:  # N:M: the pattern fixes every layer's sparsity
                extra.update(sparsity=parse_pattern(spec.pattern).sparsity, distribution="uniform")
            method = create_method(spec.method, seed=spec.seed, **{**extra, **spec.params})
            if hasattr(method, "calibrate"):  # pruning at init (snip, grasp, synflow): one mini-batch
                first = keep[: int(b["batch_size"])]
                method.calibrate((x[first], y[first]))
        metrics = fit(
            model,
            method,
            (x[keep], y[keep]),
            epochs=int(b["epochs"]),
            test=(xt, yt),
            optimizer=b["optimizer"],
            lr=float(b["lr"]),
            batch_size=int(b["batch_size"]),
            seed=spec.seed,
            progress=False,
        )
        return {**metrics, **size_metrics(model)}


class FashionMNISTMLP(FashionMNISTTask):
    name = "fmnist-mlp"
    model_name = "lenet-300-100"
    description = "LeNet-300-100 trained sparse on Fashion-MNIST; test accuracy on the 10,000 test images"


class FashionMNISTLeNet5(FashionMNISTTask):
    name = "fmnist-lenet5"
    model_name = "lenet-5"
    description = "LeNet-5 trained sparse on Fashion-MNIST; test accuracy on the 10,000 test images"


TASKS.register("fmnist-mlp", FashionMNISTMLP())
TASKS.register("fmnist-lenet5", FashionMNISTLeNet5())
