"""BlockFFN: a ReLU + RMSNorm routed MoE-FFN with token- and chunk-level sparsity objectives.

Paper: `blockffn` -- Song et al. (2025), "BlockFFN: Towards End-Side Acceleration-Friendly
Mixture-of-Experts with Chunk-Level Activation Sparsity".

For a token x (d,), E experts (small FFNs) and router weight W_r (E, d):

    z = W_r x                        router logits (no bias)
    r = RMSNorm(ReLU(z))             scores; r_e = 0 exactly where z_e <= 0, so the number of
                                     active experts varies per token and the router is differentiable
    y = sum_e r_e * Expert_e(x)      only experts with r_e > 0 need computing

Sparsity metrics, over a (B, T) batch with A_te = [r_te > 0]:

    TLS   = 1 - mean_t (sum_e A_te) / E                         token-level sparsity
    CLS@L = 1 - mean_c (sum_e max_{t in c} A_te) / E            chunk-level sparsity: the experts
                                                                that any token of an L-token chunk
                                                                uses must all be loaded (L = 8)

Training losses (returned, never stored; p_te = sigmoid(alpha z_te), alpha = 100, a smooth
"expert e is active for token t"):

- balance: E * sum_e P_e f_e with P_e = mean_t r_te / sum_e' r_te' and f_e the fraction of active
  (token, expert) pairs that are expert e's; 1 when balanced, E when one expert does all the work;
- locality: the binary cross-entropy between consecutive tokens' activation patterns,
  mean_{t>1, e} BCE(logit = alpha z_{t-1,e}, target = p_te), so that a token reuses its
  predecessor's experts;
- chunk: mean_{c, e} [1 - prod_{t in c} (1 - p_te)], the expected fraction of experts a chunk
  activates (a smooth CLS density); it needs T divisible by the chunk size;
- l1: mean_t sum_e r_te (the paper schedules its weight with a cosine ramp, `cosine_ramp`).

Weights matter: a strong locality loss drives the router to one static expert set per layer (then
CLS = TLS and the layer is just a narrower dense FFN), and a strong L1 switches whole layers off
(TLS = 1); `papers.blockffn` records the weights that avoid both at tiny-GPT scale.

Deviations: experts are `routing.moe.Experts` of kind "ffn" (GELU) rather than the paper's SiLU
experts; at this scale every expert is evaluated densely and multiplied by r (identical outputs to
skipping the zero-score experts; the sparse kernels are the paper's deployment step); chunks are
formed within each sequence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sparsetorch.activations.base import ACTIVATIONS
from sparsetorch.routing.moe import Experts

__all__ = [
    "BlockFFN",
    "BlockFFNAux",
    "BlockFFNConfig",
    "balance_loss",
    "check_chunks",
    "chunk_loss",
    "chunk_sparsity",
    "cosine_ramp",
    "locality_loss",
    "token_sparsity",
]


@dataclass(frozen=True)
class BlockFFNConfig:
    """BlockFFN hyperparameters.

    Args:
        num_experts: E.
        expert_hidden: hidden width of each expert.
        chunk_size: L of CLS and the chunk loss (the paper: 8).
        alpha: steepness of p = sigmoid(alpha z) (the paper: 100).
        eps: RMSNorm epsilon.
    """

    num_experts: int = 16
    expert_hidden: int = 32
    chunk_size: int = 8
    alpha: float = 100.0
    eps: float = 1e-6

    def __post_init__(self) -> None:
        if min(self.num_experts, self.expert_hidden, self.chunk_size) < 1:
            raise ValueError("num_experts, expert_hidden and chunk_size must be positive")
        if self.alpha <= 0:
            raise ValueError(f"alpha must be positive, got {self.alpha}")


def check_chunks(seq_len: int, chunk_size: int) -> int:
    """The number of chunks; raises ValueError unless `seq_len` is a multiple of `chunk_size`."""
    if chunk_size < 1 or seq_len % chunk_size:
        raise ValueError(
            f"sequence length {seq_len} is not divisible by the chunk size {chunk_size}: "
            f"pad or crop sequences to a multiple of {chunk_size}"
        )
    return seq_len // chunk_size


def _btE(x: Tensor) -> Tensor:
    if x.dim() == 2:
        return x.unsqueeze(0)
    if x.dim() != 3:
        raise ValueError(f"expected (B, T, E) or (T, E) scores, got shape {tuple(x.shape)}")
    return x


def token_sparsity(scores: Tensor) -> Tensor:
    """TLS: the mean over tokens of the fraction of experts with score 0; scores (B, T, E) or (T, E)."""
    return (scores == 0).float().mean()


def chunk_sparsity(scores: Tensor, chunk_size: int = 8) -> Tensor:
    """CLS@L: 1 - mean over L-token chunks of the fraction of experts any token of the chunk uses.

    Raises:
        ValueError: T is not divisible by `chunk_size`.
    """
    s = _btE(scores)
    b, t, e = s.shape
    n = check_chunks(t, chunk_size)
    used = (s != 0).reshape(b, n, chunk_size, e).any(dim=2)  # (B, chunks, E)
    return 1.0 - used.float().mean()


def balance_loss(scores: Tensor) -> Tensor:
    """E * sum_e P_e f_e: P_e the mean normalized score, f_e the share of active pairs; 1 = balanced."""
    s = scores.reshape(-1, scores.shape[-1]).float()  # (N, E)
    e = s.shape[-1]
    probs = s / s.sum(-1, keepdim=True).clamp_min(1e-9)  # all-zero tokens contribute nothing
    active = (s > 0).float()
    share = active.sum(0) / active.sum().clamp_min(1.0)  # (E,)
    return e * (probs.mean(0) * share).sum()


def locality_loss(logits: Tensor, alpha: float = 100.0) -> Tensor:
    """mean_{t>1,e} BCE(sigmoid(alpha z_{t-1}), target sigmoid(alpha z_t)); logits (B, T, E)."""
    z = _btE(logits).float()
    if z.shape[1] < 2:
        return z.new_zeros(())
    return F.binary_cross_entropy_with_logits(alpha * z[:, :-1], torch.sigmoid(alpha * z[:, 1:]))


def chunk_loss(probs: Tensor, chunk_size: int = 8) -> Tensor:
    """mean_{c,e} [1 - prod_{t in c} (1 - p_te)]: the expected fraction of experts a chunk uses.

    Raises:
        ValueError: T is not divisible by `chunk_size`.
    """
    p = _btE(probs).float()
    b, t, e = p.shape
    n = check_chunks(t, chunk_size)
    log_off = torch.log1p(-p.clamp(max=1.0 - 1e-6)).reshape(b, n, chunk_size, e).sum(2)  # log prod(1 - p)
    return 1.0 - log_off.exp().mean()


def cosine_ramp(step: int, total: int, start: float, end: float) -> float:
    """A weight rising from `start` to `end` along a half cosine over `total` steps (then `end`)."""
    if total <= 0 or step >= total:
        return end
    return start + (end - start) * 0.5 * (1.0 - math.cos(math.pi * step / total))


class BlockFFNAux(NamedTuple):
    """The losses and metrics of one BlockFFN forward pass (losses carry gradients)."""

    scores: Tensor
    balance: Tensor
    locality: Tensor
    chunk: Tensor
    l1: Tensor
    tls: Tensor
    cls: Tensor


@ACTIVATIONS.register("blockffn")
class BlockFFN(nn.Module):
    """`y = sum_e RMSNorm(ReLU(W_r x))_e Expert_e(x)`; forward(x (B, T, d)) -> (y, BlockFFNAux).

    Raises:
        ValueError: `dim` is not a positive integer.
        TypeError: `config` is not a `BlockFFNConfig`.
    """

    paper: ClassVar[str] = "blockffn"

    def __init__(self, dim: int, config: BlockFFNConfig = BlockFFNConfig()) -> None:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim must be a positive integer, got {dim!r}")
        if not isinstance(config, BlockFFNConfig):
            raise TypeError(f"config must be a BlockFFNConfig, got {type(config).__name__}")
        super().__init__()
        self.config = config
        self.router = nn.Linear(dim, config.num_experts, bias=False)
        self.norm_weight = nn.Parameter(torch.ones(config.num_experts))
        self.experts = Experts(config.num_experts, dim, config.expert_hidden, kind="ffn", bias=False)

    def route(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(router logits z, scores r), both (..., E)."""
        z = self.router(x)
        a = F.relu(z)
        r = a * torch.rsqrt(a.pow(2).mean(-1, keepdim=True) + self.config.eps) * self.norm_weight
        return z, r

    def forward(self, x: Tensor) -> tuple[Tensor, BlockFFNAux]:
        c = self.config
        z, r = self.route(x)  # (B, T, E)
        flat = x.reshape(-1, x.shape[-1])  # (N, d)
        out = self.experts.batched(flat.unsqueeze(0).expand(c.num_experts, -1, -1))  # (E, N, d)
        y = torch.einsum("ne,end->nd", r.reshape(-1, c.num_experts), out).reshape(x.shape)
        p = torch.sigmoid(c.alpha * z)
        t = x.shape[-2] if x.dim() == 3 else x.shape[0]
        chunked = t % c.chunk_size == 0
        zero = x.new_zeros(())
        aux = BlockFFNAux(
            scores=r.detach(),
            balance=balance_loss(r),
            locality=locality_loss(z, c.alpha),
            chunk=chunk_loss(p, c.chunk_size) if chunked else zero,
            l1=r.sum(-1).mean(),
            tls=token_sparsity(r.detach()),
            cls=chunk_sparsity(r.detach(), c.chunk_size) if chunked else zero.new_full((), float("nan")),
        )
        return y, aux
