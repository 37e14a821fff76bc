"""The MoE layer: reference equality, causality by suffix perturbation, train/eval, determinism."""

from __future__ import annotations

import pytest
import torch

from sparsetorch.routing import MoE, TopKGate, name_gates
from sparsetorch.routing.moe import Experts
from tests.routing.routing_testutil import naive_moe

D, E, B, S, CUT = 8, 4, 2, 12, 6


def _x(seed: int = 0) -> torch.Tensor:
    return torch.randn(B, S, D, generator=torch.Generator().manual_seed(seed))


def _perturb_suffix(x: torch.Tensor) -> torch.Tensor:
    x2 = x.clone()
    x2[:, CUT:] = 5.0 * torch.randn(B, S - CUT, D, generator=torch.Generator().manual_seed(99))
    return x2


def test_forward_matches_reference_and_aux():
    moe = MoE(D, E, 2, expert="glu", seed=0).double()
    x = _x().double()
    y, aux = moe(x)
    tokens = x.reshape(-1, D)
    r = moe.gate(tokens)
    torch.testing.assert_close(y, naive_moe(tokens, r.indices, r.weights.double(), moe.experts).view_as(x))
    assert {"balance_loss", "z_loss", "entropy", "load", "dropped_slots", "dropped_fraction", "loss"} <= set(
        aux
    )
    torch.testing.assert_close(aux["loss"], 1e-2 * aux["balance_loss"] + 1e-3 * aux["z_loss"])
    assert aux["load"].sum().item() == B * S * 2
    y.sum().backward()
    assert moe.gate.weight.grad.abs().sum() > 0


CAUSAL_GATES = [
    ("top-k", {"mode": "topk_softmax"}, None),
    ("top-k", {"mode": "softmax_topk", "jitter": 0.1}, None),
    ("switch", {}, None),
    ("hash", {"vocab_size": 16}, None),
    ("random", {"seed": 3}, None),
    ("oracle", {}, None),
    ("top-k", {}, 1.0),  # capacity mode, slots queued in time order
    ("top-k", {}, -0.5),
]


@pytest.mark.parametrize(("gate", "kwargs", "cf"), CAUSAL_GATES)
def test_suffix_perturbation_leaves_the_prefix_unchanged(gate, kwargs, cf):
    k = 1 if gate == "switch" else 2
    moe = MoE(D, E, k, gate=gate, gate_kwargs=kwargs, capacity_factor=cf, causal=True, seed=1)
    moe.train()  # jitter and random draws on: still causal
    x = _x()
    ids = torch.randint(0, 16, (B, S), generator=torch.Generator().manual_seed(2))
    ids2 = ids.clone()
    ids2[:, CUT:] = (ids2[:, CUT:] + 5) % 16
    experts = torch.randint(0, E, (B, S, k), generator=torch.Generator().manual_seed(3))
    experts2 = experts.clone()
    experts2[:, CUT:] = (experts2[:, CUT:] + 1) % E
    extra = {"token_ids": ids} if gate == "hash" else {"expert_ids": experts} if gate == "oracle" else {}
    extra2 = {"token_ids": ids2} if gate == "hash" else {"expert_ids": experts2} if gate == "oracle" else {}
    y, aux = _restart(moe)(x, **extra)
    y2, _ = _restart(moe)(_perturb_suffix(x), **extra2)
    if cf is not None:
        assert aux["dropped_slots"].item() > 0  # drops happen, and still only later tokens lose slots
    assert torch.equal(y[:, :CUT], y2[:, :CUT])
    assert not torch.equal(y[:, CUT:], y2[:, CUT:])


def _restart(moe: MoE) -> MoE:
    """Restart generators so both runs draw the same noise (as two identical seeded runs would)."""
    moe.gate._generator = None
    return moe


def test_expert_choice_leaks_the_future_and_is_refused_by_a_causal_layer():
    moe = MoE(D, E, 2, gate="expert-choice", seed=1)
    x = _x()
    y, _ = moe(x)
    y2, _ = moe(_perturb_suffix(x))
    assert not torch.equal(y[:, :CUT], y2[:, :CUT])  # later tokens took earlier tokens' experts
    with pytest.raises(ValueError, match="not causal-safe"):
        MoE(D, E, 2, gate="expert-choice", causal=True)
    with pytest.raises(ValueError, match="not causal-safe"):
        MoE(D, E, 2, gate="sinkhorn", causal=True)


def test_dropped_tokens_pass_through_the_residual():
    moe = MoE(D, E, 1, gate="switch", capacity_factor=0.25, seed=2)
    x = _x()
    y, aux = moe(x)
    block = x + y
    dropped = (y == 0).all(-1)
    assert aux["dropped_slots"].item() == dropped.sum().item() > 0
    assert torch.equal(block[dropped], x[dropped])


def test_train_and_eval_capacity_are_explicit():
    moe = MoE(D, E, 2, capacity_factor=0.5, eval_capacity_factor=None, seed=3)
    assert moe.eval_capacity_factor == 0.5  # None means "same as training"
    moe = MoE(D, E, 2, capacity_factor=0.5, eval_capacity_factor=0.0, seed=3)
    x = _x()
    assert moe.train()(x)[1]["dropped_slots"].item() > 0
    assert moe.eval()(x)[1]["dropped_slots"].item() == 0
    # eval with cf = 0 (dynamic, no drops) equals dropless
    dropless = MoE(D, E, 2, seed=3).eval()
    torch.testing.assert_close(moe(x)[0], dropless(x)[0])


