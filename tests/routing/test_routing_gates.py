"""Gates: exact aux values, weight conventions, expert choice, Sinkhorn, baselines, bad input.

The contract every registered gate keeps is generated from `GATES` in `test_gate_contract.py`.
"""

from __future__ import annotations

import math

import pytest
import torch

from sparsetorch.routing import (
    GATES,
    ExpertChoiceGate,
    HashGate,
    OracleGate,
    RandomGate,
    SinkhornGate,
    SwitchGate,
    TopKGate,
    balance_loss,
    expert_choice_gating,
    routing_entropy,
    sinkhorn,
    sinkhorn_gating,
    top_k_gating,
    z_loss,
)

# --- aux values ---------------------------------------------------------------------------------


def test_balance_loss_is_one_when_balanced_whatever_the_probs():
    probs = torch.softmax(torch.randn(8, 4, generator=torch.Generator().manual_seed(0)), -1)
    indices = torch.tensor([[0, 1], [2, 3], [1, 0], [3, 2], [0, 2], [1, 3], [2, 0], [3, 1]])  # 4 slots each
    assert balance_loss(probs, indices).item() == pytest.approx(1.0, abs=1e-6)


def test_balance_loss_hand_case_and_all_k_slots_count():
    probs = torch.tensor([[0.75, 0.25]] * 4)
    # top-1 collapse onto expert 0: f = (1, 0), P = (0.75, 0.25) -> 2 * 0.75
    assert balance_loss(probs, torch.zeros(4, 1, dtype=torch.long)).item() == pytest.approx(1.5)
    # k = 2, both experts on every token: f counted over all slots is (1/2, 1/2) -> 1.0
    # (GShard's top-1-only f would give 1.5 here)
    both = torch.tensor([[0, 1]] * 4)
    assert balance_loss(probs, both).item() == pytest.approx(1.0)
    # empty slots are not counted
    assert balance_loss(probs, torch.tensor([[0, -1]] * 4)).item() == pytest.approx(1.5)


def test_gate_balance_loss_is_one_for_a_balanced_router():
    logits = 5.0 * torch.eye(4).repeat(2, 1)  # token t prefers expert t % 4
    r = top_k_gating(logits, 1, mode="softmax_topk")
    assert r.aux["load"].tolist() == [2, 2, 2, 2]
    assert r.aux["balance_loss"].item() == pytest.approx(1.0, abs=1e-6)


def test_z_loss_and_entropy_exact():
    logits = torch.zeros(5, 8)
    assert z_loss(logits).item() == pytest.approx(math.log(8) ** 2, rel=1e-6)
    assert routing_entropy(torch.softmax(logits, -1)).item() == pytest.approx(math.log(8), rel=1e-6)
    onehot = torch.nn.functional.one_hot(torch.arange(5) % 8, 8).float()
    assert routing_entropy(onehot).item() == 0.0


# --- top-k conventions ----------------------------------------------------------------------------


def test_topk_softmax_equals_renormalized_softmax_topk():
    logits = torch.randn(20, 6, generator=torch.Generator().manual_seed(1))
    a = top_k_gating(logits, 2, mode="softmax_topk")
    b = top_k_gating(logits, 2, mode="topk_softmax")
    assert torch.equal(a.indices, b.indices)
    p = torch.softmax(logits, -1)
    torch.testing.assert_close(a.weights, p.gather(1, a.indices))
    torch.testing.assert_close(b.weights, a.weights / a.weights.sum(-1, keepdim=True))
    assert (a.indices[:, 0] == logits.argmax(-1)).all()


def test_switch_weight_is_top1_probability_and_k1_topk_softmax_is_one():
    gate = SwitchGate(6, 4)
    x = torch.randn(10, 6)
    r = gate(x)
    p = torch.softmax(gate.logits(x), -1)
    assert r.indices.shape == (10, 1)
    torch.testing.assert_close(r.weights[:, 0], p.max(-1).values)
    assert torch.equal(top_k_gating(gate.logits(x), 1).weights, torch.ones(10, 1))


def test_router_runs_in_fp32():
    gate = TopKGate(8, 4, 2).to(torch.bfloat16)
    r = gate(torch.randn(6, 8, dtype=torch.bfloat16))
    assert r.weights.dtype == torch.float32
    assert r.aux["balance_loss"].dtype == torch.float32
    assert r.aux["load"].dtype == torch.int64


