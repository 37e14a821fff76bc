"""The sparse mixture-of-experts layer: MoE = gate + experts + dispatcher.

`MoE(dim, num_experts, k, expert="ffn"|"glu", gate="top-k")(x) -> (y, aux)`, `x` of shape
(..., dim). `y = sum_j w_j * expert_{e_j}(x)` has the shape of x and does *not* include the
residual: the block adds it (`x + moe(norm(x))[0]`), so a token whose slots are all dropped in
capacity mode leaves the block unchanged. `aux` merges the gate's values (balance_loss, z_loss,
entropy, load, ...), the dispatcher's (dropped_slots, dropped_fraction, capacity) and
`loss = balance_coef * balance_loss + z_coef * z_loss`, to add to the task loss. Nothing is stored
on the module between calls.

Experts hold stacked weights (E, d, h) and (E, h, d): `"ffn"` is `W2 GELU(W1 x + b1) + b2`, `"glu"`
is SwiGLU `W2 (SiLU(Wg x) * W1 x)` (+ biases when `bias`).

Train/eval asymmetry is explicit: `capacity_factor` applies in training, `eval_capacity_factor`
(default: the same) at eval; `None` means dropless. Jitter and Sinkhorn's eval behaviour are gate
arguments (`gate_kwargs`).

Causality: with `causal=True` the layer refuses gates that are not `causal_safe`, and capacity mode
queues slots token by token in time order (input (B, S, d) is read time-major), so a later token
never takes an earlier token's slot. Dropless dispatch with a causal-safe gate is causal as is.
"""

from __future__ import annotations

import itertools
import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sparsetorch.routing.dispatch import capacity_dispatch, dropless
from sparsetorch.routing.gates import GATES, Gate, Routing

ExpertKind = Literal["ffn", "glu"]


