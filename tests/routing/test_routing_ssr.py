"""Selective Sinkhorn Routing: hand cases, an independent Sinkhorn reference, selection, no aux loss."""

from __future__ import annotations

import math

import pytest
import torch

from sparsetorch.routing import GATES, MoE, top_k_gating
from sparsetorch.routing.ssr import SSRGate, ssr_gating, transport_plan_routing

D, E = 8, 4


def _x(t: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.randn(t, D, generator=torch.Generator().manual_seed(seed))


def _reference_plan(logits: torch.Tensor, temperature: float, iters: int = 2000) -> torch.Tensor:
    """Sinkhorn-Knopp in the probability domain, float64: K = exp(C / xi), alternate scalings."""
    kernel = torch.exp(logits.double() / temperature)
    t, e = kernel.shape
    u, v = torch.ones(t, dtype=torch.float64), torch.ones(e, dtype=torch.float64)
    for _ in range(iters):
        v = (t / e) / (kernel.t() @ u)
        u = 1.0 / (kernel @ v)
    return u[:, None] * kernel * v[None, :]


def test_registered_and_not_causal_safe():
    assert GATES.get("ssr") is SSRGate
    moe = MoE(D, E, 2, gate="ssr", gate_kwargs={"p": 0.5})
    assert isinstance(moe.gate, SSRGate) and moe.gate.p == 0.5
    with pytest.raises(ValueError, match="not causal-safe"):
        MoE(D, E, 2, gate="ssr", causal=True)


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_two_tokens_preferring_one_expert_are_split_by_the_plan(temperature):
    # Both tokens prefer expert 0. The 2x2 plan with unit marginals is [[x, 1-x], [1-x, x]] and keeps
    # the kernel's cross-ratio: x^2 / (1-x)^2 = exp((2 - 0 - 1 + 0) / xi), so x = s / (1 + s), s = e^(1/(2 xi)).
    logits = torch.tensor([[2.0, 0.0], [1.0, 0.0]])
    s = math.exp(1 / (2 * temperature))
    x = s / (1 + s)
    idx, w, log_plan = transport_plan_routing(logits, 2, temperature=temperature, iters=50)
    torch.testing.assert_close(log_plan.exp(), torch.tensor([[x, 1 - x], [1 - x, x]]))
    assert idx.tolist() == [[0, 1], [1, 0]]  # token 1 moves to expert 1
    torch.testing.assert_close(w, torch.tensor([[x, 1 - x], [x, 1 - x]]))
    top1 = transport_plan_routing(logits, 1, temperature=temperature, iters=50)
    assert top1[0].tolist() == [[0], [1]] and top1[1].tolist() == [[1.0], [1.0]]
    assert top_k_gating(logits, 1).indices.tolist() == [[0], [0]]  # plain top-k sends both to expert 0


def test_plan_matches_an_independent_sinkhorn_and_has_the_marginals():
    logits = 2.0 * torch.randn(64, 8, generator=torch.Generator().manual_seed(1))
    for temperature in (1.0, 0.7):
        _, _, log_plan = transport_plan_routing(logits, 2, temperature=temperature, iters=300)
        plan = log_plan.exp().double()
        torch.testing.assert_close(plan, _reference_plan(logits, temperature), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(plan.sum(1), torch.ones(64, dtype=torch.float64), atol=1e-5, rtol=0)
        torch.testing.assert_close(plan.sum(0), torch.full((8,), 8.0, dtype=torch.float64), atol=1e-3, rtol=0)


def test_weights_are_the_renormalized_plan_entries_and_probs_cost():
    logits = torch.randn(16, E, generator=torch.Generator().manual_seed(2))
    idx, w, log_plan = transport_plan_routing(logits, 2, iters=20, cost="probs", temperature=0.1)
    chosen = log_plan.exp().gather(1, idx)
    torch.testing.assert_close(w, chosen / chosen.sum(1, keepdim=True))
    ref = _reference_plan(torch.softmax(logits, -1), 0.1, iters=20)
    assert torch.equal(idx, ref.topk(2, dim=-1).indices)


def test_an_already_balanced_softmax_is_left_as_it_is():
    # rows are cyclic shifts of one vector: softmax columns already sum to T/E, so the plan is softmax
    base = torch.tensor([1.5, 0.3, -0.2, -1.0])
    logits = torch.stack([base.roll(i) for i in range(E)] * 3)  # (12, 4)
    idx, w, log_plan = transport_plan_routing(logits, 2, iters=8)
    torch.testing.assert_close(log_plan.exp(), torch.softmax(logits, -1))
    ref = top_k_gating(logits, 2, mode="topk_softmax")
    assert torch.equal(idx, ref.indices)
    torch.testing.assert_close(w, ref.weights)


def test_sinkhorn_branch_balances_a_skewed_router():
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(256, 8, generator=gen)
    logits[:, 0] += 3.0  # every token prefers expert 0
    plain = top_k_gating(logits, 1).aux["load"]
    balanced = ssr_gating(logits, 1, apply_sinkhorn=True, iters=50).aux["load"]
    assert plain.max() > 200
    assert balanced.max() <= 1.25 * 256 / 8 and balanced.min() >= 0.75 * 256 / 8


def test_eval_is_plain_top_k_and_training_selects_with_probability_p():
    x = _x()
    gate = SSRGate(D, E, 2, p=0.3, seed=5)
    gate.eval()
    r = gate(x)
    ref = top_k_gating(gate.logits(x), 2, mode="topk_softmax")
    assert torch.equal(r.indices, ref.indices) and torch.equal(r.weights, ref.weights)
    assert r.aux["sinkhorn_applied"].item() == 0.0
    gate.train()
    draws = [gate(x).aux["sinkhorn_applied"].item() for _ in range(200)]
    assert 0.2 <= sum(draws) / 200 <= 0.4
    same = SSRGate(D, E, 2, p=0.3, seed=5).train()
    same.load_state_dict(gate.state_dict())
    assert [same(x).aux["sinkhorn_applied"].item() for _ in range(200)] == draws  # seeded draws
    other = SSRGate(D, E, 2, p=0.3, seed=6).train()
    assert [other(x).aux["sinkhorn_applied"].item() for _ in range(200)] != draws
    never, always = SSRGate(D, E, 2, p=0.0).train(), SSRGate(D, E, 2, p=1.0).train()
    assert all(never(x).aux["sinkhorn_applied"].item() == 0.0 for _ in range(5))
    assert all(always(x).aux["sinkhorn_applied"].item() == 1.0 for _ in range(5))


def test_noise_is_seeded_and_training_only():
    x = _x()
    a = SSRGate(D, E, 2, p=0.5, noise=1.0, seed=1).train()
    b = SSRGate(D, E, 2, p=0.5, noise=1.0, seed=1).train()
    b.load_state_dict(a.state_dict())
    for _ in range(4):
        ra, rb = a(x), b(x)
        assert torch.equal(ra.indices, rb.indices) and torch.equal(ra.weights, rb.weights)
    a.eval()
    assert torch.equal(a(x).indices, top_k_gating(a.logits(x), 2).indices)


def test_no_aux_loss_but_the_router_trains_through_the_plan():
    moe = MoE(D, E, 2, gate="ssr", gate_kwargs={"p": 1.0}, seed=0).train()
    y, aux = moe(_x())
    assert aux["sinkhorn_applied"].item() == 1.0
    assert not any(v.requires_grad for v in aux.values())  # measurements only: no aux loss
    assert 0.5 < aux["balance_loss"].item() < 2.0
    y.sum().backward()
    assert moe.gate.weight.grad is not None and moe.gate.weight.grad.abs().sum() > 0


def test_plan_weights_couple_tokens_through_the_column_potential():
    logits = torch.randn(6, E, generator=torch.Generator().manual_seed(4)).requires_grad_(True)
    _, w, _ = transport_plan_routing(logits, 2, iters=10)
    (grad,) = torch.autograd.grad(w[0, 0], logits)
    assert grad[1:].abs().sum() > 1e-6  # token 0's gate depends on the other tokens (balance)
    _, w_plain, _ = transport_plan_routing(logits.detach(), 2, iters=10)
    torch.testing.assert_close(w.detach(), w_plain)


def test_bad_input_is_refused():
    for kwargs in ({"p": -0.1}, {"p": 1.5}, {"p": True}, {"temperature": 0.0}, {"temperature": math.nan},
                   {"iters": 0}, {"iters": 2.5}, {"cost": "cosine"}, {"noise": -1.0}, {"tol": 0.0}):  # fmt: skip
        with pytest.raises(ValueError):
            SSRGate(D, E, 2, **kwargs)
    with pytest.raises(ValueError, match="k must be"):
        SSRGate(D, E, E + 1)
    with pytest.raises(ValueError, match="k must be"):
        transport_plan_routing(torch.zeros(3, E), E + 1)
    with pytest.raises(ValueError, match="tokens, experts"):
        transport_plan_routing(torch.zeros(3, 2, E), 1)
    with pytest.raises(ValueError, match="temperature"):
        ssr_gating(torch.zeros(3, E), 1, apply_sinkhorn=True, temperature=-1.0)
    gate = SSRGate(D, E, 2, name="blocks.1.moe.gate")
    with pytest.raises(ValueError, match="expects input"):
        gate(torch.zeros(3, D + 1))
    with torch.no_grad():
        gate.weight[0, 0] = math.nan
    with pytest.raises(ValueError, match=r"non-finite router logits in router 'blocks\.1\.moe\.gate'"):
        gate(_x())
