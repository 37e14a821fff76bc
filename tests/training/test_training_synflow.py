"""SynFlow: the synaptic-flow score of a linear chain by hand, the exponential schedule, the
iterative loop against a plain re-implementation, data-free scoring."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sparsetorch.training import TRAINERS
from sparsetorch.training.synflow import schedule
from tests.training.method_testutil import calibration, prepared
from tests.training.training_testutil import TARGETS, net


def chain(weights: list[torch.Tensor]) -> nn.Module:
    layers = [nn.Linear(w.shape[1], w.shape[0], bias=False) for w in weights]
    with torch.no_grad():
        for layer, w in zip(layers, weights, strict=True):
            layer.weight.copy_(w)
    return nn.Sequential(*layers)


def sgd(model):
    return torch.optim.SGD(model.parameters(), lr=0.1)


def test_one_shot_flow_of_a_linear_chain_by_hand():
    # R = 1^T |W3| |W2| |W1| 1, so S1_ij = (1^T |W3| |W2|)_i |W1_ij| and S2_ij = |W3|_i (|W1| 1)_j |W2_ij|.
    w1 = torch.tensor([[1.0, -2.0], [0.5, 3.0]])
    w2 = torch.tensor([[-1.0, 0.25], [2.0, 1.0]])
    w3 = torch.tensor([[1.0, -4.0]])
    s1 = (w3.abs() @ w2.abs()).T * w1.abs()  # rows scaled by 1^T |W3| |W2| = [9, 4.25]
    s2 = w3.abs().T * (w1.abs() @ torch.ones(2)) * w2.abs()  # |W3|_i = [1, 4], |W1| 1 = [3, 3.5]
    assert torch.equal(s1, torch.tensor([[9.0, 18.0], [2.125, 12.75]]))
    assert torch.equal(s2, torch.tensor([[3.0, 0.875], [24.0, 14.0]]))
    model = chain([w1, w2, w3])
    m = TRAINERS.get("synflow")(sparsity=0.5, iterations=1)
    m.prepare(model, sgd(model), targets=["0.weight", "1.weight"], data=torch.randn(4, 2))
    # The four highest of {9, 18, 2.125, 12.75, 3, 0.875, 24, 14} over both layers: 24, 18, 14, 12.75.
    assert m.masks["0.weight"].tolist() == [[False, True], [False, True]]
    assert m.masks["1.weight"].tolist() == [[False, False], [True, True]]
    # The model keeps its signs and its dtype: only the copy was linearised.
    assert model[0].weight.dtype == torch.float32 and model[0].weight[0, 1] == -2.0


def test_exponential_schedule():
    assert schedule(100, sparsity=0.9, iterations=100) == pytest.approx(0.9)
    assert schedule(50, sparsity=0.99, iterations=100) == pytest.approx(0.9)  # density 0.01**0.5
    assert schedule(1, sparsity=0.9, iterations=1) == pytest.approx(0.9)
    levels = [schedule(e, sparsity=0.9, iterations=10) for e in range(1, 11)]
    assert levels == sorted(levels)
    with pytest.raises(ValueError, match="iteration"):
        schedule(0, sparsity=0.9, iterations=10)


def reference_loop(weights: list[torch.Tensor], sparsity: float, iterations: int) -> list[torch.Tensor]:
    """The reference's prune loop written out for a bias-free ReLU chain with every layer a target."""
    absolute = [w.double().abs() for w in weights]
    masks = [torch.ones_like(w, dtype=torch.bool) for w in weights]
    total = sum(w.numel() for w in weights)
    for e in range(1, iterations + 1):
        params = [(a * m).requires_grad_() for a, m in zip(absolute, masks, strict=True)]
        h = torch.ones(weights[0].shape[1], dtype=torch.float64)
        for p in params:
            h = torch.relu(p @ h)
        grads = torch.autograd.grad(h.sum(), params)
        scores = torch.cat([(g * p).abs().detach().reshape(-1) for g, p in zip(grads, params, strict=True)])
        scores[~torch.cat([m.reshape(-1) for m in masks])] = -1.0
        keep = total - round((1 - (1 - sparsity) ** (e / iterations)) * total)
        kept = torch.zeros(total, dtype=torch.bool)
        kept[torch.topk(scores, keep).indices] = True
        masks = [
            k.reshape(w.shape) for k, w in zip(kept.split([w.numel() for w in weights]), weights, strict=True)
        ]
    return masks


def test_iterative_loop_matches_a_plain_reimplementation():
    g = torch.Generator().manual_seed(3)
    weights = [torch.randn(8, 6, generator=g), torch.randn(8, 8, generator=g), torch.randn(4, 8, generator=g)]
    model = nn.Sequential(*[m for w in chain(weights) for m in (w, nn.ReLU())][:-1])
    fqns = ["0.weight", "2.weight", "4.weight"]
    m = TRAINERS.get("synflow")(sparsity=0.9, iterations=20)
    m.prepare(model, sgd(model), targets=fqns, data=torch.randn(2, 6))
    expected = reference_loop(weights, 0.9, 20)
    for f, mask in zip(fqns, expected, strict=True):
        assert torch.equal(m.masks[f], mask), f
    one_shot = reference_loop(weights, 0.9, 1)
    assert any(not torch.equal(a, b) for a, b in zip(expected, one_shot, strict=True))  # iterating matters


def test_data_free():
    a = prepared("synflow")[2].masks
    model = net()
    m = TRAINERS.get("synflow")(sparsity=0.75, iterations=10)
    m.prepare(model, sgd(model), data=torch.full((3, 12), 7.0))  # other values, no labels
    assert all(torch.equal(a[f], m.masks[f]) for f in TARGETS)
    with pytest.raises(ValueError, match="iterations"):
        TRAINERS.get("synflow")(iterations=0)
    assert TRAINERS.get("synflow")().config.iterations == 100


def test_synflow_keeps_batchnorm_models_in_train_mode():
    model = nn.Sequential(nn.Linear(12, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    m = TRAINERS.get("synflow")(sparsity=0.5, iterations=5)
    m.prepare(model, sgd(model), data=calibration())
    assert model.training and torch.equal(model[1].running_var, state["1.running_var"])
    assert m.sparsity == 0.5
