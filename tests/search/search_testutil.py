"""Shared by the search tests: a small learnable task and a tensor that fails when it is touched."""

from __future__ import annotations

import torch

from sparsetorch.search import SparseMLPSpace

SMALL = {"hidden": (24, 12), "in_features": 20, "num_classes": 5}


class Tripwire(torch.Tensor):
    """A tensor that raises on any torch operation while `Tripwire.armed` is set."""

    armed = False

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if cls.armed:
            raise AssertionError(f"the test set was touched during the search ({func})")
        return super().__torch_function__(func, types, args, kwargs or {})


def task(n: int, *, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` Gaussian inputs of 20 features labelled by a fixed random linear teacher (5 classes)."""
    teacher = torch.randn(20, 5, generator=torch.Generator().manual_seed(123))
    x = torch.randn(n, 20, generator=torch.Generator().manual_seed(seed))
    return x, (x @ teacher).argmax(-1)


def splits():
    """Disjoint train / val / test sets of the task; test wrapped in a `Tripwire`."""
    (tx, ty), (vx, vy), (sx, sy) = task(512, seed=1), task(128, seed=2), task(128, seed=3)
    return (tx, ty), (vx, vy), (sx.as_subclass(Tripwire), sy.as_subclass(Tripwire))


def space(sparsity: float = 0.8, **kwargs) -> SparseMLPSpace:
    return SparseMLPSpace(sparsity=sparsity, **{**SMALL, **kwargs})