def test_jitter_changes_training_only():
    moe = MoE(D, E, 2, gate_kwargs={"jitter": 0.3}, seed=4)
    x = _x()
    y_eval, _ = moe.eval()(x)
    assert torch.equal(moe(x)[0], y_eval)
    assert not torch.equal(moe.train()(x)[0], y_eval)


def test_seeded_layers_are_identical_and_state_dict_round_trips():
    a = MoE(D, E, 2, gate="hash", gate_kwargs={"vocab_size": 10, "seed": 5}, seed=6)
    b = MoE(D, E, 2, gate="hash", gate_kwargs={"vocab_size": 10, "seed": 5}, seed=6)
    for (n, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(p, q), n
    c = MoE(D, E, 2, gate="hash", gate_kwargs={"vocab_size": 10, "seed": 7}, seed=8)
    c.load_state_dict(a.state_dict())
    ids = torch.randint(0, 10, (B, S))
    assert torch.equal(a(_x(), token_ids=ids)[0], c(_x(), token_ids=ids)[0])
    assert torch.equal(a(_x(), token_ids=ids)[0], a(_x(), token_ids=ids)[0])  # deterministic


def test_low_precision_input_keeps_dtype_and_fp32_router():
    moe = MoE(D, E, 2, seed=9).to(torch.bfloat16)
    y, aux = moe(_x().to(torch.bfloat16))
    assert y.dtype == torch.bfloat16
    assert aux["balance_loss"].dtype == torch.float32


def test_nan_logits_name_the_layer():
    model = torch.nn.ModuleDict({"block0": MoE(D, E, 2, seed=0)})
    name_gates(model)
    x = _x()
    x[0, 3, 1] = float("nan")
    with pytest.raises(ValueError, match=r"router 'block0\.gate'"):
        model["block0"](x)


@pytest.mark.parametrize(
    ("make", "err", "match"),
    [
        (lambda: MoE(D, E, E + 1), ValueError, "k must be in"),
        (lambda: MoE(D, E, 2, capacity_factor=float("nan")), ValueError, "capacity_factor"),
        (lambda: MoE(D, E, 2, eval_capacity_factor="1.25"), ValueError, "eval_capacity_factor"),
        (lambda: MoE(D, E, 2, gate="topk"), KeyError, "did you mean 'top-k'"),
        (lambda: MoE(D, E, 2, gate=TopKGate(D, E, 1)), ValueError, "gate is built for"),
        (
            lambda: MoE(D, E, 2, gate=TopKGate(D, E, 2), gate_kwargs={"jitter": 0.1}),
            ValueError,
            "gate_kwargs",
        ),
        (lambda: MoE(D, E, 2, gate_kwargs={"jitter": 2.0}), ValueError, "jitter"),
        (lambda: MoE(D, E, 2, expert="moe"), ValueError, "expert kind"),
        (lambda: MoE(D, E, 2, alignment=0), ValueError, "alignment"),
        (lambda: MoE(D, E, 2, balance_coef=-1.0), ValueError, "balance_coef"),
    ],
)
def test_bad_construction(make, err, match):
    with pytest.raises(err, match=match):
        make()


def test_bad_forward_input():
    moe = MoE(D, E, 2, causal=True, gate="hash", gate_kwargs={"vocab_size": 4})
    with pytest.raises(ValueError, match=r"\(\.\.\., 8\)"):
        moe(torch.randn(3, D + 1))
    with pytest.raises(ValueError, match="batch, seq, dim"):
        moe(torch.randn(1, 2, 3, D))
    with pytest.raises(ValueError, match="token_ids must have shape"):
        moe(torch.randn(2, 3, D), token_ids=torch.zeros(3, 2, dtype=torch.long))


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"capacity_factor": 1.0}, {"gate": "sinkhorn"}, {"gate": "expert-choice"}, {"gate": "random"}],
)
def test_empty_batch_gives_empty_output_and_finite_aux(kwargs):
    y, aux = MoE(D, E, 2, seed=0, **kwargs)(torch.randn(0, D))
    assert y.shape == (0, D)
    assert all(bool(torch.isfinite(v.float()).all()) for v in aux.values())


@pytest.mark.parametrize("kind", ["ffn", "glu"])
@pytest.mark.parametrize("dim", [16, 6])  # 16: torch's grouped GEMM; 6 (rows not 16-byte aligned): the loop
def test_experts_grouped_equals_each_expert_with_gradients(kind, dim):
    torch.manual_seed(0)
    experts = Experts(4, dim, 12, kind=kind)
    assert experts._can_group(torch.zeros(1, dim)) == (dim == 16 and hasattr(torch, "_grouped_mm"))
    x = torch.randn(20, dim, requires_grad=True)
    counts = [5, 0, 10, 5]  # an expert without rows
    y = experts.grouped(x, counts)
    ref = torch.cat([experts.expert(e, rows) for e, rows in enumerate(x.split(counts)) if rows.shape[0]])
    torch.testing.assert_close(y, ref)
    g = torch.randn_like(y)
    got = torch.autograd.grad(y, [x, experts.w1, experts.w2, experts.b1], g)
    want = torch.autograd.grad(ref, [x, experts.w1, experts.w2, experts.b1], g)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="do not split"):
        experts.grouped(x, [5, 5, 5, 4])
