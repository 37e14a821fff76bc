"""BlockFFN: hand-computed TLS / CLS / chunk / locality / balance losses, the chunk-size error, and the
routed output against a straightforward per-expert sum."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from sparsetorch.activations.blockffn import (
    BlockFFN,
    BlockFFNConfig,
    balance_loss,
    check_chunks,
    chunk_loss,
    chunk_sparsity,
    cosine_ramp,
    locality_loss,
    token_sparsity,
)


def test_tls_and_cls_hand_case():
    # 4 tokens, 4 experts; chunks of 2: {t0, t1} use experts {0, 3}, {t2, t3} use {1}
    s = torch.tensor([[1.0, 0, 0, 2], [0, 0, 0, 3], [0, 1, 0, 0], [0, 2, 0, 0]])
    assert token_sparsity(s).item() == pytest.approx(11 / 16)
    assert chunk_sparsity(s, 2).item() == pytest.approx(1 - 3 / 8)
    assert chunk_sparsity(s, 4).item() == pytest.approx(1 - 3 / 4)
    assert chunk_sparsity(s, 1).item() == pytest.approx(token_sparsity(s).item())


def test_chunk_loss_hand_case():
    p = torch.tensor([[0.5, 0.0], [0.5, 0.0], [0.2, 1.0], [0.0, 0.0]])  # (T=4, E=2), chunks of 2
    # chunk 0: e0 1-(0.5*0.5)=0.75, e1 0; chunk 1: e0 0.2, e1 ~1
    expected = (0.75 + 0.0 + 0.2 + 1.0) / 4
    assert chunk_loss(p, 2).item() == pytest.approx(expected, abs=1e-5)


def test_chunk_size_must_divide_sequence_length():
    with pytest.raises(ValueError, match="not divisible by the chunk size 8"):
        chunk_sparsity(torch.ones(2, 12, 4), 8)
    with pytest.raises(ValueError, match="not divisible"):
        chunk_loss(torch.rand(2, 12, 4), 8)
    assert check_chunks(16, 8) == 2
    ffn = BlockFFN(8, BlockFFNConfig(num_experts=4, expert_hidden=4, chunk_size=8))
    _, aux = ffn(torch.randn(1, 12, 8))  # forward still works; CLS is undefined
    assert math.isnan(aux.cls.item()) and aux.chunk.item() == 0.0


def test_locality_loss_hand_case():
    z = torch.tensor([[[0.01, -0.02], [0.03, 0.0]]])  # (1, T=2, E=2)
    alpha = 100.0
    prev, target = alpha * z[:, 0], torch.sigmoid(alpha * z[:, 1])
    manual = -(target * F.logsigmoid(prev) + (1 - target) * F.logsigmoid(-prev)).mean()
    assert locality_loss(z, alpha).item() == pytest.approx(manual.item(), rel=1e-6)
    # identical, decisive consecutive patterns cost (almost) nothing
    same = torch.tensor([[[1.0, -1.0], [1.0, -1.0]]])
    assert locality_loss(same, alpha).item() < 1e-6


def test_balance_loss_is_one_when_balanced_and_e_when_collapsed():
    assert balance_loss(torch.ones(10, 4)).item() == pytest.approx(1.0)
    collapsed = torch.zeros(10, 4)
    collapsed[:, 2] = 1.0
    assert balance_loss(collapsed).item() == pytest.approx(4.0)


def test_blockffn_output_matches_per_expert_sum_over_active_experts():
    torch.manual_seed(0)
    ffn = BlockFFN(8, BlockFFNConfig(num_experts=6, expert_hidden=5, chunk_size=4))
    x = torch.randn(2, 8, 8)
    y, aux = ffn(x)
    z, r = ffn.route(x)
    assert torch.equal(r == 0, z <= 0)  # ReLU routing: inactive exactly where the logit is <= 0
    a = F.relu(z)
    assert torch.allclose(r, a / a.pow(2).mean(-1, keepdim=True).add(1e-6).sqrt())
    flat, rf = x.reshape(-1, 8), r.reshape(-1, 6)
    expected = torch.zeros_like(flat)
    for n in range(flat.shape[0]):
        for e in rf[n].nonzero().flatten().tolist():  # only the active experts
            expected[n] += rf[n, e] * ffn.experts.expert(e, flat[n : n + 1])[0]
    assert torch.allclose(y.reshape(-1, 8), expected, atol=1e-5)
    assert aux.tls.item() == pytest.approx(token_sparsity(r).item())
    assert 0.0 <= aux.cls.item() <= aux.tls.item()  # a chunk's union is never sparser than its tokens
    (aux.chunk + aux.locality + aux.balance + aux.l1).backward()
    assert ffn.router.weight.grad is not None and torch.isfinite(ffn.router.weight.grad).all()


def test_cosine_ramp():
    assert cosine_ramp(0, 10, 0.0, 1.0) == 0.0
    assert cosine_ramp(5, 10, 0.0, 1.0) == pytest.approx(0.5)
    assert cosine_ramp(10, 10, 0.0, 1.0) == 1.0