class Experts(nn.Module):
    """E independent feed-forward experts with stacked weights, run per slice or batched."""

    def __init__(
        self, num_experts: int, dim: int, hidden: int, *, kind: ExpertKind = "ffn", bias: bool = True
    ) -> None:
        super().__init__()
        if kind not in ("ffn", "glu"):
            raise ValueError(f"unknown expert kind {kind!r}; use 'ffn' or 'glu'")
        if min(num_experts, dim, hidden) < 1:
            raise ValueError(
                f"num_experts, dim and hidden must be positive, got {num_experts}, {dim}, {hidden}"
            )
        self.num_experts, self.dim, self.hidden, self.kind = num_experts, dim, hidden, kind
        self.w1 = nn.Parameter(torch.empty(num_experts, dim, hidden))
        self.wg = nn.Parameter(torch.empty(num_experts, dim, hidden)) if kind == "glu" else None
        self.w2 = nn.Parameter(torch.empty(num_experts, hidden, dim))
        self.b1 = nn.Parameter(torch.empty(num_experts, hidden)) if bias else None
        self.b2 = nn.Parameter(torch.empty(num_experts, dim)) if bias else None
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """U(+-1/sqrt(fan_in)) for weights and biases, as `nn.Linear`."""
        with torch.no_grad():
            for p, fan_in in ((self.w1, self.dim), (self.wg, self.dim), (self.b1, self.dim)):
                if p is not None:
                    p.uniform_(-1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in), generator=generator)
            for p in (self.w2, self.b2):
                if p is not None:
                    p.uniform_(-1 / math.sqrt(self.hidden), 1 / math.sqrt(self.hidden), generator=generator)

    def _hidden(self, x: Tensor, w1: Tensor, wg: Tensor | None, b1: Tensor | None) -> Tensor:
        h = x @ w1
        if b1 is not None:
            h = h + b1
        if wg is None:
            return F.gelu(h)
        return F.silu(x @ wg) * h

    def expert(self, e: int, x: Tensor) -> Tensor:
        """Expert e on rows x (n, d) -> (n, d)."""
        wg = None if self.wg is None else self.wg[e]
        h = self._hidden(x, self.w1[e], wg, None if self.b1 is None else self.b1[e])
        out = h @ self.w2[e]
        return out if self.b2 is None else out + self.b2[e]

    def grouped(self, x: Tensor, counts: list[int]) -> Tensor:
        """Grouped matmul: rows of x (n, d) are expert-contiguous, counts[e] rows for expert e.

        One `torch._grouped_mm` per weight where torch has it for these dtypes and widths (one kernel
        over all experts, as MegaBlocks' grouped GEMM); otherwise one matmul per non-empty expert.
        """
        if len(counts) != self.num_experts or sum(counts) != x.shape[0]:
            raise ValueError(
                f"counts {counts} do not split {x.shape[0]} rows over {self.num_experts} experts"
            )
        if self._can_group(x):
            offs = torch.tensor(counts, device=x.device).cumsum(0).to(torch.int32)  # end row of each expert
            starts = list(itertools.accumulate(counts[:-1], initial=0))  # first row of each expert

            def mm(inp: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
                out = torch._grouped_mm(inp, w, offs=offs)
                if b is not None:  # in place per expert slice: 5-7x cheaper than adding b[row_expert]
                    for e, (lo, n) in enumerate(zip(starts, counts, strict=True)):
                        if n:
                            out.narrow(0, lo, n).add_(b[e])
                return out

            h = mm(x, self.w1, self.b1)
            h = F.gelu(h) if self.wg is None else F.silu(mm(x, self.wg, None)) * h
            return mm(h, self.w2, self.b2)
        parts = [self.expert(e, rows) for e, rows in enumerate(x.split(counts)) if rows.shape[0]]
        return torch.cat(parts) if parts else x.new_zeros(0, self.dim)

    def _can_group(self, x: Tensor) -> bool:
        # torch's grouped GEMM takes fp32/bf16/fp16 with 16-byte aligned rows (d and h), same dtypes.
        grouped_mm = getattr(torch, "_grouped_mm", None)
        return (
            grouped_mm is not None
            and x.shape[0] > 0
            and x.dtype in (torch.float32, torch.bfloat16, torch.float16)
            and x.dtype == self.w1.dtype
            and (self.dim * x.element_size()) % 16 == 0
            and (self.hidden * x.element_size()) % 16 == 0
            and x.is_contiguous()
        )

    def batched(self, x: Tensor) -> Tensor:
        """(E, C, d) -> (E, C, d), one batched matmul per layer (static shapes)."""
        b1 = None if self.b1 is None else self.b1[:, None]
        out = self._hidden(x, self.w1, self.wg, b1) @ self.w2  # (E, C, h) @ (E, h, d)
        return out if self.b2 is None else out + self.b2[:, None]

    def extra_repr(self) -> str:
        return f"num_experts={self.num_experts}, dim={self.dim}, hidden={self.hidden}, kind={self.kind!r}"


def _check_cf(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number or None (dropless), got {value!r}")
    return float(value)


class MoE(nn.Module):
    """Sparse MoE layer; see the module docstring for conventions.

    Args:
        dim: model width d.
        num_experts: E.
        k: experts per token (expert choice: experts per token on average).
        expert: "ffn" or "glu".
        hidden: expert width h (default 4 * dim).
        gate: a registered gate name (`GATES`) or a `Gate` built for (dim, num_experts, k).
        gate_kwargs: extra arguments for a named gate (mode, jitter, vocab_size, ...).
        capacity_factor: None for dropless, else Tutel's cf (> 0 static, 0 dynamic, < 0 bounded).
        eval_capacity_factor: cf at eval; defaults to `capacity_factor`.
        alignment: capacity is rounded up to a multiple of this.
        causal: refuse non-causal gates; queue capacity slots in time order.
        balance_coef, z_coef: weights of balance_loss and z_loss in `aux["loss"]`.
        bias: experts carry biases.
        seed: initialize the experts (and a gate built by name) from this seed, else from the
            global RNG.
        name: label for error messages (e.g. the layer's FQN; see `name_gates`).
    """

    def __init__(
        self,
        dim: int,
        num_experts: int,
        k: int = 2,
        *,
        expert: ExpertKind = "ffn",
        hidden: int | None = None,
        gate: str | Gate = "top-k",
        gate_kwargs: dict | None = None,
        capacity_factor: float | None = None,
        eval_capacity_factor: float | None = None,
        alignment: int = 1,
        causal: bool = False,
        balance_coef: float = 1e-2,
        z_coef: float = 1e-3,
        bias: bool = True,
        seed: int | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__()
        named = isinstance(gate, str)
        if isinstance(gate, str):
            gate = GATES.get(gate)(dim, num_experts, k, name=name, **(gate_kwargs or {}))
        elif not isinstance(gate, Gate):
            raise TypeError(f"gate must be a registered name or a Gate, got {type(gate).__name__}")
        elif gate_kwargs:
            raise ValueError("gate_kwargs only applies to a gate given by name")
        if (gate.dim, gate.num_experts, gate.k) != (dim, num_experts, k):
            raise ValueError(
                f"gate is built for dim={gate.dim}, num_experts={gate.num_experts}, k={gate.k}; "
                f"the layer has dim={dim}, num_experts={num_experts}, k={k}"
            )
        if causal and not gate.causal_safe:
            raise ValueError(
                f"gate {type(gate).__name__} is not causal-safe (its routing of a token depends on later "
                "tokens); use a causal-safe gate such as 'top-k' with causal=True"
            )
        self.capacity_factor = _check_cf("capacity_factor", capacity_factor)
        self.eval_capacity_factor = _check_cf("eval_capacity_factor", eval_capacity_factor)
        if self.eval_capacity_factor is None:
            self.eval_capacity_factor = self.capacity_factor
        if not (isinstance(alignment, int) and alignment >= 1):
            raise ValueError(f"alignment must be a positive integer, got {alignment}")
        if min(balance_coef, z_coef) < 0:
            raise ValueError(f"balance_coef and z_coef must be >= 0, got {balance_coef}, {z_coef}")
        self.dim, self.num_experts, self.k = dim, num_experts, k
        self.alignment, self.causal = alignment, causal
        self.balance_coef, self.z_coef = balance_coef, z_coef
        self.gate = gate
        self.experts = Experts(self._num_local_experts(), dim, hidden or 4 * dim, kind=expert, bias=bias)
        if seed is not None:
            gen = torch.Generator().manual_seed(seed)
            if named and hasattr(self.gate, "reset_parameters"):  # a given gate keeps its weights
                self.gate.reset_parameters(gen)
            self.experts.reset_parameters(gen)

    def _flat(self, t: Tensor | None, lead: int) -> Tensor | None:
        """(..., *rest) -> (tokens, *rest), time-major for (B, S, ...) inputs of a causal layer."""
        if t is None:
            return None
        if self.causal and lead == 2:
            t = t.transpose(0, 1)  # (S, B, ...): queue slots in time order
        return t.reshape(-1, *t.shape[lead:])

    def forward(
        self, x: Tensor, *, token_ids: Tensor | None = None, expert_ids: Tensor | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """y (..., dim) and aux; `token_ids` (...) feed the hash gate, `expert_ids` (..., k) the oracle."""
        if x.dim() < 1 or x.shape[-1] != self.dim:
            raise ValueError(f"MoE expects input (..., {self.dim}), got {tuple(x.shape)}")
        if self.causal and x.dim() > 3:
            raise ValueError(f"a causal MoE expects (batch, seq, dim) or (seq, dim), got {tuple(x.shape)}")
        lead = x.dim() - 1
        if token_ids is not None and token_ids.shape != x.shape[:-1]:
            raise ValueError(f"token_ids must have shape {tuple(x.shape[:-1])}, got {tuple(token_ids.shape)}")
        if expert_ids is not None and expert_ids.shape[:-1] != x.shape[:-1]:
            raise ValueError(
                f"expert_ids must have shape {(*x.shape[:-1], self.k)}, got {tuple(expert_ids.shape)}"
            )
        tokens = self._flat(x, lead)  # (T, d)
        routing = self.gate(
            tokens, token_ids=self._flat(token_ids, lead), expert_ids=self._flat(expert_ids, lead)
        )
        y, daux = self._dispatch(tokens, routing)
        if self.causal and lead == 2:
            y = y.view(x.shape[1], x.shape[0], -1).transpose(0, 1)  # back to (B, S, d)
        aux = {**routing.aux, **daux, "loss": moe_loss(routing.aux, self.balance_coef, self.z_coef)}
        return y.reshape(x.shape).to(x.dtype), aux

    def _num_local_experts(self) -> int:
        """Experts held by this module (all of them; a shard under expert parallelism)."""
        return self.num_experts

    def _dispatch(self, tokens: Tensor, routing: Routing) -> tuple[Tensor, dict[str, Tensor]]:
        cf = self.capacity_factor if self.training else self.eval_capacity_factor
        if cf is None:
            return dropless(tokens, routing.indices, routing.weights, self.experts)
        return capacity_dispatch(
            tokens, routing.indices, routing.weights, self.experts,
            capacity_factor=cf, order="token" if self.causal else "slot", alignment=self.alignment,
        )  # fmt: skip

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, num_experts={self.num_experts}, k={self.k}, "
            f"capacity_factor={self.capacity_factor}, causal={self.causal}"
        )


def moe_loss(aux: dict[str, Tensor], balance_coef: float, z_coef: float) -> Tensor:
    """`balance_coef * balance_loss + z_coef * z_loss`, over the terms the gate returned."""
    loss = torch.zeros((), device=aux["load"].device)
    if "balance_loss" in aux:
        loss = loss + balance_coef * aux["balance_loss"]
    if "z_loss" in aux:
        loss = loss + z_coef * aux["z_loss"]
    return loss


def name_gates(model: nn.Module) -> None:
    """Set each gate's `name` to its FQN, so NaN-logit errors say which layer."""
    for fqn, module in model.named_modules():
        if isinstance(module, Gate):
            module.name = fqn