# --- expert choice and Sinkhorn -------------------------------------------------------------------


def test_expert_choice_takes_c_tokens_per_expert():
    logits = torch.randn(16, 4, generator=torch.Generator().manual_seed(2))
    r = expert_choice_gating(logits, capacity_factor=2.0)  # C = 2 * 16 / 4 = 8
    assert r.indices.shape == (16, 4)
    assert r.aux["load"].tolist() == [8, 8, 8, 8]
    assert r.aux["balance_loss"].item() == pytest.approx(1.0, abs=1e-6)
    p = torch.softmax(logits, -1)
    chosen = r.indices >= 0
    torch.testing.assert_close(r.weights, torch.where(chosen, p, 0.0))
    for e in range(4):  # expert e took its 8 highest-affinity tokens
        assert set(chosen[:, e].nonzero().squeeze(1).tolist()) == set(p[:, e].topk(8).indices.tolist())
    assert r.aux["unrouted_fraction"].item() == pytest.approx((~chosen.any(-1)).float().mean().item())
    assert not ExpertChoiceGate.causal_safe and TopKGate.causal_safe


def _sinkhorn_exp_domain(logits, iters):
    """Plain Sinkhorn on exp(l): columns to T/E then rows to 1, `iters` times."""
    k = logits.double().exp()
    t, e = k.shape
    for _ in range(iters):
        k = k / k.sum(0, keepdim=True) * (t / e)
        k = k / k.sum(1, keepdim=True)
    return k


