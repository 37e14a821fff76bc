"""Similarity- and attention-aware routing: hand cases, causality (suffix perturbation), the GPT wiring."""

from __future__ import annotations

import math

import pytest
import torch

from sparsetorch.models.gpt import GPTConfig
from sparsetorch.models.moe_gpt import MoEGPTConfig
from sparsetorch.models.moe_variants import graph_moe_gpt
from sparsetorch.routing import GATES, MoE, top_k_gating
from sparsetorch.routing.graph_of_tokens import (
    AttentionAwareGate,
    SimilarityAwareGate,
    attention_with_weights,
    causal_attention_graph,
    graph_smoothed_gating,
    sequence_moe,
    similarity_graph,
)

D, E, B, S, CUT = 8, 4, 2, 10, 6


def _x(seed: int = 0) -> torch.Tensor:
    return torch.randn(B, S, D, generator=torch.Generator().manual_seed(seed))


def test_registered_and_causal_safe():
    assert GATES.get("similarity-aware") is SimilarityAwareGate
    assert GATES.get("attention-aware") is AttentionAwareGate
    for name in ("similarity-aware", "attention-aware"):
        assert MoE(D, E, 2, gate=name, causal=True).gate.causal_safe


def test_similarity_graph_hand_case():
    # three tokens: t0 = t2 = e1, t1 = e2. Row 2 mixes t0, t1, t2 with cos 1, 0, 1.
    h = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [2.0, 0.0]]])
    g = similarity_graph(h, temperature=1.0)
    e = math.e
    expected = torch.tensor(
        [[1.0, 0, 0], [1 / (1 + e), e / (1 + e), 0], [e / (2 * e + 1), 1 / (2 * e + 1), e / (2 * e + 1)]]
    )
    torch.testing.assert_close(g[0], expected)
    assert torch.equal(g.triu(1), torch.zeros_like(g))  # no weight on later tokens
    free = similarity_graph(h, temperature=1.0, causal=False)
    assert free[0, 0, 2] > 0


def test_smoothed_gating_equals_an_independent_loop():
    logits = torch.randn(B * S, E, generator=torch.Generator().manual_seed(1))
    graph = causal_attention_graph(_x(2))
    r = graph_smoothed_gating(logits, graph, 2)
    p = torch.softmax(logits, -1).view(B, S, E)
    for b in range(B):
        for i in range(S):
            q = sum(graph[b, i, j] * p[b, j] for j in range(i + 1))
            top = q.topk(2).indices
            t = b * S + i
            assert r.indices[t].tolist() == top.tolist()
            torch.testing.assert_close(r.weights[t], q[top] / q[top].sum())
    assert r.aux["load"].sum() == B * S * 2 and r.aux["entropy"] >= 0


def test_identity_graph_is_plain_top_k():
    logits = torch.randn(B * S, E, generator=torch.Generator().manual_seed(3))
    eye = torch.eye(S).expand(B, S, S)
    r, ref = graph_smoothed_gating(logits, eye, 2), top_k_gating(logits, 2)
    assert torch.equal(r.indices, ref.indices)
    torch.testing.assert_close(r.weights, ref.weights)


def test_smoothing_lowers_fluctuation_under_logit_noise():
    # tokens of one repeated type: neighbours' votes stabilize a noisy router's choice
    gen = torch.Generator().manual_seed(4)
    base = torch.randn(1, E, generator=gen).expand(S * 4, E)
    graph = torch.tril(torch.ones(S * 4, S * 4))
    graph = (graph / graph.sum(-1, keepdim=True))[None]
    flips_plain = flips_graph = 0
    for _ in range(5):
        a, b = (base + 0.8 * torch.randn(base.shape, generator=gen) for _ in range(2))
        flips_plain += (top_k_gating(a, 1).indices != top_k_gating(b, 1).indices).sum().item()
        flips_graph += (
            (graph_smoothed_gating(a, graph, 1).indices != graph_smoothed_gating(b, graph, 1).indices)
            .sum()
            .item()
        )
    assert flips_graph < flips_plain


@pytest.mark.parametrize("name", ["similarity-aware", "attention-aware"])
@pytest.mark.parametrize("cf", [None, 1.0])
def test_suffix_perturbation_leaves_the_prefix_unchanged(name, cf):
    moe = MoE(D, E, 2, gate=name, capacity_factor=cf, causal=True, seed=1)
    x = _x()
    x2 = x.clone()
    x2[:, CUT:] = torch.randn(B, S - CUT, D, generator=torch.Generator().manual_seed(9))
    attention = causal_attention_graph(x) if name == "attention-aware" else None
    attention2 = causal_attention_graph(x2) if name == "attention-aware" else None
    for run in (
        lambda z, a: sequence_moe(moe, z, attention=a),
        lambda z, a: moe(z),
    ):  # layout given / plain MoE
        y, _ = run(x, attention)
        y2, _ = run(x2, attention2)
        assert torch.equal(y[:, :CUT], y2[:, :CUT])
        assert not torch.equal(y[:, CUT:], y2[:, CUT:])


def test_attention_with_future_weight_is_refused():
    moe = MoE(D, E, 2, gate="attention-aware", causal=True)
    leaky = torch.full((B, S, S), 1.0 / S)
    with pytest.raises(ValueError, match="later tokens"):
        sequence_moe(moe, _x(), attention=leaky)
    with pytest.raises(ValueError, match="layout"):
        moe.gate(_x().reshape(-1, D), layout=(3, 7))


def test_sequence_moe_keeps_sequences_apart():
    moe = MoE(D, E, 2, gate="similarity-aware", causal=True, seed=2)
    x = _x()
    y, _ = sequence_moe(moe, x)
    y0, _ = sequence_moe(moe, x[:1])
    torch.testing.assert_close(y[:1], y0)


def test_gpt_wiring_attention_matches_and_is_causal():
    gpt = GPTConfig(d_model=16, n_layer=2, n_head=2, block_size=16)
    model = graph_moe_gpt(MoEGPTConfig(gpt=gpt, num_experts=4, k=2, gate="attention-aware")).eval()
    block = model.blocks[0]
    h = torch.randn(2, 16, 16, generator=torch.Generator().manual_seed(5))
    out, attention = attention_with_weights(block.attn, h)
    torch.testing.assert_close(out, block.attn(h), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(attention.sum(-1), torch.ones(2, 16))
    idx = torch.randint(0, 256, (2, 16), generator=torch.Generator().manual_seed(6))
    idx2 = idx.clone()
    idx2[:, 10:] = (idx2[:, 10:] + 7) % 256
    a, b = model(idx), model(idx2)
    assert torch.equal(a.logits[:, :10], b.logits[:, :10]) and not torch.equal(
        a.logits[:, 10:], b.logits[:, 10:]
    )
    assert set(a.aux) == {"blocks.0.moe", "blocks.1.moe"} and torch.isfinite(a.aux_loss)
    a.aux_loss.backward()
    assert model.blocks[0].moe.gate.weight.grad is not None


def test_bad_arguments():
    with pytest.raises(ValueError, match="temperature"):
        SimilarityAwareGate(D, E, 2, temperature=0.0)
    with pytest.raises(ValueError, match="does not cover"):
        graph_smoothed_gating(torch.randn(5, E), torch.eye(3)[None], 2)
