"""Straightforward references for the routing tests."""

from __future__ import annotations

import torch
from torch import Tensor

from sparsetorch.routing import Experts


def naive_moe(x: Tensor, indices: Tensor, weights: Tensor, experts: Experts) -> Tensor:
    """`y_t = sum_j w_tj * expert_{e_tj}(x_t)`, one token and one slot at a time."""
    rows = []
    for t in range(x.shape[0]):
        y = torch.zeros_like(x[t])
        for j in range(indices.shape[1]):
            e = int(indices[t, j])
            if e >= 0:
                y = y + weights[t, j].to(x.dtype) * experts.expert(e, x[t : t + 1])[0]
        rows.append(y)
    return torch.stack(rows)


def tutel_locations(indices: Tensor, num_experts: int) -> Tensor:
    """Tutel's slot locations from one-hot masks: cumsum(mask_j) - 1, second choices queued after
    all first choices (offset by the first choices' counts)."""
    locs, base = [], torch.zeros(num_experts, dtype=torch.long)
    for j in range(indices.shape[1]):
        mask = torch.nn.functional.one_hot(indices[:, j], num_experts)  # (T, E)
        loc = torch.cumsum(mask, 0) - 1 + base
        locs.append((loc * mask).sum(1))
        base = base + mask.sum(0)
    return torch.stack(locs, 1)


def tutel_capacity(num_tokens: int, num_experts: int, k: int, cf: float, max_load: int) -> int:
    base = (num_tokens + num_experts - 1) // num_experts
    if cf > 0:
        return k * int(cf * base)
    cap = max_load
    return min(cap, k * int(-cf * base)) if cf < 0 else cap
