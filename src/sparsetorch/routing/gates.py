"""Gates: which experts each token goes to, as pure functions plus thin modules.

Every gate maps tokens `x` of shape (T, dim) to `Routing(indices, weights, aux)`:

- `indices` (T, m) int64: the expert of each of a token's m slots, in [0, E), or -1 for an empty
  slot (expert choice gives a token anywhere from 0 to E experts, so it uses m = E);
- `weights` (T, m) float32: the combine weight of each slot, 0 at empty slots; the layer output is
  `y_t = sum_j weights[t, j] * expert_{indices[t, j]}(x_t)`;
- `aux`: a dict of tensors, returned and never stored (`sparsetorch.routing.losses`): learned
  routers give balance_loss, z_loss, entropy and load; baselines give load only.

The router computes in fp32 whatever the dtype of `x` or of its weight (logits `l = x W_r^T`, no
bias; `p = softmax(l)`, applied exactly once). Weight conventions of the top-k family:

- `"softmax_topk"`: `w = top-k of p`, not renormalized (sum < 1); GShard-style, and Switch at k=1.
- `"topk_softmax"`: softmax over the k selected logits (sum = 1); Mixtral-style. It equals
  softmax_topk renormalized over the chosen slots, `p_i / sum_chosen p_j`. At k=1 the weight is
  always 1, so the task loss gives the router no gradient (only the aux losses train it).

Causality: a gate is `causal_safe` when a token's routing depends on that token only. Top-k, switch,
hash, random and oracle are; expert choice (top-C over the sequence) and Sinkhorn in training
(column sums over all tokens) look at later tokens and carry `causal_safe = False`.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sparsetorch.registry import Registry
from sparsetorch.routing.losses import expert_load, router_aux

WeightMode = Literal["softmax_topk", "topk_softmax"]
_MODES = ("softmax_topk", "topk_softmax")


class Routing(NamedTuple):
    """The output of every gate: slot experts (T, m), slot weights (T, m), aux values."""

    indices: Tensor
    weights: Tensor
    aux: dict[str, Tensor]


# --- pure gating functions ------------------------------------------------------------------------


def check_logits(
    logits: Tensor, k: int | None = None, *, name: str | None = None, finite: bool = True
) -> None:
    """Raise ValueError on logits that are not (T, E), on k outside [1, E], or on NaN / inf values.

    The finiteness check (skipped with `finite=False`) reads one bool from the device, a host sync.
    """
    where = f" in router {name!r}" if name else ""
    if logits.dim() != 2:
        raise ValueError(f"router logits must be (tokens, experts), got shape {tuple(logits.shape)}{where}")
    num_experts = logits.shape[1]
    if k is not None and not 1 <= k <= num_experts:
        raise ValueError(f"k must be in [1, num_experts={num_experts}], got k={k}{where}")
    if finite and not bool(torch.isfinite(logits).all()):
        nan = int(torch.isnan(logits).sum())
        raise ValueError(
            f"non-finite router logits{where}: {nan} NaN and {int(torch.isinf(logits).sum())} inf "
            f"of {logits.numel()}; the input or the router weight has diverged"
        )


def slot_weights(logits: Tensor, indices: Tensor, mode: WeightMode) -> Tensor:
    """Combine weights of the chosen `indices` (T, k) under `mode` (see the module docstring)."""
    if mode not in _MODES:
        raise ValueError(f"unknown weight mode {mode!r}; use one of {_MODES}")
    if mode == "topk_softmax":
        return torch.softmax(logits.float().gather(1, indices), dim=-1)
    return torch.softmax(logits.float(), dim=-1).gather(1, indices)


def top_k_gating(
    logits: Tensor, k: int, *, mode: WeightMode = "topk_softmax", check_finite: bool = True
) -> Routing:
    """Each token takes its k largest logits; weights by `mode`. Causal-safe."""
    check_logits(logits, k, finite=check_finite)
    logits = logits.float()
    probs = torch.softmax(logits, dim=-1)
    indices = torch.topk(logits, k, dim=-1).indices  # (T, k), ordered by decreasing logit
    # softmax_topk reuses the one softmax
    weights = probs.gather(1, indices) if mode == "softmax_topk" else slot_weights(logits, indices, mode)
    return Routing(indices, weights, router_aux(logits, probs, indices))


def expert_choice_gating(logits: Tensor, *, capacity_factor: float, check_finite: bool = True) -> Routing:
    """Expert choice (Zhou et al. 2022): each expert takes its top-C tokens by `p = softmax(l)`.

    `C = clamp(int(capacity_factor * T / E), 1, T)`, so a token gets `capacity_factor` experts on
    average but anywhere from 0 to E; weights are `p_te`. Indices are (T, E) with -1 where expert e
    did not take token t. Load is balanced by construction (balance_loss = 1). NOT causal-safe:
    the top-C runs over the whole sequence, so later tokens change which earlier tokens are taken.
    """
    check_logits(logits, finite=check_finite)
    if not (math.isfinite(capacity_factor) and capacity_factor > 0):
        raise ValueError(f"expert choice capacity_factor must be a positive number, got {capacity_factor}")
    logits = logits.float()
    num_tokens, num_experts = logits.shape
    capacity = min(num_tokens, max(1, int(capacity_factor * num_tokens / num_experts)))
    probs = torch.softmax(logits, dim=-1)
    top = torch.topk(probs.t(), capacity, dim=-1).indices  # (E, C): token ids each expert takes
    chosen = torch.zeros_like(probs, dtype=torch.bool)
    chosen[top, torch.arange(num_experts, device=logits.device)[:, None]] = True  # (T, E)
    experts = torch.arange(num_experts, device=logits.device).expand(num_tokens, -1)
    indices = torch.where(chosen, experts, -1)
    weights = torch.where(chosen, probs, 0.0)
    aux = router_aux(logits, probs, indices)
    aux["unrouted_fraction"] = (~chosen.any(-1)).float().sum() / max(num_tokens, 1)
    return Routing(indices, weights, aux)


def sinkhorn(logits: Tensor, *, iters: int = 8, tol: float | None = None) -> Tensor:
    """Log-domain Sinkhorn: the log of the plan `P = diag(a) exp(l) diag(b)` with row sums 1 and
    column sums T/E, alternating column then row normalization for at most `iters` rounds.

    With `tol`, stops early once the column potential moves by less than `tol` (a host sync per
    round); without it the loop length is fixed, which keeps graph capture possible.
    """
    if iters < 1:
        raise ValueError(f"sinkhorn needs iters >= 1, got {iters}")
    logits = logits.float()
    num_tokens, num_experts = logits.shape
    if num_tokens == 0:
        return logits
    log_col = math.log(num_tokens / num_experts)
    f = torch.zeros(num_tokens, 1, device=logits.device)  # row potential (T, 1)
    g = torch.zeros(1, num_experts, device=logits.device)  # column potential (1, E)
    for _ in range(iters):
        g_new = log_col - torch.logsumexp(logits + f, dim=0, keepdim=True)
        f = -torch.logsumexp(logits + g_new, dim=1, keepdim=True)
        done = tol is not None and bool((g_new - g).abs().max() < tol)
        g = g_new
        if done:
            break
    return logits + f + g


def sinkhorn_gating(
    logits: Tensor,
    k: int,
    *,
    iters: int = 8,
    tol: float | None = None,
    mode: WeightMode = "topk_softmax",
    check_finite: bool = True,
) -> Routing:
    """Sinkhorn-balanced top-k (S-BASE, Megatron): choose from the balanced plan, weigh by `p`.

    The plan is computed without gradient (selection is discrete); weights come from the original
    logits by `mode`, so the router trains through them. NOT causal-safe (column sums over all T).
    """
    check_logits(logits, k, finite=check_finite)
    logits = logits.float()
    with torch.no_grad():
        indices = torch.topk(sinkhorn(logits, iters=iters, tol=tol), k, dim=-1).indices  # (T, k)
    probs = torch.softmax(logits, dim=-1)
    return Routing(indices, slot_weights(logits, indices, mode), router_aux(logits, probs, indices))


def uniform_routing(indices: Tensor, num_experts: int) -> Routing:
    """Weights 1/(non-empty slots) per token for fixed `indices` (hash, random, oracle baselines)."""
    if indices.dim() != 2:
        raise ValueError(f"expert indices must be (tokens, slots), got shape {tuple(indices.shape)}")
    if indices.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"expert indices must be integers, got {indices.dtype}")
    if indices.numel() and (int(indices.max()) >= num_experts or int(indices.min()) < -1):
        raise ValueError(
            f"expert indices must be in [0, {num_experts}) or -1, got values from {int(indices.min())} "
            f"to {int(indices.max())}"
        )
    indices = indices.long()
    valid = (indices >= 0).float()
    weights = valid / valid.sum(-1, keepdim=True).clamp(min=1.0)
    return Routing(indices, weights, {"load": expert_load(indices, num_experts)})


def random_gating(
    num_tokens: int,
    num_experts: int,
    k: int,
    *,
    generator: torch.Generator,
    device: torch.device | None = None,
) -> Routing:
    """k distinct uniformly random experts per token, weights 1/k (Duo-LLM's random baseline)."""
    if not 1 <= k <= num_experts:
        raise ValueError(f"k must be in [1, num_experts={num_experts}], got k={k}")
    noise = torch.rand(num_tokens, num_experts, generator=generator, device=device)
    return uniform_routing(noise.topk(k, dim=-1).indices, num_experts)


# --- modules ----------------------------------------------------------------------------------------


class Gate(nn.Module):
    """Base of all gates: `forward(x (T, dim)) -> Routing`.

    `token_ids` (T,) feeds the hash gate, `expert_ids` (T, k) the oracle gate; the other gates
    ignore them. `name` (set by `sparsetorch.routing.moe.name_gates`) labels error messages.
    """

    causal_safe: ClassVar[bool] = True
    paper: ClassVar[str] = ""  # the paper key a gate implements ("" for the classic gates)

    def __init__(self, dim: int, num_experts: int, k: int, *, name: str | None = None) -> None:
        super().__init__()
        if not (isinstance(dim, int) and dim >= 1 and isinstance(num_experts, int) and num_experts >= 1):
            raise ValueError(f"dim and num_experts must be positive integers, got {dim}, {num_experts}")
        if not (isinstance(k, int) and 1 <= k <= num_experts):
            raise ValueError(f"k must be in [1, num_experts={num_experts}], got k={k}")
        self.dim, self.num_experts, self.k, self.name = dim, num_experts, k, name

    def _check_input(self, x: Tensor) -> None:
        if x.dim() != 2 or x.shape[1] != self.dim:
            where = f" {self.name!r}" if self.name else ""
            raise ValueError(f"gate{where} expects input (tokens, {self.dim}), got {tuple(x.shape)}")

    def forward(
        self, x: Tensor, *, token_ids: Tensor | None = None, expert_ids: Tensor | None = None
    ) -> Routing:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"dim={self.dim}, num_experts={self.num_experts}, k={self.k}"


class LinearGate(Gate):
    """A gate with a learned linear router `l = x W_r^T` (no bias), computed in fp32.

    `jitter` multiplies the router input by U(1 - jitter, 1 + jitter) in training only (Switch,
    MegaBlocks `moe_jitter_eps`), drawn from a generator seeded with `seed`. `check_finite` raises
    on NaN / inf logits, naming the layer (one host sync per call; turn it off under CUDA graphs or
    torch.compile). The pure gating functions called by the gates then skip their own check.
    The jitter generator is not part of the state_dict; it restarts from `seed` on a new device.
    """

    def __init__(
        self,
        dim: int,
        num_experts: int,
        k: int,
        *,
        jitter: float = 0.0,
        seed: int = 0,
        check_finite: bool = True,
        name: str | None = None,
    ) -> None:
        super().__init__(dim, num_experts, k, name=name)
        if not (math.isfinite(jitter) and 0.0 <= jitter < 1.0):
            raise ValueError(f"jitter must be in [0, 1), got {jitter}")
        self.jitter, self.seed, self.check_finite = jitter, seed, check_finite
        self.weight = nn.Parameter(torch.empty(num_experts, dim, dtype=torch.float32))
        self._generator: torch.Generator | None = None
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Router weight ~ N(0, 0.02^2), as the tiny GPT's linear layers."""
        with torch.no_grad():
            self.weight.normal_(0.0, 0.02, generator=generator)

    def logits(self, x: Tensor) -> Tensor:
        """(T, E) fp32 router logits, with jitter applied in training."""
        self._check_input(x)
        x = x.float()
        if self.training and self.jitter > 0:
            if self._generator is None or self._generator.device != x.device:
                self._generator = torch.Generator(device=x.device).manual_seed(self.seed)
            noise = torch.rand(x.shape, generator=self._generator, device=x.device)
            x = x * (1.0 - self.jitter + 2.0 * self.jitter * noise)
        logits = F.linear(x, self.weight.float())
        if self.check_finite:
            check_logits(logits, name=self.name)
        return logits


GATES: Registry[type[Gate]] = Registry("gate")


@GATES.register("top-k")
class TopKGate(LinearGate):
    """Top-k routing; `mode` "topk_softmax" (default, weights sum to 1) or "softmax_topk"."""

    def __init__(
        self, dim: int, num_experts: int, k: int, *, mode: WeightMode = "topk_softmax", **kw
    ) -> None:
        super().__init__(dim, num_experts, k, **kw)
        if mode not in _MODES:
            raise ValueError(f"unknown weight mode {mode!r}; use one of {_MODES}")
        self.mode = mode

    def forward(self, x: Tensor, **_: Tensor | None) -> Routing:
        return top_k_gating(self.logits(x), self.k, mode=self.mode, check_finite=False)


@GATES.register("switch")
class SwitchGate(TopKGate):
    """Switch Transformer routing: top-1, weight `p_top1` (softmax_topk), so the router trains."""

    def __init__(self, dim: int, num_experts: int, k: int = 1, **kw) -> None:
        if k != 1:
            raise ValueError(f"the switch gate routes each token to one expert (k=1), got k={k}")
        super().__init__(dim, num_experts, 1, mode="softmax_topk", **kw)


@GATES.register("expert-choice")
class ExpertChoiceGate(LinearGate):
    """Expert choice; `capacity_factor` (experts per token on average) defaults to k. Leaks the future."""

    causal_safe: ClassVar[bool] = False

    def __init__(
        self, dim: int, num_experts: int, k: int, *, capacity_factor: float | None = None, **kw
    ) -> None:
        super().__init__(dim, num_experts, k, **kw)
        self.capacity_factor = float(k if capacity_factor is None else capacity_factor)
        if not (math.isfinite(self.capacity_factor) and self.capacity_factor > 0):
            raise ValueError(f"expert choice capacity_factor must be positive, got {capacity_factor}")

    def forward(self, x: Tensor, **_: Tensor | None) -> Routing:
        return expert_choice_gating(self.logits(x), capacity_factor=self.capacity_factor, check_finite=False)


@GATES.register("sinkhorn")
class SinkhornGate(LinearGate):
    """Sinkhorn-balanced top-k in training; plain top-k at eval when `eval_greedy` (as BASE layers
    and Megatron), which is causal-safe; training is not."""

    causal_safe: ClassVar[bool] = False

    def __init__(
        self,
        dim: int,
        num_experts: int,
        k: int,
        *,
        iters: int = 8,
        tol: float | None = None,
        mode: WeightMode = "topk_softmax",
        eval_greedy: bool = True,
        **kw,
    ) -> None:
        super().__init__(dim, num_experts, k, **kw)
        if not (isinstance(iters, int) and iters >= 1):
            raise ValueError(f"sinkhorn iters must be a positive integer, got {iters}")
        if mode not in _MODES:
            raise ValueError(f"unknown weight mode {mode!r}; use one of {_MODES}")
        self.iters, self.tol, self.mode, self.eval_greedy = iters, tol, mode, eval_greedy

    def forward(self, x: Tensor, **_: Tensor | None) -> Routing:
        logits = self.logits(x)
        if not self.training and self.eval_greedy:
            return top_k_gating(logits, self.k, mode=self.mode, check_finite=False)
        return sinkhorn_gating(
            logits, self.k, iters=self.iters, tol=self.tol, mode=self.mode, check_finite=False
        )


@GATES.register("hash")
class HashGate(Gate):
    """Hash layers (Roller et al. 2021): a fixed random table maps token id -> k distinct experts.

    The table (`vocab_size`, k) is a buffer drawn from `seed`, so it saves with the state_dict.
    Needs `token_ids` (T,) in forward; weights 1/k.
    """

    def __init__(
        self, dim: int, num_experts: int, k: int, *, vocab_size: int, seed: int = 0, name: str | None = None
    ) -> None:
        super().__init__(dim, num_experts, k, name=name)
        if not (isinstance(vocab_size, int) and vocab_size >= 1):
            raise ValueError(f"hash gate needs a positive vocab_size, got {vocab_size}")
        gen = torch.Generator().manual_seed(seed)
        table = torch.rand(vocab_size, num_experts, generator=gen).topk(k, dim=-1).indices
        self.register_buffer("table", table)

    def forward(self, x: Tensor, *, token_ids: Tensor | None = None, **_: Tensor | None) -> Routing:
        self._check_input(x)
        if token_ids is None:
            raise ValueError("the hash gate routes by token id: pass token_ids (tokens,)")
        if token_ids.shape != x.shape[:1]:
            raise ValueError(f"token_ids must be ({x.shape[0]},), got {tuple(token_ids.shape)}")
        vocab = self.table.shape[0]
        if token_ids.numel() and (int(token_ids.min()) < 0 or int(token_ids.max()) >= vocab):
            raise ValueError(f"token_ids must be in [0, vocab_size={vocab})")
        return uniform_routing(self.table[token_ids.long()], self.num_experts)


@GATES.register("random")
class RandomGate(Gate):
    """k random experts per token from a generator seeded with `seed` (a baseline)."""

    def __init__(self, dim: int, num_experts: int, k: int, *, seed: int = 0, name: str | None = None) -> None:
        super().__init__(dim, num_experts, k, name=name)
        self.seed = seed
        self._generator: torch.Generator | None = None

    def forward(self, x: Tensor, **_: Tensor | None) -> Routing:
        self._check_input(x)
        if self._generator is None or self._generator.device != x.device:
            self._generator = torch.Generator(device=x.device).manual_seed(self.seed)
        return random_gating(x.shape[0], self.num_experts, self.k, generator=self._generator, device=x.device)


@GATES.register("oracle")
class OracleGate(Gate):
    """Routes by given `expert_ids` (T, k) (from an oracle search), weights 1/(non-empty slots)."""

    def forward(self, x: Tensor, *, expert_ids: Tensor | None = None, **_: Tensor | None) -> Routing:
        self._check_input(x)
        if expert_ids is None:
            raise ValueError("the oracle gate needs expert_ids (tokens, k)")
        if expert_ids.shape != (x.shape[0], self.k):
            raise ValueError(f"expert_ids must be ({x.shape[0]}, {self.k}), got {tuple(expert_ids.shape)}")
        return uniform_routing(expert_ids, self.num_experts)
