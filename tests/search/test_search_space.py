"""The sparse search space: exact sparsity of every configuration, node masks, determinism, bad input."""

from __future__ import annotations

import math

import pytest
import torch

from sparsetorch.masks import get_masks as attached_masks
from sparsetorch.models import create_model
from sparsetorch.search import SPLITS, SparseMLPSpace, split_budget

SMALL = {"hidden": (24, 12), "in_features": 20, "num_classes": 5}


def _draws(space: SparseMLPSpace, n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [space.sample(g) for _ in range(n)]


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.9, 0.97])
def test_every_sample_has_exactly_the_budget(split, sparsity):
    space = SparseMLPSpace(sparsity=sparsity, split=split, **SMALL)
    numel = 20 * 24 + 24 * 12 + 12 * 5
    assert space.numel == numel
    assert space.budget == numel - round(sparsity * numel)
    for config in _draws(space, 25):
        assert sum(config.nonzeros.values()) == space.budget
        assert config.sparsity == pytest.approx(1 - space.budget / numel, abs=0)
        assert all(n >= 1 for n in config.nonzeros.values())


def test_weights_lie_inside_the_kept_nodes():
    space = SparseMLPSpace(sparsity=0.6, **SMALL)
    for config in _draws(space, 20):
        k1, k2 = config.nodes
        m1, m2, m3 = (config.masks[f"fc{i}.weight"] for i in (1, 2, 3))
        assert not m1[~k1].any()  # rows of removed first-layer units
        assert not m2[~k2].any() and not m2[:, ~k1].any()
        assert not m3[:, ~k2].any()
        assert config.widths == (int(k1.sum()), int(k2.sum()))
        assert config.widths in space.feasible()


def test_node_counts_come_from_the_grid_and_vary():
    space = SparseMLPSpace(sparsity=0.9, node_fractions=(0.25, 0.5, 1.0), **SMALL)
    widths = {c.widths for c in _draws(space, 60)}
    allowed = {(a, b) for a in (6, 12, 24) for b in (3, 6, 12)}
    assert widths <= allowed and len(widths) > 3


def test_proportional_split_gives_equal_density_in_the_kept_block():
    space = SparseMLPSpace(sparsity=0.8, split="proportional", **SMALL)
    for config in _draws(space, 10):
        caps = space.capacities(config.widths)
        dens = [n / c for n, c in zip(config.nonzeros.values(), caps, strict=True)]
        assert max(dens) - min(dens) < 0.05


def test_random_split_varies_layer_sparsity():
    space = SparseMLPSpace(sparsity=0.8, split="random", node_fractions=(1.0,), **SMALL)
    first_layer = {c.nonzeros["fc1.weight"] for c in _draws(space, 10)}
    assert len(first_layer) > 5


def test_same_seed_same_configuration_and_different_seed_differs():
    space = SparseMLPSpace(sparsity=0.9)
    a, b, c = _draws(space, 1, 3)[0], _draws(space, 1, 3)[0], _draws(space, 1, 4)[0]
    assert all(torch.equal(a.masks[f], b.masks[f]) for f in a.masks)
    assert all(torch.equal(x, y) for x, y in zip(a.nodes, b.nodes, strict=True))
    assert any(not torch.equal(a.masks[f], c.masks[f]) for f in a.masks)


def test_apply_attaches_exact_masks_and_leaves_other_models_alone():
    space = SparseMLPSpace(sparsity=0.9, **SMALL)
    config = _draws(space, 1)[0]
    parent = create_model("lenet-300-100", seed=0, **space.model_config())
    model = config.apply(create_model("lenet-300-100", seed=0, **space.model_config()))
    assert not attached_masks(parent)
    got = attached_masks(model)
    assert set(got) == set(space.shapes)
    zeros = sum(int((model.get_submodule(f.removesuffix(".weight")).weight == 0).sum()) for f in got)
    assert zeros == space.numel - space.budget
    out = model(torch.randn(3, 20))
    assert out.shape == (3, 5) and torch.isfinite(out).all()


def test_build_checks_its_arguments():
    space = SparseMLPSpace(sparsity=0.9, **SMALL)
    g = torch.Generator().manual_seed(0)
    nodes = space.full_nodes()
    caps = space.capacities(space.hidden)
    good = space.split_counts(caps, caps)
    assert sum(space.build(nodes=nodes, counts=good, generator=g).nonzeros.values()) == space.budget
    with pytest.raises(ValueError, match="sum to the budget"):
        space.build(nodes=nodes, counts=[good[0] + 1, good[1], good[2]], generator=g)
    with pytest.raises(ValueError, match="at least one unit"):
        space.build(nodes=(torch.zeros(24, dtype=torch.bool), nodes[1]), counts=good, generator=g)
    with pytest.raises(ValueError, match="one keep-mask per hidden layer"):
        space.build(nodes=nodes[:1], counts=good, generator=g)
    tiny = (torch.arange(24) < 1, torch.arange(12) < 1)  # one unit each: blocks of 20, 1 and 5
    with pytest.raises(ValueError, match="between 1 and"):
        space.build(nodes=tiny, counts=good, generator=g)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sparsity": 1.0}, "sparsity must be"),
        ({"sparsity": -0.1}, "sparsity must be"),
        ({"sparsity": True}, "sparsity must be"),
        ({"sparsity": 0.0, "node_fractions": (0.5,)}, "impossible sparsity"),
        ({"sparsity": 0.9999}, "impossible sparsity"),
        ({"node_fractions": ()}, "empty search space"),
        ({"node_fractions": (0.0, 0.5)}, "node_fractions"),
        ({"node_fractions": (1.5,)}, "node_fractions"),
        ({"split": "erk"}, "split must be"),
        ({"hidden": (10,)}, "hidden"),
    ],
)
def test_bad_spaces_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SparseMLPSpace(**{**SMALL, **kwargs})


def test_feasible_grid_drops_configurations_that_cannot_hold_the_budget():
    space = SparseMLPSpace(sparsity=0.3, **SMALL)
    assert space.feasible()
    assert all(space.capacity(c) >= space.budget for c in space.feasible())
    assert len(space.feasible()) < len(space._grid())


def test_split_budget_is_exact_capped_and_proportional():
    assert split_budget(10, [1, 1], [100, 100]) == [5, 5]
    assert split_budget(10, [1, 3], [100, 100]) in ([3, 7], [2, 8])
    assert split_budget(10, [1, 100], [100, 4]) == [6, 4]  # the capped layer overflows to the other
    assert split_budget(0, [1, 1], [3, 3]) == [0, 0]
    counts = split_budget(1000, [0.3, 0.2, 0.5], [100, 600, 800])
    assert sum(counts) == 1000 and counts[0] == 100
    for bad in ([1, -1], [0, 0], [math.nan, 1]):
        with pytest.raises(ValueError, match="weights"):
            split_budget(5, bad, [10, 10])
    with pytest.raises(ValueError, match="cannot place"):
        split_budget(30, [1, 1], [10, 10])
