"""RoMA: the manifold regularizer against a loop, router-only fine-tuning, oracle routing, bad input."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from sparsetorch.models.gpt import GPT, GPTConfig
from sparsetorch.models.moe_gpt import MoEGPT, MoEGPTConfig
from sparsetorch.routing.oracle import (
    answer_logits,
    forced_last_token,
    last_moe_layers,
    oracle_routing,
)
from sparsetorch.routing.roma import (
    RomaConfig,
    SuccessfulSet,
    finetune_routers,
    freeze_except_routers,
    manifold_regularizer,
    neighbour_weights,
    router_probs,
    successful_set,
)

ANSWERS = torch.arange(1, 5)  # 4 answer tokens


def _loop_regularizer(r, z, ref_z, ref_r, k, sigma, exclude=None):
    """sum_i sum_{j in N(i)} W_ij ||r_i - r_j||^2 / B, one sample and one neighbour at a time."""
    total = 0.0
    for i in range(r.shape[0]):
        sims = []
        for j in range(ref_z.shape[0]):
            if exclude is not None and j == int(exclude[i]):
                continue
            cos = float(z[i] @ ref_z[j] / (z[i].norm() * ref_z[j].norm()))
            sims.append((cos, j))
        sims.sort(key=lambda s: -s[0])
        near = sims[:k]
        aff = [math.exp(-((1 - c) ** 2) / (2 * sigma**2)) for c, _ in near]
        for a, (_, j) in zip(aff, near, strict=True):
            total += a / sum(aff) * float(((r[i] - ref_r[j]) ** 2).sum())
    return total / r.shape[0]


def _data(seed=0, b=6, n=9, d=5, width=8):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.softmax(torch.randn(b, width, generator=g), -1),
        torch.randn(b, d, generator=g),
        torch.randn(n, d, generator=g),
        torch.softmax(torch.randn(n, width, generator=g), -1),
    )


def test_regularizer_equals_hand_written_loop():
    r, z, ref_z, ref_r = _data()
    got = manifold_regularizer(r, z, ref_z, ref_r, k=3, sigma=0.4)
    assert got.item() == pytest.approx(_loop_regularizer(r, z, ref_z, ref_r, 3, 0.4), rel=1e-5)
    total = manifold_regularizer(r, z, ref_z, ref_r, k=3, sigma=0.4, reduction="sum")
    assert total.item() == pytest.approx(got.item() * r.shape[0], rel=1e-5)
    exclude = torch.tensor([0, -1, 2, 8, -1, 4])
    got = manifold_regularizer(r, z, ref_z, ref_r, k=4, sigma=0.7, exclude=exclude)
    assert got.item() == pytest.approx(_loop_regularizer(r, z, ref_z, ref_r, 4, 0.7, exclude), rel=1e-5)


def test_neighbour_weights_pick_the_most_similar_and_sum_to_one():
    ref = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0]])
    idx, w = neighbour_weights(torch.tensor([[2.0, 0.1]]), ref, k=2, sigma=0.4)
    assert idx.tolist() == [[0, 2]]
    assert w.sum().item() == pytest.approx(1.0) and w[0, 0] > w[0, 1]
    idx, _ = neighbour_weights(torch.tensor([[2.0, 0.1]]), ref, k=2, sigma=0.4, exclude=torch.tensor([0]))
    assert idx.tolist() == [[2, 1]]


def test_zero_when_neighbours_route_identically_and_gradient_pulls_toward_them():
    _, z, ref_z, _ = _data()
    same = torch.softmax(torch.arange(8.0), -1)
    ref_r = same.expand(9, -1).clone()
    r = same.expand(6, -1).clone().requires_grad_(True)
    reg = manifold_regularizer(r, z, ref_z, ref_r, k=3, sigma=0.4)
    reg.backward()
    assert reg.item() == 0.0 and r.grad.abs().max().item() == 0.0
    # away from the neighbours: positive, and the gradient is 2/B sum_j W_ij (r_i - r_j)
    r2 = torch.softmax(torch.randn(6, 8, generator=torch.Generator().manual_seed(3)), -1).requires_grad_(True)
    reg = manifold_regularizer(r2, z, ref_z, ref_r, k=3, sigma=0.4)
    reg.backward()
    assert reg.item() > 0
    torch.testing.assert_close(r2.grad, 2.0 / 6 * (r2.detach() - same))  # weights sum to 1


def test_regularizer_refuses_bad_input():
    r, z, ref_z, ref_r = _data()
    with pytest.raises(ValueError, match="k=10"):
        manifold_regularizer(r, z, ref_z, ref_r, k=10, sigma=0.4)
    with pytest.raises(ValueError, match="k=9"):
        manifold_regularizer(r, z, ref_z, ref_r, k=9, sigma=0.4, exclude=torch.full((6,), -1))
    with pytest.raises(ValueError, match="empty"):
        manifold_regularizer(r, z, ref_z[:0], ref_r[:0], k=1, sigma=0.4)
    with pytest.raises(ValueError, match="one per sample"):
        manifold_regularizer(r[:5], z, ref_z, ref_r, k=3, sigma=0.4)
    with pytest.raises(ValueError, match="width"):
        manifold_regularizer(r[:, :6], z, ref_z, ref_r, k=3, sigma=0.4)
    with pytest.raises(ValueError, match="differ in width"):
        manifold_regularizer(r, z[:, :4], ref_z, ref_r, k=3, sigma=0.4)
    with pytest.raises(ValueError, match="reference routing has 8 rows"):
        manifold_regularizer(r, z, ref_z, ref_r[:8], k=3, sigma=0.4)
    bad = z.clone()
    bad[2, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        manifold_regularizer(r, bad, ref_z, ref_r, k=3, sigma=0.4)
    with pytest.raises(ValueError, match="NaN"):
        manifold_regularizer(r, z, ref_z, ref_r.clone().fill_(float("inf")), k=3, sigma=0.4)
    with pytest.raises(ValueError, match="2-d"):
        manifold_regularizer(r[0], z, ref_z, ref_r, k=3, sigma=0.4)
    with pytest.raises(ValueError, match="sigma"):
        manifold_regularizer(r, z, ref_z, ref_r, k=3, sigma=0.0)
    with pytest.raises(ValueError, match="reduction"):
        manifold_regularizer(r, z, ref_z, ref_r, k=3, sigma=0.4, reduction="max")


@pytest.mark.parametrize(
    "kwargs",
    [{"lam": -1.0}, {"k": 0}, {"sigma": 0.0}, {"lr": float("nan")}, {"epochs": 0}, {"warmup_steps": -1},
     {"tuned_layers": 1.5}, {"batch_size": True}],
)  # fmt: skip
def test_config_refuses_bad_values(kwargs):
    with pytest.raises(ValueError):
        RomaConfig(**kwargs)


# --- a tiny MoE LM that answers with one of 4 tokens at the last position ------------------------------


def _model(seed=0):
    gpt = GPTConfig(d_model=16, n_layer=2, n_head=2, block_size=8, vocab_size=32)
    return MoEGPT(MoEGPTConfig(gpt=gpt, num_experts=4, k=2, seed=seed))


def _samples(n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(5, 32, (n, 8), generator=g), torch.randint(0, 4, (n,), generator=g)


def _router_names(model):
    return {n for n, _ in model.named_parameters() if n.endswith("gate.weight")}


@pytest.fixture(scope="module")
def setup():
    model = _model()
    inputs, targets = _samples()
    emb = torch.randn(40, 6, generator=torch.Generator().manual_seed(1))
    layers = last_moe_layers(model, 2)
    ref = successful_set(model, inputs, targets, emb, layers=layers, answer_ids=ANSWERS)
    return model, inputs, targets, emb, ref


def test_successful_set_holds_the_correct_samples_with_their_routing(setup):
    model, inputs, targets, emb, ref = setup
    correct = answer_logits(model, inputs, ANSWERS).argmax(-1) == targets
    assert ref.rows.tolist() == torch.nonzero(correct).flatten().tolist() and len(ref.rows) >= 5
    assert ref.routing.shape == (len(ref.rows), 8)  # 2 layers x 4 experts
    torch.testing.assert_close(ref.routing.view(-1, 2, 4).sum(-1), torch.ones(len(ref.rows), 2))
    torch.testing.assert_close(ref.embeddings, emb[ref.rows])


def test_only_the_tuned_routers_receive_gradients_and_change(setup):
    model, inputs, targets, emb, _ = setup
    tuned = copy.deepcopy(model)
    layers = last_moe_layers(tuned, 1)
    freeze_except_routers(tuned, layers)
    answer_logits(tuned, inputs, ANSWERS).sum().backward()
    with_grad = {n for n, p in tuned.named_parameters() if p.grad is not None}
    assert with_grad == {f"{layers[0]}.gate.weight"}

    ref1 = successful_set(model, inputs, targets, emb, layers=last_moe_layers(model, 1), answer_ids=ANSWERS)
    tuned = copy.deepcopy(model)
    config = RomaConfig(
        lam=0.8, lr=1e-2, epochs=2, batch_size=8, warmup_steps=2, lam_warmup_steps=2, tuned_layers=1
    )
    history = finetune_routers(
        tuned, inputs, targets, config=config, answer_ids=ANSWERS, embeddings=emb, reference=ref1
    )
    assert len(history) == 10 and all(h["reg"] >= 0 and math.isfinite(h["task"]) for h in history)
    assert history[0]["lam"] == pytest.approx(0.4) and history[-1]["lam"] == pytest.approx(0.8)
    before, after = dict(model.named_parameters()), dict(tuned.named_parameters())
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert changed == {f"{last_moe_layers(model, 1)[0]}.gate.weight"}
    assert all(p.requires_grad for p in tuned.parameters()) and tuned.training == model.training


def test_no_gates_is_refused_and_the_model_left_unchanged(setup):
    _, inputs, targets, _, _ = setup
    dense = GPT(GPTConfig(d_model=16, n_layer=2, n_head=2, block_size=8, vocab_size=32))
    state = copy.deepcopy(dense.state_dict())
    with pytest.raises(ValueError, match="no MoE layers"):
        finetune_routers(
            dense, inputs, targets, config=RomaConfig(lam=0.0, tuned_layers=1), answer_ids=ANSWERS
        )
    with pytest.raises(ValueError, match="no MoE layers"):
        freeze_except_routers(dense, ["blocks.0.mlp"])
    assert all(p.requires_grad for p in dense.parameters())
    assert all(torch.equal(v, dense.state_dict()[k]) for k, v in state.items())
    random_gates = MoEGPT(
        MoEGPTConfig(
            gpt=GPTConfig(d_model=16, n_layer=1, n_head=2, block_size=8, vocab_size=32), gate="random"
        )
    )
    with pytest.raises(ValueError, match="no learned router"):
        freeze_except_routers(random_gates, ["blocks.0.moe"])


def test_finetune_refuses_bad_input_before_touching_the_model(setup):
    model, inputs, targets, emb, ref = setup
    tuned = copy.deepcopy(model)
    cfg = RomaConfig(lam=0.8, tuned_layers=2, warmup_steps=0, lam_warmup_steps=0, lr=1e-2)
    bad = emb.clone()
    bad[0, 0] = float("nan")
    empty = SuccessfulSet(ref.embeddings[:0], ref.routing[:0], ref.rows[:0])
    narrow = SuccessfulSet(ref.embeddings, ref.routing[:, :4], ref.rows)
    cases = [
        ({"embeddings": emb, "reference": None}, "needs the samples' embeddings"),
        ({"embeddings": bad, "reference": ref}, "NaN"),
        ({"embeddings": emb[:30], "reference": ref}, "30 embeddings for 40"),
        ({"embeddings": emb, "reference": empty}, "empty"),
        ({"embeddings": emb, "reference": narrow}, "width 4"),
    ]
    for kwargs, match in cases:
        with pytest.raises(ValueError, match=match):
            finetune_routers(tuned, inputs, targets, config=cfg, answer_ids=ANSWERS, **kwargs)
    with pytest.raises(ValueError, match="targets"):
        finetune_routers(
            tuned, inputs, targets[:5], config=cfg, answer_ids=ANSWERS, embeddings=emb, reference=ref
        )
    with pytest.raises(ValueError, match="last 3 MoE layers"):
        finetune_routers(
            tuned, inputs, targets, config=RomaConfig(lam=0.0, tuned_layers=3), answer_ids=ANSWERS
        )
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), tuned.parameters(), strict=True))
    assert all(p.requires_grad for p in tuned.parameters())


def test_finetuning_is_deterministic_and_k_is_capped_at_the_successful_set(setup):
    model, inputs, targets, emb, ref = setup
    small_ref = SuccessfulSet(ref.embeddings[:3], ref.routing[:3], ref.rows[:3])
    cfg = RomaConfig(
        lam=0.8, k=5, lr=1e-2, epochs=1, batch_size=10, warmup_steps=0, lam_warmup_steps=0, tuned_layers=2
    )
    runs = []
    for _ in range(2):
        tuned = copy.deepcopy(model)
        hist = finetune_routers(
            tuned, inputs, targets, config=cfg, answer_ids=ANSWERS, embeddings=emb, reference=small_ref
        )
        runs.append(
            (hist, [p.detach().clone() for n, p in tuned.named_parameters() if n in _router_names(model)])
        )
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1], strict=True))
    other = copy.deepcopy(model)
    finetune_routers(
        other, inputs, targets, config=RomaConfig(**{**cfg.__dict__, "seed": 1}), answer_ids=ANSWERS,
        embeddings=emb, reference=small_ref,
    )  # fmt: skip
    assert not torch.equal(other.blocks[1].moe.gate.weight, runs[0][1][1])


def test_router_probs_are_the_last_tokens_softmax(setup):
    model, inputs, _, _, _ = setup
    layers = last_moe_layers(model, 2)
    with torch.no_grad(), router_probs(model, layers) as store:
        model(inputs[:3])
    assert set(store) == set(layers)
    for name in layers:
        assert store[name].shape == (3, 4)
        torch.testing.assert_close(store[name].sum(-1), torch.ones(3))
    with torch.no_grad():
        model(inputs[:3])  # hooks are gone after the block
    assert store[layers[0]].shape == (3, 4)


def test_forcing_the_routers_own_choice_changes_nothing(setup):
    model, inputs, _, _, _ = setup
    layers = last_moe_layers(model, 1)
    with torch.no_grad():
        with router_probs(model, layers) as store:
            plain = answer_logits(model, inputs)
        own = store[layers[0]].topk(2, dim=-1).indices  # (B, 2) the router's choice at the last token
        with forced_last_token(model, layers, own):
            forced = answer_logits(model, inputs)
        with forced_last_token(model, layers, torch.tensor([0, 1])):
            other = answer_logits(model, inputs)
    torch.testing.assert_close(forced, plain)
    changed = (own.sort(-1).values != torch.tensor([0, 1])).any(-1)
    assert changed.any() and not torch.allclose(other[changed], plain[changed])


def test_oracle_is_at_least_the_router_and_its_sets_answer_right(setup):
    model, inputs, targets, _, _ = setup
    layers = last_moe_layers(model, 2)
    result = oracle_routing(model, inputs, targets, layers=layers, answer_ids=ANSWERS, batch_size=16)
    assert (result.oracle_correct | ~result.router_correct).all()  # router right => oracle right
    assert result.oracle_accuracy >= result.router_accuracy and result.gap == pytest.approx(
        result.oracle_accuracy - result.router_accuracy
    )
    assert result.gap > 0  # 6 expert sets of 4 answers: some wrong answers become right
    plain = answer_logits(model, inputs, ANSWERS).argmax(-1) == targets
    assert torch.equal(result.router_correct, plain)
    hits = torch.nonzero(result.best_experts[:, 0] >= 0).flatten()
    with torch.no_grad(), forced_last_token(model, layers, result.best_experts[hits]):
        assert (answer_logits(model, inputs[hits], ANSWERS).argmax(-1) == targets[hits]).all()
    again = oracle_routing(model, inputs, targets, layers=layers, answer_ids=ANSWERS, batch_size=7)
    assert torch.equal(again.oracle_correct, result.oracle_correct)  # batch size does not matter


def test_oracle_and_forcing_refuse_bad_input(setup):
    model, inputs, targets, _, _ = setup
    layers = last_moe_layers(model, 1)
    with pytest.raises(ValueError, match="max_candidates"):
        oracle_routing(model, inputs, targets, layers=layers, answer_ids=ANSWERS, max_candidates=5)
    with pytest.raises(ValueError, match="not MoE layers"):
        oracle_routing(model, inputs, targets, layers=["blocks.0.attn"], answer_ids=ANSWERS)
    with pytest.raises(ValueError, match="token ids"):
        oracle_routing(model, inputs.float(), targets, layers=layers)
    with (
        pytest.raises(ValueError, match="in \\[0, 4\\)"),
        forced_last_token(model, layers, torch.tensor([0, 4])),
    ):
        pass
    with pytest.raises(ValueError, match="k=2"), forced_last_token(model, layers, torch.tensor([0, 1, 2])):
        pass
