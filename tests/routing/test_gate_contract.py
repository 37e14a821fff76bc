"""The contract of every registered gate (`GATES`), generated from the registry.

Every gate: valid slots; exact routing density (token-choice gates give each token exactly k
experts, expert choice gives each expert the same number of tokens); non-negative finite weights
and finite gradients into the input and the router; load = slot count; the same routing after a
`state_dict` round trip (seeded randomness included); and a ValueError naming the problem for a
bad `dim`, `num_experts` or `k`. The last test runs each check on a deliberately broken gate.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor

from sparsetorch.papers import get_paper
from sparsetorch.routing import GATES, Gate, Routing, TopKGate

DIM, EXPERTS, TOKENS = 8, 4, 10
KWARGS: dict[str, dict[str, Any]] = {"hash": {"vocab_size": 32}}
EXPERT_CHOICE = {"expert-choice"}  # each expert picks its tokens: the per-expert load is exact


def _k(name: str) -> int:
    return 1 if name == "switch" else 2


def _make(name: str, cls: type[Gate] | None = None) -> Gate:
    cls = cls or GATES.get(name)
    return cls(DIM, EXPERTS, _k(name), **KWARGS.get(name, {}))


def _route(gate: Gate, k: int, *, grad: bool = False) -> tuple[Tensor, Routing]:
    x = torch.randn(TOKENS, DIM, generator=torch.Generator().manual_seed(1)).requires_grad_(grad)
    g = torch.Generator().manual_seed(2)
    experts = torch.stack(
        [torch.randperm(EXPERTS, generator=g)[:k] for _ in range(TOKENS)]
    )  # (T, k) distinct
    return x, gate(x, token_ids=torch.arange(TOKENS), expert_ids=experts)


# --- the checks -------------------------------------------------------------------------------------


def check_slots_and_density(name: str, gate: Gate) -> None:
    k = _k(name)
    _, r = _route(gate.train(), k)
    assert r.indices.dtype == torch.int64 and r.weights.dtype == torch.float32
    assert r.indices.shape == r.weights.shape and r.indices.shape[0] == TOKENS
    assert ((r.indices >= -1) & (r.indices < EXPERTS)).all()
    assert r.aux["load"].sum().item() == (r.indices >= 0).sum().item()
    if name in EXPERT_CHOICE:
        assert len(set(r.aux["load"].tolist())) == 1, "every expert takes the same number of tokens"
    else:
        assert ((r.indices >= 0).sum(1) == k).all(), "every token goes to exactly k experts"
        assert all(len(set(row)) == k for row in r.indices.tolist()), "k distinct experts per token"


def check_finite(name: str, gate: Gate) -> None:
    x, r = _route(gate.train(), _k(name), grad=True)
    assert torch.isfinite(r.weights).all() and (r.weights >= 0).all()
    assert (r.weights[r.indices < 0] == 0).all()
    losses = [v for v in r.aux.values() if isinstance(v, Tensor) and v.requires_grad]
    total = r.weights.sum() + sum(v.sum() for v in losses)
    if not isinstance(total, Tensor) or not total.requires_grad:
        assert not list(gate.parameters()), "a learned router must pass gradients"
        return
    total.backward()
    grads = [g for g in [x.grad, *(p.grad for p in gate.parameters())] if g is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads), "non-finite gradient"


def check_round_trip(name: str, make) -> None:
    a, b = make(), make()
    b.load_state_dict(a.state_dict())
    _, ra = _route(a, _k(name))
    _, rb = _route(b, _k(name))
    assert torch.equal(ra.indices, rb.indices) and torch.equal(ra.weights, rb.weights)


def check_bad_configs(name: str, cls: type[Gate]) -> None:
    extra = KWARGS.get(name, {})
    for args, message in [
        ((DIM, EXPERTS, EXPERTS + 1), r"k=5"),
        ((DIM, EXPERTS, 0), r"k=0|k must be"),
        ((0, EXPERTS, 1), "dim and num_experts must be positive"),
        ((DIM, 0, 1), "dim and num_experts must be positive"),
    ]:
        with pytest.raises(ValueError, match=message):
            cls(*args, **extra)


# --- generated from the registry --------------------------------------------------------------------

NAMES = GATES.list()


@pytest.mark.parametrize("name", NAMES)
def test_slots_and_exact_density(name):
    check_slots_and_density(name, _make(name))


@pytest.mark.parametrize("name", NAMES)
def test_finite_weights_and_gradients(name):
    check_finite(name, _make(name))


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip(name):
    check_round_trip(name, lambda: _make(name))


@pytest.mark.parametrize("name", NAMES)
def test_bad_configs_raise_clear_errors(name):
    check_bad_configs(name, GATES.get(name))


@pytest.mark.parametrize("name", NAMES)
def test_paper_key_names_a_paper(name):
    paper = GATES.get(name).paper
    assert paper == "" or get_paper(paper).key == paper


# --- the checks can fail ----------------------------------------------------------------------------


class OneExpertShort(TopKGate):
    def forward(self, x, **_):
        r = super().forward(x)
        return r._replace(indices=r.indices.masked_fill(torch.arange(r.indices.shape[1]) == 0, -1))


class NaNWeights(TopKGate):
    def forward(self, x, **_):
        r = super().forward(x)
        return r._replace(weights=r.weights * float("nan"))


class UnsavedNoise(TopKGate):
    def forward(self, x, **_):
        r = super().forward(x + torch.randn_like(x))  # unseeded: no two gates route alike
        return r


class AcceptsAnything(TopKGate):
    def __init__(self, dim, num_experts, k, **kw):
        torch.nn.Module.__init__(self)  # skips every check
        self.dim, self.num_experts, self.k = dim, num_experts, k


@pytest.mark.parametrize(
    ("check", "arg"),
    [
        (check_slots_and_density, lambda: _make("top-k", OneExpertShort)),
        (check_finite, lambda: _make("top-k", NaNWeights)),
        (check_round_trip, lambda: lambda: _make("top-k", UnsavedNoise)),
        (check_bad_configs, lambda: AcceptsAnything),
    ],
    ids=["density", "finite", "round-trip", "no-error"],
)
def test_each_check_fails_on_a_broken_gate(check, arg):
    with pytest.raises((AssertionError, pytest.fail.Exception)):
        check("top-k", arg())