def test_sinkhorn_log_domain_matches_exp_domain_and_marginals():
    logits = torch.randn(12, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    plan = sinkhorn(logits, iters=5).exp().double()
    torch.testing.assert_close(plan, _sinkhorn_exp_domain(logits, 5), atol=1e-5, rtol=1e-5)
    converged = sinkhorn(logits, iters=200).exp()
    torch.testing.assert_close(converged.sum(1), torch.ones(12), atol=1e-5, rtol=0)
    torch.testing.assert_close(converged.sum(0), torch.full((3,), 4.0), atol=1e-4, rtol=0)
    # stable where exp overflows in fp32
    assert torch.isfinite(sinkhorn(logits.float() * 1000, iters=10)).all()
    # tol stops early: same as running to convergence
    torch.testing.assert_close(
        sinkhorn(logits, iters=500, tol=1e-9), sinkhorn(logits, iters=500), atol=1e-6, rtol=0
    )


def test_sinkhorn_balances_a_collapsed_router():
    gen = torch.Generator().manual_seed(4)
    logits = torch.randn(64, 4, generator=gen) + torch.tensor([3.0, 0.0, 0.0, 0.0])  # all prefer expert 0
    greedy = top_k_gating(logits, 1).aux["load"]
    balanced = sinkhorn_gating(logits, 1, iters=50).aux["load"]
    assert greedy.max() > 48
    assert balanced.max() <= 20  # 16 each when balanced; argmax of the fractional plan is near it
    # weights come from the original logits, so the router keeps its gradient
    r = sinkhorn_gating(logits.requires_grad_(), 2, iters=8)
    r.weights.sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_sinkhorn_gate_is_greedy_at_eval_only():
    gate = SinkhornGate(8, 4, 1, iters=20)
    with torch.no_grad():
        gate.weight[0] += 1.0  # skew toward expert 0
    x = torch.randn(40, 8, generator=torch.Generator().manual_seed(5)).abs()
    train = gate.train()(x)
    ev = gate.eval()(x)
    assert torch.equal(ev.indices, top_k_gating(gate.logits(x), 1).indices)
    assert train.aux["load"].max() < ev.aux["load"].max()


# --- baselines --------------------------------------------------------------------------------------


def test_hash_gate_fixed_per_token_and_saved():
    gate = HashGate(4, 8, 2, vocab_size=50, seed=3)
    ids = torch.tensor([7, 3, 7, 49])
    r = gate(torch.randn(4, 4), token_ids=ids)
    assert torch.equal(r.indices[0], r.indices[2])
    assert (r.indices[:, 0] != r.indices[:, 1]).all()
    torch.testing.assert_close(r.weights, torch.full((4, 2), 0.5))
    other = HashGate(4, 8, 2, vocab_size=50, seed=99)
    other.load_state_dict(gate.state_dict())
    assert torch.equal(other(torch.randn(4, 4), token_ids=ids).indices, r.indices)
    with pytest.raises(ValueError, match="token_ids"):
        gate(torch.randn(4, 4))
    with pytest.raises(ValueError, match="vocab_size=50"):
        gate(torch.randn(1, 4), token_ids=torch.tensor([50]))


def test_random_gate_seeded_and_distinct():
    a, b = RandomGate(4, 6, 3, seed=1), RandomGate(4, 6, 3, seed=1)
    x = torch.randn(30, 4)
    ra, rb = a(x), b(x)
    assert torch.equal(ra.indices, rb.indices)
    assert all(len(set(row)) == 3 for row in ra.indices.tolist())
    assert not torch.equal(a(x).indices, ra.indices)  # the generator advances
    torch.testing.assert_close(ra.weights, torch.full((30, 3), 1 / 3))


def test_oracle_gate_routes_as_told():
    gate = OracleGate(4, 5, 2)
    ids = torch.tensor([[0, 4], [2, -1]])
    r = gate(torch.randn(2, 4), expert_ids=ids)
    assert torch.equal(r.indices, ids)
    torch.testing.assert_close(r.weights, torch.tensor([[0.5, 0.5], [1.0, 0.0]]))
    with pytest.raises(ValueError, match=r"\(2, 2\)"):
        gate(torch.randn(2, 4), expert_ids=torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        gate(torch.randn(2, 4), expert_ids=torch.tensor([[0, 5], [1, 2]]))


# --- modules, registry, randomness, bad input -------------------------------------------------------


def test_registry_names_and_did_you_mean():
    assert GATES.list() == [
        "attention-aware",
        "expert-choice",
        "forced-expert",
        "hash",
        "oracle",
        "random",
        "similarity-aware",
        "sinkhorn",
        "ssr",
        "switch",
        "top-k",
    ]
    with pytest.raises(KeyError, match="did you mean 'top-k'"):
        GATES.get("top_k")


def test_jitter_only_in_training_and_seeded():
    a = TopKGate(8, 4, 2, jitter=0.5, seed=7)
    b = TopKGate(8, 4, 2, jitter=0.5, seed=7)
    b.load_state_dict(a.state_dict())
    x = torch.randn(12, 8)
    plain = torch.nn.functional.linear(x, a.weight)
    noisy = a.train().logits(x)
    assert not torch.allclose(noisy, plain)
    torch.testing.assert_close(b.train().logits(x), noisy)  # same seed, same noise
    torch.testing.assert_close(a.eval().logits(x), plain)  # no noise at eval


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: TopKGate(8, 4, 5), "k must be in"),
        (lambda: TopKGate(8, 4, 0), "k must be in"),
        (lambda: TopKGate(8, 4, 2, jitter=1.0), "jitter"),
        (lambda: TopKGate(8, 4, 2, jitter=float("nan")), "jitter"),
        (lambda: TopKGate(8, 4, 2, mode="softmax"), "weight mode"),
        (lambda: SwitchGate(8, 4, 2), "k=1"),
        (lambda: SinkhornGate(8, 4, 2, iters=0), "iters"),
        (lambda: ExpertChoiceGate(8, 4, 2, capacity_factor=-1.0), "capacity_factor"),
        (lambda: HashGate(8, 4, 2, vocab_size=0), "vocab_size"),
    ],
)
def test_bad_construction(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_inputs_and_nan_logits_name_the_layer():
    gate = TopKGate(8, 4, 2, name="blocks.3.moe.gate")
    with pytest.raises(ValueError, match=r"expects input \(tokens, 8\)"):
        gate(torch.randn(5, 7))
    with pytest.raises(ValueError, match=r"expects input"):
        gate(torch.randn(2, 5, 8))
    x = torch.randn(5, 8)
    x[2, 3] = float("nan")
    with pytest.raises(ValueError, match=r"non-finite router logits in router 'blocks.3.moe.gate'"):
        gate(x)
    with pytest.raises(ValueError, match="k must be in"):
        top_k_gating(torch.randn(3, 4), 5)
    with pytest.raises(ValueError, match="tokens, experts"):
        top_k_gating(torch.randn(3), 1)
    gate.check_finite = False  # opt out (no host sync): NaN flows through
    assert gate(x).weights.isnan().any()
