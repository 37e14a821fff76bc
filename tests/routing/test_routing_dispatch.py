"""Dispatch: dropless and capacity mode against a per-token loop; Tutel's capacity semantics."""

from __future__ import annotations

import pytest
import torch

from sparsetorch.routing import Experts, capacity, capacity_dispatch, dropless, slot_locations
from sparsetorch.routing.gates import expert_choice_gating, top_k_gating
from tests.routing.routing_testutil import naive_moe, tutel_capacity, tutel_locations

T, D, H, E = 24, 6, 10, 4


def _setup(kind: str, bias: bool, seed: int = 0, k: int = 2, routing: str = "top-k"):
    gen = torch.Generator().manual_seed(seed)
    experts = Experts(E, D, H, kind=kind, bias=bias).double()
    experts.reset_parameters(torch.Generator().manual_seed(seed + 1))
    x = torch.randn(T, D, generator=gen, dtype=torch.float64)
    logits = torch.randn(T, E, generator=gen)
    r = top_k_gating(logits, k) if routing == "top-k" else expert_choice_gating(logits, capacity_factor=k)
    return experts, x, r.indices, r.weights.double()


def _grads(fn, experts, x, weights):
    x = x.clone().requires_grad_()
    w = weights.clone().requires_grad_()
    experts.zero_grad()
    y = fn(x, w)
    (y * torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y)).sum().backward()
    params = {n: p.grad.clone() for n, p in experts.named_parameters()}
    return y.detach(), x.grad, w.grad, params


def _assert_same(a, b):
    for u, v in zip(a[:3], b[:3], strict=True):
        torch.testing.assert_close(u, v)
    assert a[3].keys() == b[3].keys()
    for n in a[3]:
        torch.testing.assert_close(a[3][n], b[3][n], msg=n)


@pytest.mark.parametrize(
    ("kind", "bias", "routing"), [("ffn", True, "top-k"), ("glu", False, "top-k"), ("ffn", False, "ec")]
)
def test_dropless_equals_per_token_loop_forward_and_gradients(kind, bias, routing):
    experts, x, idx, w = _setup(kind, bias, routing=routing)
    if routing == "ec":
        assert (idx < 0).any()  # empty slots are exercised
    fast = _grads(lambda x, w: dropless(x, idx, w, experts)[0], experts, x, w)
    ref = _grads(lambda x, w: naive_moe(x, idx, w, experts), experts, x, w)
    _assert_same(fast, ref)


def test_capacity_without_drops_equals_dropless():
    experts, x, idx, w = _setup("glu", True, seed=3)
    for cf in (0.0, 100.0):
        y, aux = capacity_dispatch(x, idx, w, experts, capacity_factor=cf)
        assert aux["dropped_slots"].item() == 0
        torch.testing.assert_close(y, dropless(x, idx, w, experts)[0])


def test_capacity_with_drops_equals_loop_over_kept_slots():
    experts, x, idx, w = _setup("ffn", True, seed=4)
    cf = 0.5
    loc = tutel_locations(idx, E)
    cap = tutel_capacity(T, E, 2, cf, 0)  # 2 * int(0.5 * 6) = 6
    kept = loc < cap
    fast = _grads(lambda x, w: capacity_dispatch(x, idx, w, experts, capacity_factor=cf)[0], experts, x, w)
    ref = _grads(lambda x, w: naive_moe(x, idx, torch.where(kept, w, 0.0), experts), experts, x, w)
    _assert_same(fast, ref)
    aux = capacity_dispatch(x, idx, w, experts, capacity_factor=cf)[1]
    assert aux["capacity"].item() == cap == 6
    assert aux["dropped_slots"].item() == (~kept).sum().item() > 0
    assert aux["dropped_fraction"].item() == pytest.approx((~kept).float().mean().item())


