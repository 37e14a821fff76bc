"""Aux values of a router, returned by the gates and never stored.

- `balance_loss`: `E * sum_e f_e * P_e` with f counted over all k slots; 1.0 when balanced.
- `z_loss`: ST-MoE's `mean_t (logsumexp_e l_te)^2`.
- `routing_entropy`: mean per-token entropy of `p_t` (nats).
- `expert_load`: slots per expert, int64 (never fp16: counts above 65504 would overflow).

All are computed in fp32 (int64 for counts), and are 0 for an empty batch (a rank may get no
tokens). The coefficients (1e-2, 1e-3 typical) are applied by
the caller (`sparsetorch.routing.moe.MoE`).
"""

from __future__ import annotations

import torch
from torch import Tensor


def expert_load(indices: Tensor, num_experts: int) -> Tensor:
    """Slots per expert, (E,) int64, counting every non-empty slot (all k of them)."""
    flat = indices.reshape(-1)
    return torch.bincount(flat[flat >= 0], minlength=num_experts)


def balance_loss(probs: Tensor, indices: Tensor) -> Tensor:
    """Load-balancing loss `E * sum_e f_e * P_e`; 1.0 when the load is balanced.

    `f_e` is the fraction of all non-empty slots (all k per token, as MegaBlocks and Megatron; not
    GShard's top-1 only) assigned to e, `P_e = mean_t p_te`. With uniform f it is `sum_e P_e = 1`
    whatever P is; f carries no gradient.
    """
    num_experts = probs.shape[-1]
    load = expert_load(indices, num_experts).to(torch.float32)
    f = load / load.sum().clamp(min=1.0)
    mean_p = probs.float().sum(0) / max(probs.shape[0], 1)  # 0, not NaN, for no tokens
    return num_experts * (f * mean_p).sum()


def z_loss(logits: Tensor) -> Tensor:
    """ST-MoE router z-loss `mean_t (logsumexp_e l_te)^2`; bounds the logits, does not balance."""
    return torch.logsumexp(logits.float(), dim=-1).square().sum() / max(logits.shape[0], 1)


def routing_entropy(probs: Tensor) -> Tensor:
    """Mean over tokens of the entropy (nats) of the router distribution `p_t`; max `log E`."""
    p = probs.float()
    return -torch.special.xlogy(p, p).sum() / max(p.shape[0], 1)


def router_aux(logits: Tensor, probs: Tensor, indices: Tensor) -> dict[str, Tensor]:
    """The aux values of a learned router: balance_loss, z_loss, entropy (losses unweighted), load."""
    return {
        "balance_loss": balance_loss(probs, indices),
        "z_loss": z_loss(logits),
        "entropy": routing_entropy(probs),
        "load": expert_load(indices, probs.shape[-1]),
    }
