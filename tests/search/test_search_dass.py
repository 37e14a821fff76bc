"""DASS: the mixed sparse operation, the bi-level search, the budgeted discretization, bad input."""

from __future__ import annotations

import math

import pytest
import torch

from sparsetorch.masks import get_masks as attached_masks
from sparsetorch.models import create_model
from sparsetorch.search import SEARCHES, Dass
from sparsetorch.search.dass import candidate_counts, discretize, magnitude_masks, soft_mask
from tests.search.search_testutil import Tripwire, space, splits


def _run(seed: int = 0, sparsity: float = 0.8, **overrides):
    train, val, _ = splits()
    sp = space(sparsity, node_fractions=(0.5, 1.0))
    parent = create_model("lenet-300-100", seed=0, **sp.model_config())
    options = {"search_steps": 30, "warmup_steps": 10, "arch_lr": 0.05, "weight_lr": 0.3, "seed": seed}
    Tripwire.armed = True  # the test tensors of `splits()` must stay untouched
    try:
        outcome = Dass(**{**options, **overrides}).run(sp, parent, train=train, val=val)
    finally:
        Tripwire.armed = False
    return sp, parent, outcome


def test_soft_mask_by_hand():
    w = torch.tensor([[0.1, -0.4], [0.3, 0.2]])
    # counts 1 and 3 keep {0.4} and {0.4, 0.3, 0.2}; mixed 0.25 / 0.75
    got = soft_mask(w, [1, 3], torch.tensor([0.25, 0.75]))
    assert torch.allclose(got, torch.tensor([[0.0, 1.0], [0.75, 0.75]]))
    stack = magnitude_masks(w, [1, 3])
    assert stack.shape == (2, 2, 2) and stack.sum().item() == 4


def test_candidate_masks_are_nested_and_exact():
    w = torch.randn(30, 40, generator=torch.Generator().manual_seed(0))
    counts = [12, 120, 600, 1200]
    stack = magnitude_masks(w, counts)
    assert [int(m.sum()) for m in stack] == counts
    assert all(((stack[k] <= stack[k + 1]).all()) for k in range(len(counts) - 1))


def test_candidate_counts_follow_the_multipliers_within_layer_sizes():
    sp = space(0.9)
    counts = candidate_counts(sp, (0.25, 1.0, 4.0, 100.0))
    density = sp.budget / sp.numel
    for fqn, (o, i) in sp.shapes.items():
        assert counts[fqn][1] == round(density * o * i)
        assert counts[fqn] == sorted(counts[fqn]) and counts[fqn][-1] == o * i
        assert counts[fqn][0] >= 1


def test_discretize_takes_the_argmax_and_hits_the_budget_exactly():
    sp = space(0.8)
    mult = (0.25, 1.0, 4.0)
    counts = candidate_counts(sp, mult)
    alphas = {"fc1.weight": torch.tensor([3.0, 0, 0]), "fc2.weight": torch.tensor([0, 0, 3.0])}
    alphas["fc3.weight"] = torch.tensor([0, 3.0, 0])
    final = discretize(sp, alphas, counts)
    assert sum(final) == sp.budget
    dens = [n / (o * i) for n, (o, i) in zip(final, sp.shapes.values(), strict=True)]
    assert dens[1] > dens[2] > dens[0]  # 4x > 1x > 1/4x after the rescale


def test_search_gives_a_full_width_configuration_at_exact_sparsity():
    sp, _, outcome = _run()
    config = outcome.config
    assert sum(config.nonzeros.values()) == sp.budget
    assert config.widths == sp.hidden
    assert outcome.history["counts"] == list(config.nonzeros.values())
    assert outcome.history["arch_steps"] == 20
    for probs in outcome.history["probabilities"].values():
        assert math.isclose(sum(probs), 1.0, rel_tol=1e-5)
    assert 0.0 <= outcome.score <= 1.0


def test_budget_term_pulls_the_expected_nonzeros_to_the_budget():
    # The candidates start at a mean of 1.55x the budget; the penalty must pull the mixture down.
    _, _, outcome = _run(budget_penalty=10.0, warmup_steps=0)
    ratios = outcome.history["expected_nonzeros_ratio"]
    assert ratios[0] > 1.3
    assert abs(ratios[-1] - 1.0) < abs(ratios[0] - 1.0) / 2


def test_same_seed_same_search_other_seed_differs():
    _, _, a = _run(seed=5)
    _, _, b = _run(seed=5)
    _, _, c = _run(seed=6)
    assert a.history["probabilities"] == b.history["probabilities"]
    assert all(torch.equal(a.config.masks[f], b.config.masks[f]) for f in a.config.masks)
    assert a.history["probabilities"] != c.history["probabilities"]


def test_parent_is_left_unchanged():
    sp = space(0.8)
    parent = create_model("lenet-300-100", seed=0, **sp.model_config())
    before = {k: v.clone() for k, v in parent.state_dict().items()}
    train, val, _ = splits()
    Dass(search_steps=5, warmup_steps=1).run(sp, parent, train=train, val=val)
    assert not attached_masks(parent)
    assert all(torch.equal(before[k], v) for k, v in parent.state_dict().items())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"multipliers": ()}, "empty search space"),
        ({"multipliers": (0.5, -1.0)}, "multipliers"),
        ({"search_steps": 0}, "search_steps"),
        ({"search_steps": 10, "warmup_steps": 10}, "warmup_steps"),
        ({"arch_lr": 0.0}, "arch_lr"),
        ({"budget_penalty": -1.0}, "budget_penalty"),
        ({"mask_interval": 0}, "mask_interval"),
    ],
)
def test_bad_config_is_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Dass(**kwargs)


def test_space_without_full_width_and_bad_data_are_refused():
    train, val, _ = splits()
    narrow = space(0.8, node_fractions=(0.5,))
    with pytest.raises(ValueError, match="node_fractions"):
        Dass(search_steps=2, warmup_steps=0).run(
            narrow, create_model("lenet-300-100", seed=0, **narrow.model_config()), train=train, val=val
        )
    sp = space(0.8)
    with pytest.raises(ValueError, match="disjoint"):
        Dass(search_steps=2, warmup_steps=0).run(
            sp, create_model("lenet-300-100", seed=0, **sp.model_config()), train=train, val=train
        )


def test_registered():
    assert SEARCHES.get("dass") is Dass
    assert set(SEARCHES.list()) >= {"dass", "random-search"}
