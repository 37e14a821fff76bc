"""Each method's rule against hand-computed cases or an independent straightforward implementation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from sparsetorch import allocation
from sparsetorch.models import create_model
from sparsetorch.patterns import n_pruned
from sparsetorch.training import TRAINERS, drop_and_grow, keep_top_among
from tests.training.training_testutil import SPARSITY, TARGETS, TOTAL, batches, net, prepared, train


def test_keep_top_by_hand():
    scores = torch.tensor([3.0, 1.0, 2.0, 1.0])
    assert keep_top_among(scores, 2).tolist() == [True, False, True, False]
    assert keep_top_among(torch.ones(3), 1).tolist() == [True, False, False]  # ties keep the earlier
    assert keep_top_among(scores, 1, candidates=torch.tensor([False, True, False, True])).tolist() == [
        False,
        True,
        False,
        False,
    ]
    assert keep_top_among(scores, 0).sum() == 0
    with pytest.raises(ValueError, match="cannot keep"):
        keep_top_among(scores, 2, candidates=torch.tensor([True, False, False, False]))


def test_keep_top_is_a_deprecated_alias_of_keep_top_among():
    from sparsetorch import training
    from sparsetorch.training import ops

    scores, candidates = torch.tensor([3.0, 1.0, 2.0, 1.0]), torch.tensor([False, True, True, True])
    for alias in (ops.keep_top, training.keep_top):
        with pytest.warns(DeprecationWarning, match="keep_top_among") as w:
            got = alias(scores, 2, candidates)
        assert w[0].filename == __file__
        assert torch.equal(got, keep_top_among(scores, 2, candidates=candidates))


def test_drop_and_grow_by_hand():
    mask = torch.tensor([True, True, True, False, False, False])
    drop = torch.tensor([0.5, 0.1, 0.9, 0.0, 0.0, 0.0])  # drops element 1
    grow = torch.tensor([0.0, 0.2, 0.0, 0.3, 0.1, 0.7])  # grows element 5
    assert drop_and_grow(mask, drop, grow, 1).tolist() == [True, False, True, False, False, True]
    # A dropped weight may come straight back when its grow score is the highest.
    grow = torch.tensor([0.0, 0.9, 0.0, 0.3, 0.1, 0.7])
    assert drop_and_grow(mask, drop, grow, 1).tolist() == mask.tolist()
    assert drop_and_grow(mask, drop, grow, 2).sum() == 3


def test_rigl_drop_fraction_anneals_and_updates_stop_at_end():
    model, opt, m = prepared("rigl", drop_fraction_anneal="cosine")  # update_every=2, end=10
    assert m.drop_fraction(0) == pytest.approx(0.3)
    assert m.drop_fraction(5) == pytest.approx(0.15)
    assert m.drop_fraction(10) == pytest.approx(0.0)
    updates = []
    train(model, m, opt, batches(TOTAL), after_step=lambda u: updates.append(m.step_count) if u else None)
    assert updates == [2, 4, 6, 8, 10]


def test_set_drops_smallest_magnitude_and_keeps_counts():
    model, opt, m = prepared("set", update_every=1)
    x, y = batches(1)[0]
    old = {f: mask.clone() for f, mask in m.masks.items()}
    F.cross_entropy(model(x), y).backward()
    opt.step()
    weights = {f: model.get_submodule(f.rpartition(".")[0]).weight.detach().clone() for f in TARGETS}
    assert m.step()
    for f in TARGETS:
        active = int(old[f].sum())
        n = math.floor(0.3 * active)
        kept = keep_top_among(weights[f].abs().masked_fill(~old[f], -1), active - n)
        new = m.masks[f]
        assert (new & kept).sum() == active - n and int(new.sum()) == active
        assert int((new & ~kept).sum()) == n


def test_gmp_prunes_monotonically_uniformly_by_magnitude():
    model, opt, m = prepared("gmp")
    updates = 0
    for x, y in batches(TOTAL):
        F.cross_entropy(model(x), y).backward()
        opt.step()
        weights = {f: model.get_submodule(f.rpartition(".")[0]).weight.detach().clone() for f in TARGETS}
        before = {f: mask.clone() for f, mask in m.masks.items()}
        if m.step():
            shapes = {f: tuple(w.shape) for f, w in weights.items()}
            per_layer = allocation.uniform(shapes, m.target_sparsity(m.step_count))
            for f in TARGETS:
                assert (m.masks[f] <= before[f]).all()  # a pruned weight never returns
                keep = weights[f].numel() - n_pruned(weights[f].numel(), per_layer[f])
                expected = keep_top_among(weights[f].abs().masked_fill(~before[f], -1), keep)
                assert torch.equal(m.masks[f], expected)
            updates += 1
        opt.zero_grad()
    assert updates == 4  # steps 2, 4, 6, 8


def test_gmp_initial_sparsity_prunes_by_magnitude_at_prepare():
    model = net()
    weights = {f: model.get_parameter(f).detach().clone() for f in TARGETS}
    m = TRAINERS.get("gmp")(initial_sparsity=0.5, sparsity=0.8, end=10)
    m.prepare(model, torch.optim.SGD(model.parameters(), lr=0.1), total_steps=TOTAL)
    for f in TARGETS:
        assert torch.equal(m.masks[f], keep_top_among(weights[f].abs(), weights[f].numel() // 2))


def test_granet_global_pruning_then_regeneration():
    model, opt, m = prepared("granet", update_every=4, end=4)  # prune once at 4, regenerate at 8, 12
    data = batches(TOTAL)
    for step, (x, y) in enumerate(data, 1):
        F.cross_entropy(model(x), y).backward()
        opt.step()
        weights = {f: model.get_submodule(f.rpartition(".")[0]).weight.detach().clone() for f in TARGETS}
        before = {f: mask.clone() for f, mask in m.masks.items()}
        updated = m.step()
        assert updated == (step % 4 == 0)
        if step == 4:  # global magnitude to the final sparsity, then regeneration within layers
            scores = {f: weights[f].abs() for f in TARGETS}
            per_layer = allocation.global_budget(scores, SPARSITY)
            for f in TARGETS:
                assert int((~m.masks[f]).sum()) == n_pruned(weights[f].numel(), per_layer[f])
        if step in (8, 12):  # regeneration only: counts kept, the n smallest |w| dropped
            rate = m.regeneration_rate(step)
            for f in TARGETS:
                active = int(before[f].sum())
                n = math.ceil(rate * active)
                kept = keep_top_among(weights[f].abs().masked_fill(~before[f], -1), active - n)
                assert int(m.masks[f].sum()) == active and (m.masks[f] & kept).sum() == active - n
            assert any(not torch.equal(before[f], m.masks[f]) for f in TARGETS)
        opt.zero_grad()
    assert m.regeneration_rate(0) == pytest.approx(0.5)
    assert m.regeneration_rate(TOTAL) == pytest.approx(0.005)


def test_granet_sparse_to_sparse_starts_from_random_erk_masks():
    _model, _opt, m = prepared("granet", initial_sparsity=0.5)
    shapes = {f: tuple(mask.shape) for f, mask in m.masks.items()}
    per_layer = allocation.erk(shapes, 0.5)
    for f, mask in m.masks.items():
        assert int((~mask).sum()) == n_pruned(mask.numel(), per_layer[f])


def test_random_pruning_erk_counts_and_static_masks():
    model, opt, m = prepared("random-pruning")
    shapes = {f: tuple(mask.shape) for f, mask in m.masks.items()}
    per_layer = allocation.erk(shapes, SPARSITY)
    before = {f: mask.clone() for f, mask in m.masks.items()}
    for f, mask in m.masks.items():
        assert int((~mask).sum()) == n_pruned(mask.numel(), per_layer[f])
    train(model, m, opt, batches(4))
    assert all(torch.equal(before[f], m.masks[f]) for f in TARGETS)


def test_random_pruning_n_m():
    _model, _opt, m = prepared("random-pruning", pattern="2:4", sparsity=0.5, distribution="uniform")
    for mask in m.masks.values():
        assert (mask.reshape(mask.shape[0], -1, 4).sum(-1) == 2).all()
    rows = torch.stack([m.masks["0.weight"][0], m.masks["0.weight"][1]])
    assert not torch.equal(rows[0], rows[1])  # random within the groups


def test_rigl_on_a_conv_net():
    model = create_model("lenet-5", seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    m = TRAINERS.get("rigl")(update_every=1, end=3)
    m.prepare(model, opt, total_steps=3)
    assert set(m.masks) == {"conv1.weight", "conv2.weight", "fc1.weight", "fc2.weight"}
    g = torch.Generator().manual_seed(0)
    for _ in range(2):
        F.cross_entropy(model(torch.randn(4, 1, 28, 28, generator=g)), torch.tensor([0, 1, 2, 3])).backward()
        opt.step()
        assert m.step()
        opt.zero_grad()
    assert m.sparsity == pytest.approx(0.9, abs=1e-4)
