"""Forced-expert (hybrid-k) routing, the family model, Post-MoE layout and causality."""

from __future__ import annotations

import pytest
import torch

from sparsetorch.models.gpt import GPTConfig
from sparsetorch.models.moe_gpt import MoEBlock, MoEGPT, MoEGPTConfig, post_moe_layers
from sparsetorch.models.moe_variants import FamilyMoEGPT
from sparsetorch.routing import GATES, MoE
from sparsetorch.routing.language_family import (
    ForcedExpertGate,
    family_ids,
    forced_expert_gating,
)

E = 5


def test_registered_and_causal_safe():
    assert GATES.get("forced-expert") is ForcedExpertGate and ForcedExpertGate.causal_safe
    MoE(8, E, 2, gate="forced-expert", causal=True)


def test_hand_case_forced_plus_free_top_k():
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0, -1.0], [0.0, 1.0, 2.0, 3.0, 4.0]])
    forced = torch.tensor([2, 4])
    r = forced_expert_gating(logits, forced, 3)
    assert r.indices.tolist() == [[2, 0, 1], [4, 3, 2]]  # forced first, then the best others
    torch.testing.assert_close(r.weights[0], torch.softmax(torch.tensor([1.0, 3.0, 2.0]), -1))
    assert r.aux["load"].tolist() == [1, 1, 2, 1, 1]
    one = forced_expert_gating(logits, forced, 1)
    assert one.indices.tolist() == [[2], [4]] and one.weights.tolist() == [[1.0], [1.0]]


def test_forced_expert_is_always_used_and_never_duplicated():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(50, E, generator=gen)
    forced = torch.randint(0, E, (50,), generator=gen)
    r = forced_expert_gating(logits, forced, 2)
    assert torch.equal(r.indices[:, 0], forced) and (r.indices[:, 1] != forced).all()
    torch.testing.assert_close(r.weights.sum(-1), torch.ones(50))


def test_gate_needs_expert_ids_and_checks_range():
    gate = ForcedExpertGate(8, E, 2)
    x = torch.randn(4, 8)
    with pytest.raises(ValueError, match="expert_ids"):
        gate(x)
    with pytest.raises(ValueError, match="forced experts"):
        gate(x, expert_ids=torch.full((4, 1), E))


def test_family_ids():
    assert family_ids(["en", "fr", "pl", "nb", "ca"]).tolist() == [0, 1, 2, 0, 1]


def _model(layers):
    gpt = GPTConfig(d_model=16, n_layer=4, n_head=2, block_size=16)
    return FamilyMoEGPT(
        MoEGPTConfig(gpt=gpt, num_experts=E, k=2, gate="forced-expert", moe_layers=layers)
    ).eval()


def test_post_moe_layout_and_causal_family_forward():
    model = _model(post_moe_layers(4, 2))
    assert [isinstance(b, MoEBlock) for b in model.blocks] == [False, False, True, True]
    idx = torch.randint(1, 256, (3, 12), generator=torch.Generator().manual_seed(1))
    experts = torch.tensor([0, 1, 2])
    out = model(idx, experts)
    assert set(out.aux) == {"blocks.2.moe", "blocks.3.moe"} and torch.isfinite(out.aux_loss)
    for aux in out.aux.values():
        assert (aux["load"][:3] >= 12).all() and aux["load"].sum() == 3 * 12 * 2  # forced + one free slot
    idx2 = idx.clone()
    idx2[:, 8:] = (idx2[:, 8:] + 3) % 255 + 1
    out2 = model(idx2, experts)
    assert torch.equal(out.logits[:, :8], out2.logits[:, :8])
    other = model(idx, torch.tensor([1, 2, 0]))  # the forced expert changes the prediction
    assert not torch.allclose(other.logits, out.logits)


def _old_family_forward(model, idx, experts):
    """The inline forward FamilyMoEGPT had before it called MoEGPT.forward(expert_ids=...)."""
    seq_len = idx.shape[1]
    expert_ids = experts.long()[:, None, None].expand(-1, seq_len, 1)
    x = model.drop(model.tok_emb(idx) + model.pos_emb(torch.arange(seq_len)))
    aux_loss = torch.zeros(())
    for block in model.blocks:
        if isinstance(block, MoEBlock):
            x = x + block.attn(block.ln1(x))
            y, layer_aux = block.moe(block.ln2(x), token_ids=idx, expert_ids=expert_ids)
            x = x + y
            aux_loss = aux_loss + layer_aux["loss"]
        else:
            x = block(x)
    return model.lm_head(model.ln_f(x)), aux_loss


def test_family_forward_is_moegpt_forward_with_expert_ids_and_unchanged():
    model = _model(post_moe_layers(4, 2))
    idx = torch.randint(1, 256, (3, 12), generator=torch.Generator().manual_seed(1))
    experts = torch.tensor([0, 1, 2])
    out = model(idx, experts)
    logits, aux_loss = _old_family_forward(model, idx, experts)
    assert torch.equal(out.logits, logits) and torch.equal(out.aux_loss, aux_loss)
    ids = experts[:, None, None].expand(-1, 12, 1)
    assert torch.equal(MoEGPT.forward(model, idx, expert_ids=ids).logits, logits)


def test_bad_family_forward():
    model = _model(None)
    with pytest.raises(ValueError, match="experts"):
        model(torch.zeros(2, 4, dtype=torch.long), torch.zeros(3, dtype=torch.long))
