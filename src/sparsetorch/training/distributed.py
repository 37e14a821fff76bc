"""Keeping masks identical across `torch.distributed` ranks (DDP).

Under DDP every rank holds the same weights (DDP averages the gradients of `original`), but the
growth gradients a method captures (dL/dW of the effective weight) are each rank's own, and a
method's generator may be seeded differently per rank. At a mask update the base therefore
averages the growth gradients over ranks (RigL's reference code sums them across replicas), lets
every rank compute the new masks, and then broadcasts rank 0's masks (as cbsparse does), so the
masks agree even when seeds or floating-point rounding differ. All of this is a no-op unless a
default process group with more than one rank is initialized.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor


def is_distributed() -> bool:
    """Whether a default process group with more than one rank is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_reduce_mean(tensors: dict[str, Tensor], order: list[str]) -> None:
    """Average growth gradients over ranks in a fixed order (RigL sums across replicas)."""
    if not is_distributed():
        return
    world = dist.get_world_size()
    for f in order:
        dist.all_reduce(tensors[f], op=dist.ReduceOp.SUM)
        tensors[f].div_(world)


def broadcast_masks(masks: dict[str, Tensor], order: list[str]) -> None:
    """Replace every rank's masks by rank 0's (as uint8: not every backend sends bool)."""
    if not is_distributed():
        return
    for f in order:
        data = masks[f].to(torch.uint8)
        dist.broadcast(data, src=0)
        masks[f] = data.to(torch.bool)
