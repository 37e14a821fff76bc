"""Shared helpers of the training tests: a tiny MLP, seeded batches, fast schedules."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sparsetorch.training import TRAINERS

TOTAL = 12  # optimizer steps of a test run
SPARSITY = 0.75
# Tiny schedules so that every method updates its masks within a few steps.
FAST = {
    "gmp": {"update_every": 2, "end": 8},
    "granet": {"update_every": 2, "end": 8},
    "rigl": {"update_every": 2, "end": 10},
    "set": {"update_every": 2},
    "random-pruning": {},
}
TARGETS = ("0.weight", "2.weight")  # the last Linear is the classifier, left dense by default


def net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3))


def method(name: str, **overrides):
    config = {"sparsity": SPARSITY, **FAST[name], **overrides}
    return TRAINERS.get(name)(**config)


def batches(n: int, *, seed: int = 1, size: int = 8):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, 12, generator=g), torch.randint(0, 3, (size,), generator=g)) for _ in range(n)]


def train(model, m, opt, data, *, after_step=None) -> None:
    """One optimizer step per batch; `after_step(updated)` runs after each `m.step()`."""
    for x, y in data:
        F.cross_entropy(model(x), y).backward()
        opt.step()
        updated = m.step()
        opt.zero_grad()
        if after_step is not None:
            after_step(updated)


def prepared(name: str, *, model_seed: int = 0, opt: str = "sgd", **overrides):
    model = net(model_seed)
    if opt == "sgd":
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    elif opt == "adam":
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=0.1, amsgrad=True)
    m = method(name, **overrides)
    m.prepare(model, optimizer, total_steps=TOTAL)
    return model, optimizer, m


def tiny_classification(n: int = 64, d: int = 5, c: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` random inputs of `d` features and labels of `c` classes (seed 0): the substrate tests' data."""
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, d, generator=g), torch.randint(0, c, (n,), generator=g)
