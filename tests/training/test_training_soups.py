"""Sparse Model Soups: the cycle schedule, the soup as the mean of ingredients sharing one mask,
plain IMP with one ingredient, batch-norm recalibration, bad input."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from sparsetorch import allocation
from sparsetorch.masks import get_masks as attached
from sparsetorch.patterns import n_pruned
from sparsetorch.training import fit, keep_top_among
from sparsetorch.training.soups import average, cycle_sparsity, sparse_model_soups
from tests.training.training_testutil import TARGETS, net


def data(n: int = 64, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 12, generator=g)
    return x, x[:, :3].argmax(1)


FIT = {"batch_size": 16, "lr": 0.05}


def test_cycle_schedule():
    assert cycle_sparsity(1, sparsity=0.875, cycles=3) == pytest.approx(0.5)
    assert cycle_sparsity(2, sparsity=0.875, cycles=3) == pytest.approx(0.75)
    assert cycle_sparsity(3, sparsity=0.875, cycles=3) == 0.875
    with pytest.raises(ValueError, match="cycle"):
        cycle_sparsity(0, sparsity=0.9, cycles=3)


def test_soup_is_the_mean_of_ingredients_that_share_one_mask():
    model = net()
    result = sparse_model_soups(
        model, data(), sparsity=0.75, cycles=2, ingredients=3, test=data(32, 1), **FIT
    )
    assert result.model is model and result.sparsities == [0.5, 0.75]
    final = attached(model)
    total = sum(m.numel() for m in final.values())
    assert sum(int((~m).sum()) for m in final.values()) == n_pruned(total, 0.75)
    for ingredient in result.ingredients:
        assert all(torch.equal(attached(ingredient)[f], final[f]) for f in TARGETS)
    soup = average(result.ingredients)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, soup[key])
    for f in TARGETS:
        assert (model.get_submodule(f.rpartition(".")[0]).weight[~final[f]] == 0).all()
    assert len(result.soup_accuracy) == 2 and [len(a) for a in result.ingredient_accuracy] == [3, 3]
    # The ingredients differ (their seeds do), the soup is none of them.
    weights = [r[0].parametrizations.weight.original for r in result.ingredients]
    assert not torch.equal(weights[0], weights[1])


def test_one_ingredient_is_plain_imp():
    x, y = data()
    model, reference = net(), net()
    sparse_model_soups(model, (x, y), sparsity=0.75, cycles=2, ingredients=1, seed=5, **FIT)
    # By hand: global magnitude prune, retrain with the cycle's seed, twice.
    from sparsetorch.masks import attach

    for c, level in ((1, 0.5), (2, 0.75)):
        weights = {f: reference.get_submodule(f.rpartition(".")[0]).weight.detach() for f in TARGETS}
        old = attached(reference)
        scores = {
            f: weights[f].abs().masked_fill(~old[f], -1) if f in old else weights[f].abs() for f in TARGETS
        }
        per_layer = allocation.global_budget(scores, level)
        new = {
            f: keep_top_among(scores[f], s.numel() - n_pruned(s.numel(), per_layer[f]))
            for f, s in scores.items()
        }
        attach(reference, new)
        fit(reference, None, (x, y), epochs=1, seed=5 + 1000 * c, progress=False, **FIT)
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value)


def test_batch_norm_is_recalibrated_after_averaging():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))
    x, y = data()
    result = sparse_model_soups(model, (x, y), sparsity=0.5, cycles=1, ingredients=2, **FIT)
    expected = copy.deepcopy(model)
    with torch.no_grad():
        h = expected[0](x)
    torch.testing.assert_close(model[1].running_mean, h.mean(0))
    # A cumulative average over the batches of 16: of their means and unbiased variances.
    torch.testing.assert_close(model[1].running_var, torch.stack([b.var(0) for b in h.split(16)]).mean(0))
    assert model[1].momentum == 0.1 and model.training
    assert len(result.ingredients) == 2


def test_bad_input():
    for bad in ({"cycles": 0}, {"ingredients": 0}, {"epochs": True}, {"sparsity": 1.0}):
        with pytest.raises(ValueError):
            sparse_model_soups(net(), data(), **bad)
    a, b = net(0), net(1)
    from sparsetorch.masks import attach

    attach(a, {"0.weight": torch.ones(16, 12, dtype=torch.bool)})
    attach(b, {"0.weight": torch.zeros(16, 12, dtype=torch.bool)})
    with pytest.raises(ValueError, match="one shared mask"):
        average([a, b])
