"""Dispatch: send each token to its experts and combine the weighted outputs.

Both modes compute `y_t = sum_j w_tj * expert_{e_tj}(x_t)` over a token's non-empty slots and
never build GShard's (T, E, C) one-hot dispatch tensor.

- `dropless` (default; MegaBlocks): sort the T*k slots by expert (a stable sort, so ties keep
  token order), gather the tokens expert-contiguously, run one matmul per expert over its
  contiguous slice (`experts.grouped`), and scatter back. Memory O(T*k*d); nothing is dropped.
  The per-expert slice sizes are read on the host (`.tolist()`, one sync), as in MegaBlocks.
- `capacity_dispatch` (Tutel semantics): each expert has C slots; a slot's position in its expert's
  queue is the running count of earlier slots for that expert (`slot_locations`), and slots at
  position >= C are dropped. A dropped slot contributes 0: a token whose slots are all dropped
  gets y_t = 0 and only the block's residual carries it. Experts run as one batched matmul over a
  static (E, C, d) buffer. With T tokens, E experts and k slots (`base = ceil(T / E)`):

    cf > 0 : C = k * int(cf * base)                          static
    cf = 0 : C = max_e load_e                                dynamic, never drops
    cf < 0 : C = min(max_e load_e, k * int(-cf * base))      dynamic, bounded by |cf|

  then C is rounded up to a multiple of `alignment`. Under expert parallelism Tutel all-reduces
  the max load over ranks; the caller passes that as `max_load`.

Slot order decides who wins a slot. `"slot"` (Tutel, fairseq): every token's first choice is
queued before any second choice, tokens in input order. `"token"`: all k slots of token t before
token t+1. Only "token" with the tokens in time order is causal (a later token never takes an
earlier token's slot); `MoE(causal=True)` uses it.
"""

from __future__ import annotations

import math
from typing import Literal, Protocol

import torch
from torch import Tensor

SlotOrder = Literal["slot", "token"]


class GroupedExperts(Protocol):
    """What the dispatchers need from a bank of experts (see `sparsetorch.routing.moe.Experts`)."""

    num_experts: int

    def grouped(self, x: Tensor, counts: list[int]) -> Tensor:
        """Rows of `x` (n, d) are expert-contiguous, `counts[e]` rows for expert e; returns (n, d)."""
        ...

    def batched(self, x: Tensor) -> Tensor:
        """(E, C, d) -> (E, C, d): expert e applied to `x[e]`."""
        ...


def check_routing(x: Tensor, indices: Tensor, weights: Tensor, num_experts: int) -> None:
    """Raise ValueError unless x is (T, d), indices and weights are (T, m), indices in [-1, E)."""
    if x.dim() != 2:
        raise ValueError(f"dispatch expects tokens (T, d), got {tuple(x.shape)}")
    if indices.dim() != 2 or indices.shape[0] != x.shape[0] or weights.shape != indices.shape:
        raise ValueError(
            f"routing indices {tuple(indices.shape)} and weights {tuple(weights.shape)} must both be "
            f"({x.shape[0]}, slots) for {x.shape[0]} tokens"
        )
    if indices.numel() and (int(indices.max()) >= num_experts or int(indices.min()) < -1):
        raise ValueError(f"routing indices must be in [0, {num_experts}) or -1 for an empty slot")


def sort_by_expert(indices: Tensor, num_experts: int) -> tuple[Tensor, Tensor]:
    """Order of the flat slots (T*m,) by expert, empty slots last, and the per-expert counts (E,)."""
    flat = indices.reshape(-1)  # (T*m,), slot s belongs to token s // m
    key = torch.where(flat < 0, num_experts, flat)
    order = torch.argsort(key, stable=True)
    counts = torch.bincount(key, minlength=num_experts + 1)[:num_experts]
    return order, counts


def dropless(
    x: Tensor, indices: Tensor, weights: Tensor, experts: GroupedExperts
) -> tuple[Tensor, dict[str, Tensor]]:
    """Dropless dispatch: sort slots by expert, grouped matmul over contiguous slices, combine.

    Returns `y` (T, d) and aux {"dropped_slots": 0, "dropped_fraction": 0.0}.
    """
    check_routing(x, indices, weights, experts.num_experts)
    num_tokens, slots = indices.shape
    order, counts = sort_by_expert(indices, experts.num_experts)
    sizes = counts.tolist()  # host sync: slice sizes
    order = order[: sum(sizes)]  # drop empty slots (sorted last)
    token = order // slots  # (n,) token of each sorted slot
    out = experts.grouped(x[token], sizes)  # (n, d), expert-contiguous
    out = out * weights.reshape(-1)[order].to(out.dtype)[:, None]
    # Scatter back to (T*m, d) and sum a token's slots: no atomics, so deterministic on GPUs too.
    y = out.new_zeros(num_tokens * slots, x.shape[1]).index_copy(0, order, out)
    y = y.view(num_tokens, slots, x.shape[1]).sum(1)  # (T, d)
    zero = torch.zeros((), device=x.device)
    return y, {"dropped_slots": zero.long(), "dropped_fraction": zero}


