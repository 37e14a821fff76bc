"""SR-STE: the N:M mask and the sparse-refined straight-through update on hand-checkable cases."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sparsetorch.masks import get_masks as attached
from sparsetorch.patterns import NM
from sparsetorch.training import TRAINERS
from sparsetorch.training.nm import nm_mask
from tests.training.method_testutil import prepared
from tests.training.training_testutil import TARGETS, batches, net, train


def test_mask_keeps_n_largest_of_every_m_inputs_by_hand():
    w = torch.tensor([[0.1, -0.5, 0.3, 0.2, 4.0, -3.0, 2.0, 1.0], [-1.0, 0.0, 0.0, 2.0, 0.5, 0.5, -0.5, 0.6]])
    # Row 0: |-0.5|, 0.3 of the first four, 4, |-3| of the next; row 1: 2, |-1|, then 0.6 and the
    # first of the tied 0.5s (ties keep the earlier).
    assert nm_mask(w, NM(2, 4)).tolist() == [
        [False, True, True, False, True, True, False, False],
        [True, False, False, True, True, False, False, True],
    ]


def one_layer(w: torch.Tensor) -> nn.Module:
    model = nn.Sequential(nn.Linear(w.shape[1], w.shape[0], bias=False), nn.Linear(w.shape[0], 2))
    with torch.no_grad():
        model[0].weight.copy_(w)
    return model


def test_sparse_refined_update_by_hand():
    w = torch.tensor([[0.1, -0.5, 0.3, 0.2], [1.0, -2.0, 0.05, -0.01]])
    model = one_layer(w)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    m = TRAINERS.get("sr-ste")(decay=0.5)  # 2:4, a large lambda_w so the term is visible
    m.prepare(model, opt)
    mask = torch.tensor([[False, True, True, False], [True, True, False, False]])
    assert torch.equal(m.masks["0.weight"], mask)
    assert torch.equal(model[0].weight, torch.where(mask, w, 0.0))  # the forward sees W~ only
    x, y = torch.tensor([[1.0, 2.0, -1.0, 0.5]]), torch.tensor([1])
    # dL/dW~ from the sparse weight, computed on its own: the straight-through gradient.
    sparse = torch.where(mask, w, 0.0).requires_grad_()
    head = {k: v.detach() for k, v in model[1].named_parameters()}
    F.cross_entropy(F.linear(F.linear(x, sparse), head["weight"], head["bias"]), y).backward()
    F.cross_entropy(model(x), y).backward()
    original = model[0].parametrizations.weight.original
    torch.testing.assert_close(original.grad, sparse.grad)  # dense: pruned weights get it too
    assert (original.grad[~mask] != 0).all()
    opt.step()  # W <- W - (g + 0.5 * ~mask * W)
    expected = w - (sparse.grad + 0.5 * torch.where(mask, 0.0, w))
    torch.testing.assert_close(original.detach(), expected)
    assert m.step()
    assert torch.equal(m.masks["0.weight"], nm_mask(expected, NM(2, 4)))  # recomputed from |W|


def test_mask_always_follows_the_dense_weights_and_pruned_weights_return():
    model, opt, m = prepared("sr-ste")  # 1:4
    first = {f: mask.clone() for f, mask in m.masks.items()}

    def after(updated):
        assert updated
        for f in TARGETS:
            original = model.get_submodule(f.rpartition(".")[0]).parametrizations.weight.original
            assert torch.equal(m.masks[f], nm_mask(original, NM(1, 4)))

    train(model, m, opt, batches(12), after_step=after)
    flips = sum(int((first[f] != m.masks[f]).sum()) for f in TARGETS)
    assert flips > 0  # the topology moves (the paper's sparse architecture divergence)
    assert m.stats["updates"] == 12


def test_n_m_groups_run_along_the_input_dimension_of_a_conv():
    model = nn.Sequential(nn.Conv2d(8, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4, 2))
    m = TRAINERS.get("sr-ste")()
    m.prepare(model, torch.optim.SGD(model.parameters(), lr=0.1))
    mask = m.masks["0.weight"]  # (out 4, in 8, 3, 3)
    groups = mask.movedim(1, -1).reshape(-1, 4)  # 4 consecutive input channels at each position
    assert (groups.sum(-1) == 2).all()
    weight = model[0].parametrizations.weight.original.detach().abs().movedim(1, -1).reshape(-1, 4)
    kept_min = torch.where(groups, weight, torch.inf).min(-1).values
    dropped_max = torch.where(groups, -torch.inf, weight).max(-1).values
    assert (kept_min >= dropped_max).all()


def test_refinement_is_added_once_per_optimizer_step_under_accumulation():
    x, y = batches(1, size=8)[0]
    results = []
    for parts in (1, 2):
        model = net()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        m = TRAINERS.get("sr-ste")(pattern="1:4", decay=0.1)
        m.prepare(model, opt)
        for xb, yb in zip(x.chunk(parts), y.chunk(parts), strict=True):
            (F.cross_entropy(model(xb), yb, reduction="sum") / len(x)).backward()
            m.step()  # no optimizer step yet: counts nothing
        opt.step()
        m.step()
        originals = {f: f.replace("weight", "parametrizations.weight.original") for f in TARGETS}
        results.append({f: model.get_parameter(p).detach().clone() for f, p in originals.items()})
    for f in TARGETS:
        torch.testing.assert_close(results[0][f], results[1][f])


def test_optimizer_state_of_pruned_weights_is_kept():
    model, opt, m = prepared("sr-ste")
    train(model, m, opt, batches(3))
    original = model[0].parametrizations.weight.original
    momentum = opt.state[original]["momentum_buffer"]
    assert (momentum[~m.masks["0.weight"]] != 0).any()


def test_decay_zero_is_the_plain_straight_through_estimator():
    runs = []
    for decay in (0.0, 2e-4):
        model, opt, m = prepared("sr-ste", decay=decay)
        train(model, m, opt, batches(2))
        runs.append(model[0].parametrizations.weight.original.detach().clone())
    assert not torch.equal(runs[0], runs[1])


def test_finish_leaves_n_m_weights():
    model, opt, m = prepared("sr-ste")
    train(model, m, opt, batches(2))
    m.finish()
    assert attached(model) == {}
    assert ((model[0].weight != 0).reshape(16, 3, 4).sum(-1) <= 1).all()


def test_config_and_bad_input():
    assert TRAINERS.get("sr-ste")().config.sparsity == 0.5
    assert TRAINERS.get("sr-ste")().config.decay == 2e-4
    assert TRAINERS.get("sr-ste")(pattern="1:4").config.sparsity == 0.75
    with pytest.raises(ValueError, match="incompatible"):
        TRAINERS.get("sr-ste")(pattern="unstructured")
    with pytest.raises(ValueError, match=r"sparsity=0\.5"):
        TRAINERS.get("sr-ste")(sparsity=0.9)
    with pytest.raises(ValueError, match="distribution='uniform'"):
        TRAINERS.get("sr-ste")(distribution="erk")
    with pytest.raises(ValueError, match="decay"):
        TRAINERS.get("sr-ste")(decay=-1.0)
    with pytest.raises(RuntimeError, match="before prepare"):
        TRAINERS.get("sr-ste")().step()
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 2))  # 6 inputs: no groups of 4
    with pytest.raises(ValueError, match="not divisible"):
        TRAINERS.get("sr-ste")().prepare(model, torch.optim.SGD(model.parameters(), lr=0.1))
    assert attached(model) == {}
    model = net()
    TRAINERS.get("random-pruning")(sparsity=0.5).prepare(model, torch.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(ValueError, match="already parametrized"):
        TRAINERS.get("sr-ste")(pattern="1:4").prepare(model, torch.optim.SGD(model.parameters(), lr=0.1))


@pytest.mark.parametrize("name", ["sr-ste", "bdwp"])
def test_updates_broadcast_rank_zero_masks(name, monkeypatch):
    # Under DDP the base broadcasts rank 0's masks, on the in-place swap of N:M methods (trains_pruned) too.
    import sparsetorch.training.base as base

    seen = []

    def fake_broadcast(masks, order):
        seen.append(list(order))
        for f in order:  # "rank 0" holds the flipped group order: its masks win
            masks[f] = masks[f].flip(1)

    monkeypatch.setattr(base, "broadcast_masks", fake_broadcast)
    model, opt, m = prepared(name)
    assert seen == [list(TARGETS)]
    for f in TARGETS:
        original = model.get_submodule(f.rpartition(".")[0]).parametrizations.weight.original
        assert torch.equal(m.masks[f], nm_mask(original, NM(1, 4)).flip(1))
    train(model, m, opt, batches(1))
    assert len(seen) == 2


def test_old_module_name_is_a_deprecated_alias():
    import importlib

    import sparsetorch.training.sr_ste as sr_ste

    with pytest.warns(DeprecationWarning, match="sr_ste"):
        old = importlib.reload(importlib.import_module("sparsetorch.training.srste"))
    assert old.SRSTE is sr_ste.SRSTE is TRAINERS.get("sr-ste")
