"""Selective Sinkhorn Routing: balanced top-k from an entropic transport plan, on a few training steps.

Paper `ssr`: Nguyen, Ta, Le Duc, Nguyen, Tran (2025), "Selective Sinkhorn Routing for Improved Sparse
Mixture of Experts" (arXiv 2511.08972).

Rule, for T tokens, E experts and fp32 router logits `l = x W_r^T` (no bias):

- cost `C = l` (`cost="logits"`) or `C = softmax(l)` (`cost="probs"`), entropy weight `xi > 0`;
- transport plan `Pi = argmax_{Pi >= 0} <Pi, C> + xi * H(Pi)` subject to `Pi 1_E = 1_T` (each token
  sends one unit) and `Pi^T 1_T = (T / E) 1_E` (each expert receives an equal share), i.e.
  `Pi = diag(a) exp(C / xi) diag(b)`, computed in the log domain by `sparsetorch.routing.gates.sinkhorn`
  (at most `iters` rounds, optionally stopping at `tol`);
- on a Sinkhorn call the gate takes each token's top-k entries of `Pi` and its gating scores *from the
  plan*: `w_tj = Pi_{t e_j} / sum_i Pi_{t e_i}` over the k chosen experts (the KL projection of the
  plan's row onto k experts). Gradients flow through the unrolled Sinkhorn iterations, so the router
  is trained through the balanced scores;
- selectively: in training, each call runs the Sinkhorn branch with probability `p` (a Bernoulli draw
  from the gate's own generator seeded with `seed`); otherwise, and always at eval, the gate is plain
  top-k with Mixtral weights (softmax over the k chosen logits, `"topk_softmax"`);
- no auxiliary balance loss and no z-loss: the returned `balance_loss`, `z_loss` and `entropy` are
  detached measurements, so `MoE`'s `aux["loss"]` carries no gradient through them whatever its
  coefficients. `aux["sinkhorn_applied"]` is 1.0 on Sinkhorn calls, else 0.0.

Assumptions and deviations (the paper's full text and code were not available here; the rule above
follows its abstract, the reference notes in `routing-activation.md` and secondary descriptions of its
Algorithm 2):

- "selective" is read as selective over training steps (a random fraction `p` of router calls), not
  over tokens; the paper reports `p` around 0.1-1% of steps for long runs. The default here is
  `p = 0.05`, because a tiny model trained for hundreds of steps would otherwise see almost no
  Sinkhorn call; the reproduction states the value it uses.
- the selection draw is per gate call (per layer and step), as in independently seeded layers.
- `cost="logits"` with `xi = 1` makes the plan `diag(a) softmax-kernel(l) diag(b)`, the same kernel
  as S-BASE / Megatron Sinkhorn; the paper's cost and temperature settings may differ.
- optional Gaussian noise (`noise`, std, default 0) is added to the logits in training, both
  branches, drawn from the gate's generator; it has no trainable parameters.

Causality: a Sinkhorn call balances over all T tokens, so in training a token's routing depends on
later tokens: the gate is NOT causal-safe (as `SinkhornGate`). At eval it is plain top-k, which is.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import torch
from torch import Tensor

from sparsetorch.routing.gates import GATES, LinearGate, Routing, check_logits, sinkhorn, top_k_gating
from sparsetorch.routing.losses import router_aux

__all__ = ["SSRGate", "ssr_gating", "transport_plan_routing"]

Cost = Literal["logits", "probs"]
_COSTS = ("logits", "probs")


def _check_ssr_args(*, temperature: float, iters: int, cost: str) -> None:
    if isinstance(temperature, bool) or not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"ssr temperature (entropy weight xi) must be a positive number, got {temperature}")
    if isinstance(iters, bool) or not (isinstance(iters, int) and iters >= 1):
        raise ValueError(f"ssr iters must be a positive integer, got {iters}")
    if cost not in _COSTS:
        raise ValueError(f"unknown ssr cost {cost!r}; use one of {_COSTS}")


def transport_plan_routing(
    logits: Tensor,
    k: int,
    *,
    temperature: float = 1.0,
    iters: int = 8,
    tol: float | None = None,
    cost: Cost = "logits",
    check_finite: bool = True,
) -> tuple[Tensor, Tensor, Tensor]:
    """Top-k of the balanced transport plan and its renormalized entries (the Sinkhorn branch).

    Returns `(indices (T, k), weights (T, k), log_plan (T, E))`: `log_plan` has row sums 1 and column
    sums T/E (up to `iters`); `weights` are the chosen plan entries renormalized per token, and carry
    gradients through the Sinkhorn iterations.
    """
    check_logits(logits, k, finite=check_finite)
    _check_ssr_args(temperature=temperature, iters=iters, cost=cost)
    logits = logits.float()
    c = torch.softmax(logits, dim=-1) if cost == "probs" else logits
    log_plan = sinkhorn(c / temperature, iters=iters, tol=tol)  # (T, E)
    indices = torch.topk(log_plan.detach(), k, dim=-1).indices  # (T, k), by decreasing plan mass
    # Pi_tj / sum_chosen Pi_ti: the row potential cancels, so a softmax of the chosen log-plan entries.
    weights = torch.softmax(log_plan.gather(1, indices), dim=-1)
    return indices, weights, log_plan


def ssr_gating(
    logits: Tensor,
    k: int,
    *,
    apply_sinkhorn: bool,
    temperature: float = 1.0,
    iters: int = 8,
    tol: float | None = None,
    cost: Cost = "logits",
    check_finite: bool = True,
) -> Routing:
    """One SSR routing call: the transport-plan branch when `apply_sinkhorn`, else plain top-k.

    The aux values (balance_loss, z_loss, entropy of `softmax(l)`, load) are detached measurements:
    SSR trains with no auxiliary loss. `aux["sinkhorn_applied"]` says which branch ran.
    """
    if apply_sinkhorn:
        indices, weights, _ = transport_plan_routing(
            logits, k, temperature=temperature, iters=iters, tol=tol, cost=cost, check_finite=check_finite
        )
        logits = logits.float()
        aux = router_aux(logits.detach(), torch.softmax(logits.detach(), dim=-1), indices)
        routing = Routing(indices, weights, aux)
    else:
        _check_ssr_args(temperature=temperature, iters=iters, cost=cost)
        routing = top_k_gating(logits, k, mode="topk_softmax", check_finite=check_finite)
    aux = {key: value.detach() for key, value in routing.aux.items()}
    aux["sinkhorn_applied"] = torch.tensor(float(apply_sinkhorn), device=logits.device)
    return Routing(routing.indices, routing.weights, aux)


@GATES.register("ssr")
class SSRGate(LinearGate):
    """Selective Sinkhorn Routing (see the module docstring); NOT causal-safe in training.

    Args:
        p: probability that a training call routes by the transport plan, in [0, 1] (0: top-k with
            no aux loss; 1: Sinkhorn on every training call).
        temperature: the entropy weight xi of the plan (> 0); smaller is closer to hard assignment.
        iters: Sinkhorn rounds (fixed loop length unless `tol`).
        tol: stop early when the column potential moves less than this (a host sync per round).
        cost: "logits" (C = l) or "probs" (C = softmax(l)).
        noise: std of Gaussian noise added to the logits in training (>= 0).
        seed: seeds the branch draws, the noise and the LinearGate jitter.
        **kw: LinearGate arguments (jitter, check_finite, name).
    """

    causal_safe: ClassVar[bool] = False

    def __init__(
        self,
        dim: int,
        num_experts: int,
        k: int,
        *,
        p: float = 0.05,
        temperature: float = 1.0,
        iters: int = 8,
        tol: float | None = None,
        cost: Cost = "logits",
        noise: float = 0.0,
        seed: int = 0,
        **kw,
    ) -> None:
        super().__init__(dim, num_experts, k, seed=seed, **kw)
        if isinstance(p, bool) or not (isinstance(p, (int, float)) and 0.0 <= p <= 1.0):
            raise ValueError(f"ssr p (probability of a Sinkhorn call) must be in [0, 1], got {p!r}")
        _check_ssr_args(temperature=temperature, iters=iters, cost=cost)
        if tol is not None and not (math.isfinite(tol) and tol > 0):
            raise ValueError(f"ssr tol must be a positive number or None, got {tol}")
        if isinstance(noise, bool) or not (math.isfinite(noise) and noise >= 0):
            raise ValueError(f"ssr noise must be a non-negative number, got {noise}")
        self.p, self.temperature, self.iters, self.tol = float(p), float(temperature), iters, tol
        self.cost, self.noise = cost, float(noise)
        self._branch_generator: torch.Generator | None = None  # CPU: the draw is a host decision
        self._noise_generator: torch.Generator | None = None

    def _draw_sinkhorn(self) -> bool:
        if self.p <= 0.0:
            return False
        if self.p >= 1.0:
            return True
        if self._branch_generator is None:
            self._branch_generator = torch.Generator().manual_seed(self.seed)
        return bool(torch.rand((), generator=self._branch_generator) < self.p)

    def forward(self, x: Tensor, **_: Tensor | None) -> Routing:
        logits = self.logits(x)  # (T, E) fp32, finiteness checked there when check_finite
        if not self.training:
            return ssr_gating(logits, self.k, apply_sinkhorn=False, check_finite=False)
        if self.noise > 0:
            if self._noise_generator is None or self._noise_generator.device != logits.device:
                self._noise_generator = torch.Generator(device=logits.device).manual_seed(self.seed + 1)
            noise = torch.randn(logits.shape, generator=self._noise_generator, device=logits.device)
            logits = logits + self.noise * noise
        return ssr_gating(
            logits,
            self.k,
            apply_sinkhorn=self._draw_sinkhorn(),
            temperature=self.temperature,
            iters=self.iters,
            tol=self.tol,
            cost=self.cost,
            check_finite=False,
        )

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, p={self.p}, temperature={self.temperature}, iters={self.iters}"