def test_slot_locations_equal_tutel_cumsum():
    gen = torch.Generator().manual_seed(5)
    idx = torch.topk(torch.randn(50, 6, generator=gen), 2).indices
    assert torch.equal(slot_locations(idx, 6), tutel_locations(idx, 6))
    # token order: token t's slots are queued before token t+1's
    idx = torch.tensor([[0, 1], [1, 0], [1, 2]])
    assert slot_locations(idx, 3, order="token").tolist() == [[0, 0], [1, 1], [2, 0]]
    assert slot_locations(idx, 3, order="slot").tolist() == [[0, 2], [0, 1], [1, 0]]
    assert slot_locations(torch.tensor([[2, -1]]), 3).tolist() == [[0, -1]]


@pytest.mark.parametrize("cf", [1.25, 1.0, 0.3, 2.0, 0.0, -1.0, -0.5, -4.0])
def test_capacity_values_follow_tutel(cf):
    for tokens, experts, k, max_load in [(24, 4, 2, 17), (10, 3, 1, 6), (7, 8, 2, 3)]:
        assert capacity(tokens, experts, k, cf, max_load=max_load) == tutel_capacity(
            tokens, experts, k, cf, max_load
        )
    assert capacity(24, 4, 2, 1.25, max_load=0, alignment=8) == 16  # 2 * int(1.25 * 6) = 14 -> 16


def test_dynamic_capacity_never_drops_and_bounded_capacity_caps():
    x = torch.randn(8, D, dtype=torch.float64)
    experts = Experts(E, D, H).double()
    idx = torch.zeros(8, 1, dtype=torch.long)  # everything on expert 0
    w = torch.ones(8, 1, dtype=torch.float64)
    _, aux = capacity_dispatch(x, idx, w, experts, capacity_factor=0.0)
    assert (aux["capacity"].item(), aux["dropped_slots"].item()) == (8, 0)
    y, aux = capacity_dispatch(x, idx, w, experts, capacity_factor=-1.0)  # min(8, 1 * int(1 * 2))
    assert (aux["capacity"].item(), aux["dropped_slots"].item()) == (2, 6)
    assert aux["dropped_fraction"].item() == pytest.approx(0.75)
    # the first two tokens (queue order) are kept; dropped tokens get exactly 0 (residual only)
    torch.testing.assert_close(y[:2], experts.expert(0, x[:2]))
    assert torch.equal(y[2:], torch.zeros(6, D, dtype=torch.float64))


def test_slot_order_decides_who_is_dropped():
    """Tutel's slot order lets a *later* token's first choice push out an earlier token's second
    choice, so it is not causal; token order (used by MoE(causal=True)) is."""
    experts = Experts(2, D, H).double()
    x = torch.randn(4, D, dtype=torch.float64)
    w = torch.full((4, 2), 0.5, dtype=torch.float64)
    idx = torch.tensor([[0, 1], [0, 1], [1, 0], [1, 0]])  # capacity 2 * int(0.5 * 2) = 2 per expert
    later = torch.tensor([[0, 1], [0, 1], [0, 1], [0, 1]])  # only tokens 2 and 3 change
    for order, leaks in (("slot", True), ("token", False)):
        y, aux = capacity_dispatch(x, idx, w, experts, capacity_factor=0.5, order=order)
        y2, _ = capacity_dispatch(x, later, w, experts, capacity_factor=0.5, order=order)
        assert aux["dropped_slots"].item() == 4
        assert torch.equal(y[:2], y2[:2]) is not leaks, order


def test_bad_dispatch_input():
    experts = Experts(E, D, H)
    x = torch.randn(5, D)
    idx = torch.zeros(5, 2, dtype=torch.long)
    w = torch.ones(5, 2)
    with pytest.raises(ValueError, match=r"\(5, slots\)"):
        dropless(x, idx[:4], w[:4], experts)
    with pytest.raises(ValueError, match=r"\(T, d\)"):
        dropless(x[None], idx, w, experts)
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        dropless(x, idx + 4, w, experts)
    with pytest.raises(ValueError, match="finite"):
        capacity_dispatch(x, idx, w, experts, capacity_factor=float("inf"))
    with pytest.raises(ValueError, match="alignment"):
        capacity_dispatch(x, idx, w, experts, capacity_factor=1.0, alignment=0)
    with pytest.raises(ValueError, match="slot order"):
        slot_locations(idx, E, order="time")
    with pytest.raises(ValueError, match="expert kind"):
        Experts(E, D, H, kind="moe")
