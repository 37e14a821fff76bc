"""Similarity-aware and attention-aware routing: routing probabilities smoothed over a graph of tokens.

Paper `graph-of-tokens-moe`: Nguyen et al. (2025), "Improving Routing in Sparse Mixture of Experts
with Graph of Tokens". Plain softmax gating picks each token's experts independently; these gates let
a token's expert choice lean on the choices of similar tokens, which the paper shows lowers the
entropy of expert selection and the routing fluctuation late in training.

Rule, for one sequence of S tokens with gate inputs `x_i`, fp32 router logits `l_i = W_r x_i` and
`p_i = softmax(l_i)`:

- a row-stochastic token graph `G` (S, S) with `G_ij = 0` for `j > i` (causal mask: a token only
  mixes with itself and earlier tokens);
- smoothed routing distribution `q_i = sum_j G_ij p_j`; each token takes the top-k experts of `q_i`
  with weights `q_i[e] / sum_chosen q_i` (the chosen mass renormalized, as `"topk_softmax"` does
  for `p`);
- similarity-aware (`"similarity-aware"`): `G_ij = softmax_{j <= i}(cos(x_i, x_j) / tau)`, a
  parameter-free similarity graph of the gate inputs (self-similarity is the largest, so a token
  keeps most of its own vote when `tau` is small);
- attention-aware (`"attention-aware"`): `G` is the attention matrix of the preceding attention
  layer (heads averaged), passed as `attention` (B, S, S); without one the gate falls back to the
  parameter-free causal attention `softmax_{j <= i}(x_i . x_j / sqrt(d))` of its input.

Aux values: `router_aux` on `q` (balance_loss, entropy of `q`, load) and the z-loss of `l`, plus
`token_entropy`, the entropy of the unsmoothed `p`.

Layout: gates see flat tokens (T, d). `layout=(B, S)` says they are B sequences of S tokens,
batch-major; `sequence_moe` (and `models.moe_variants.graph_moe_gpt` for the tiny GPT) pass it, with the
attention matrix. Without a layout (the plain `MoE` passes none) the T tokens are one sequence in the
given order: a causal `MoE` flattens (B, S, d) time-major, so that stays causal in time but mixes
tokens of different sequences at the same or earlier positions; use `sequence_moe` for per-sequence
graphs.

Causality: both gates are `causal_safe`: `G` is lower-triangular by construction, and an `attention`
matrix with weight on a later token is refused (ValueError).

Deviations: the paper's full text was not available here; the smoothing `q = G p` over the (causal)
similarity or attention graph follows its abstract, and the cosine graph with temperature `tau` is
our parameter-free choice (the paper's similarity may be learned). The attention matrix is detached:
the router does not train the attention through the graph.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sparsetorch._deprecation import moved
from sparsetorch.routing.gates import GATES, LinearGate, Routing, check_logits
from sparsetorch.routing.losses import router_aux, routing_entropy
from sparsetorch.routing.moe import MoE, moe_loss

__all__ = [
    "AttentionAwareGate",
    "GraphGate",
    "SimilarityAwareGate",
    "attention_with_weights",
    "causal_attention_graph",
    "check_graph",
    "graph_smoothed_gating",
    "sequence_moe",
    "similarity_graph",
]


def _causal_softmax(scores: Tensor, causal: bool) -> Tensor:
    """Row softmax of (B, S, S) scores, with entries j > i masked out when `causal`."""
    if causal:
        s = scores.shape[-1]
        future = torch.ones(s, s, dtype=torch.bool, device=scores.device).triu(1)
        scores = scores.masked_fill(future, float("-inf"))
    return torch.softmax(scores, dim=-1)


def similarity_graph(h: Tensor, *, temperature: float = 0.1, causal: bool = True) -> Tensor:
    """`G_ij = softmax_j(cos(h_i, h_j) / temperature)` over j <= i (all j unless `causal`).

    `h` (B, S, d) -> G (B, S, S) fp32, rows sum to 1.
    """
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"similarity temperature must be a positive number, got {temperature}")
    hn = F.normalize(h.float(), dim=-1)
    return _causal_softmax(hn @ hn.transpose(-1, -2) / temperature, causal)


def causal_attention_graph(h: Tensor, *, causal: bool = True) -> Tensor:
    """Parameter-free dot-product attention `softmax_j(h_i . h_j / sqrt(d))`, (B, S, d) -> (B, S, S)."""
    h = h.float()
    return _causal_softmax(h @ h.transpose(-1, -2) / math.sqrt(h.shape[-1]), causal)


def check_graph(graph: Tensor, batch: int, seq: int, *, causal: bool = True) -> None:
    """Raise ValueError unless `graph` is (batch, seq, seq), finite, non-negative and (when `causal`)
    has no weight on later tokens. Reads a few values from the device (a host sync)."""
    if graph.shape != (batch, seq, seq):
        raise ValueError(f"token graph must be ({batch}, {seq}, {seq}), got {tuple(graph.shape)}")
    if not bool(torch.isfinite(graph).all()) or bool((graph < 0).any()):
        raise ValueError("token graph must be finite and non-negative")
    if causal and seq > 1 and bool(graph.triu(1).ne(0).any()):
        raise ValueError(
            "token graph puts weight on later tokens (entries j > i); a causal gate refuses it: pass a "
            "causally masked attention matrix"
        )


def graph_smoothed_gating(logits: Tensor, graph: Tensor, k: int, *, check_finite: bool = True) -> Routing:
    """Top-k of `q = G p` per token (see the module docstring).

    Args:
        logits: (T, E) router logits, T = B * S batch-major.
        graph: (B, S, S) row-stochastic token graph.
        k: experts per token.
    """
    check_logits(logits, k, finite=check_finite)
    batch, seq = graph.shape[0], graph.shape[1]
    if batch * seq != logits.shape[0]:
        raise ValueError(f"graph {tuple(graph.shape)} does not cover {logits.shape[0]} tokens")
    logits = logits.float()
    probs = torch.softmax(logits, dim=-1)  # (T, E)
    mixed = (graph.float() @ probs.view(batch, seq, -1)).reshape(probs.shape)  # (B, S, E) -> (T, E)
    indices = torch.topk(mixed, k, dim=-1).indices  # (T, k)
    chosen = mixed.gather(1, indices)
    weights = chosen / chosen.sum(-1, keepdim=True).clamp(min=torch.finfo(torch.float32).tiny)
    aux = router_aux(logits, mixed, indices)
    aux["token_entropy"] = routing_entropy(probs)
    return Routing(indices, weights, aux)


class GraphGate(LinearGate):
    """Base of the graph-of-tokens gates: a linear router whose probabilities are smoothed by a
    causal token graph (`graph`, implemented by subclasses). Causal-safe."""

    causal_safe: ClassVar[bool] = True

    def _layout(self, x: Tensor, layout: tuple[int, int] | None) -> tuple[int, int]:
        if layout is None:
            return 1, x.shape[0]
        batch, seq = int(layout[0]), int(layout[1])
        if batch * seq != x.shape[0] or min(batch, seq) < 0:
            raise ValueError(f"layout {tuple(layout)} does not match {x.shape[0]} tokens")
        return batch, seq

    def graph(self, h: Tensor, attention: Tensor | None) -> Tensor:
        """(B, S, S) token graph for gate inputs `h` (B, S, d)."""
        raise NotImplementedError

    def forward(
        self,
        x: Tensor,
        *,
        layout: tuple[int, int] | None = None,
        attention: Tensor | None = None,
        **_: Tensor | None,
    ) -> Routing:
        logits = self.logits(x)  # (T, E) fp32, input shape and finiteness checked there
        batch, seq = self._layout(x, layout)
        graph = self.graph(x.view(batch, seq, -1), attention)
        return graph_smoothed_gating(logits, graph, self.k, check_finite=False)


@GATES.register("similarity-aware")
class SimilarityAwareGate(GraphGate):
    """Similarity-aware routing: `q_i = sum_{j <= i} softmax_j(cos(x_i, x_j) / tau) p_j`.

    Args:
        temperature: tau of the cosine graph (> 0); small keeps routing close to plain top-k.
        **kw: LinearGate arguments (jitter, seed, check_finite, name).
    """

    def __init__(self, dim: int, num_experts: int, k: int, *, temperature: float = 0.1, **kw) -> None:
        super().__init__(dim, num_experts, k, **kw)
        if isinstance(temperature, bool) or not (math.isfinite(temperature) and temperature > 0):
            raise ValueError(f"similarity temperature must be a positive number, got {temperature}")
        self.temperature = float(temperature)

    def graph(self, h: Tensor, attention: Tensor | None) -> Tensor:
        return similarity_graph(h, temperature=self.temperature)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, temperature={self.temperature}"


@GATES.register("attention-aware")
class AttentionAwareGate(GraphGate):
    """Attention-aware routing: `q_i = sum_{j <= i} A_ij p_j` with A the preceding layer's causal
    attention (heads averaged, detached), or the input's parameter-free causal attention if none."""

    def graph(self, h: Tensor, attention: Tensor | None) -> Tensor:
        if attention is None:
            return causal_attention_graph(h)
        check_graph(attention, h.shape[0], h.shape[1], causal=True)
        return attention.detach().float()