def slot_locations(indices: Tensor, num_experts: int, *, order: SlotOrder = "slot") -> Tensor:
    """Position (T, m) of each slot in its expert's queue (0-based), -1 for empty slots.

    Equal to Tutel's `cumsum(mask) - 1` locations, computed with a stable sort instead of (T, E)
    one-hot masks.
    """
    if order not in ("slot", "token"):
        raise ValueError(f"slot order must be 'slot' or 'token', got {order!r}")
    num_tokens, slots = indices.shape
    seq = indices.t().reshape(-1) if order == "slot" else indices.reshape(-1)  # queue order (T*m,)
    key = torch.where(seq < 0, num_experts, seq)
    perm = torch.argsort(key, stable=True)
    counts = torch.bincount(key, minlength=num_experts + 1)
    starts = torch.cumsum(counts, 0) - counts  # first queue position of each expert
    loc = torch.empty_like(seq)
    loc[perm] = torch.arange(seq.numel(), device=seq.device) - starts[key[perm]]
    loc = loc.view(slots, num_tokens).t() if order == "slot" else loc.view(num_tokens, slots)
    return torch.where(indices < 0, -1, loc)


def capacity(
    num_tokens: int, num_experts: int, k: int, capacity_factor: float, *, max_load: int, alignment: int = 1
) -> int:
    """Tutel's expert capacity C (see the module docstring); `max_load` = max slots on one expert."""
    if not math.isfinite(capacity_factor):
        raise ValueError(f"capacity_factor must be finite, got {capacity_factor}")
    if not (isinstance(alignment, int) and alignment >= 1):
        raise ValueError(f"alignment must be a positive integer, got {alignment}")
    base = -(-num_tokens // num_experts)  # ceil(T / E)
    if capacity_factor > 0:
        cap = k * int(capacity_factor * base)
    else:
        cap = max_load
        if capacity_factor < 0:
            cap = min(cap, k * int(-capacity_factor * base))
    return -(-cap // alignment) * alignment


def max_expert_load(indices: Tensor, num_experts: int) -> int:
    """The most non-empty slots routed to one expert (a host sync, as Tutel's dynamic capacity)."""
    valid = indices[indices >= 0]
    return int(torch.bincount(valid, minlength=num_experts).max()) if valid.numel() else 0


def capacity_dispatch(
    x: Tensor,
    indices: Tensor,
    weights: Tensor,
    experts: GroupedExperts,
    *,
    capacity_factor: float,
    order: SlotOrder = "slot",
    alignment: int = 1,
    cap: int | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Capacity-factor dispatch with Tutel's semantics; dropped slots contribute 0.

    `k` in the capacity rule is the number of slots m of `indices`. `cap` overrides the rule with a
    capacity agreed elsewhere (expert parallelism: the same C on every rank). Returns `y` (T, d) and
    aux {"dropped_slots", "dropped_fraction" (of non-empty slots), "capacity"}.
    """
    num_experts = experts.num_experts
    check_routing(x, indices, weights, num_experts)
    num_tokens, slots = indices.shape
    valid = indices >= 0
    loc = slot_locations(indices, num_experts, order=order)  # (T, m)
    if cap is None:
        cap = capacity(
            num_tokens, num_experts, slots, capacity_factor, max_load=max_expert_load(indices, num_experts),
            alignment=alignment,
        )  # fmt: skip
    elif cap < 0:
        raise ValueError(f"capacity must be >= 0, got {cap}")
    keep = valid & (loc < cap)
    flat = keep.reshape(-1).nonzero().squeeze(1)  # (n,) kept slots, token-major
    token = flat // slots
    expert = indices.reshape(-1)[flat]
    pos = loc.reshape(-1)[flat]
    buf = x.new_zeros(num_experts, cap, x.shape[1]).index_put((expert, pos), x[token])  # (E, C, d)
    out = experts.batched(buf)[expert, pos]  # (n, d)
    out = out * weights.reshape(-1)[flat].to(out.dtype)[:, None]
    y = out.new_zeros(num_tokens * slots, x.shape[1]).index_copy(0, flat, out)
    y = y.view(num_tokens, slots, x.shape[1]).sum(1)  # (T, d)
    dropped = (valid & ~keep).sum()
    aux = {
        "dropped_slots": dropped,
        "dropped_fraction": dropped.float() / valid.sum().clamp(min=1).float(),
        "capacity": torch.tensor(cap, device=x.device),
    }
    return y, aux