# --- the sequence-aware layer -------------------------------------------------------


def sequence_moe(
    moe: MoE, x: Tensor, *, attention: Tensor | None = None, token_ids: Tensor | None = None
) -> tuple[Tensor, dict[str, Tensor]]:
    """`moe(x)` for x (B, S, d) that gives a `GraphGate` the layout (and attention matrix).

    Equal to `moe(x)` for other gates. In causal capacity mode slots are still queued time-major.
    """
    if x.dim() != 3 or x.shape[-1] != moe.dim:
        raise ValueError(f"sequence_moe expects (batch, seq, {moe.dim}), got {tuple(x.shape)}")
    if not isinstance(moe.gate, GraphGate):
        return moe(x, token_ids=token_ids)
    batch, seq, dim = x.shape
    tokens = x.reshape(batch * seq, dim)  # batch-major
    routing = moe.gate(tokens, layout=(batch, seq), attention=attention)
    cf = moe.capacity_factor if moe.training else moe.eval_capacity_factor
    if cf is not None and moe.causal:  # queue capacity slots in time order, as MoE does
        perm = torch.arange(batch * seq, device=x.device).view(batch, seq).t().reshape(-1)
        routed = Routing(routing.indices[perm], routing.weights[perm], routing.aux)
        y_t, daux = moe._dispatch(tokens[perm], routed)
        y = torch.empty_like(y_t)
        y[perm] = y_t
    else:
        y, daux = moe._dispatch(tokens, routing)
    aux = {**routing.aux, **daux, "loss": moe_loss(routing.aux, moe.balance_coef, moe.z_coef)}
    return y.view(x.shape).to(x.dtype), aux


def attention_with_weights(attn: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """`models.gpt.CausalSelfAttention` computed explicitly: (output (B, S, d), A (B, S, S)).

    The output equals `attn(x)`; A is the causal attention matrix averaged over heads (pre-dropout).
    """
    batch, seq, dim = x.shape
    heads = attn.n_head
    # (B, S, d) -> (B, H, S, d / H)
    q, k, v = (
        p(x).view(batch, seq, heads, dim // heads).transpose(1, 2)
        for p in (attn.q_proj, attn.k_proj, attn.v_proj)
    )
    scores = q @ k.transpose(-1, -2) / math.sqrt(dim // heads)  # (B, H, S, S)
    probs = _causal_softmax(scores, True)
    dropped = F.dropout(probs, attn.dropout, attn.training) if attn.dropout > 0 else probs
    y = (dropped @ v).transpose(1, 2).reshape(batch, seq, dim)
    return attn.resid_drop(attn.out_proj(y)), probs.mean(1)


# The tiny-GPT wiring moved to the models layer; the old names resolve for one release.
__getattr__ = moved(
    __name__,
    {n: f"sparsetorch.models.moe_variants.{n}" for n in ("GraphMoEBlock", "graph_moe_gpt")},
)
