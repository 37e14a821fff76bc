"""Layer budgets: exact overall sparsity; ERK's proportions and dense fallback; global threshold."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsetorch.allocation import ALLOCATIONS, erk, global_, global_budget, uniform
from sparsetorch.patterns import n_pruned, select

SHAPES = {"conv1": (16, 1, 5, 5), "fc1": (300, 784), "fc2": (100, 300), "fc3": (10, 100)}


def pruned_total(shapes, per_layer):
    return sum(n_pruned(math.prod(shapes[f]), s) for f, s in per_layer.items())


@settings(max_examples=50, deadline=None)
@given(
    sparsity=st.floats(0.0, 0.99),
    dims=st.lists(st.tuples(st.integers(1, 40), st.integers(1, 40)), min_size=1, max_size=5),
)
def test_uniform_and_erk_totals_are_exact(sparsity, dims):
    shapes = {f"l{i}": d for i, d in enumerate(dims)}
    total = sum(math.prod(d) for d in dims)
    for alloc in (uniform, erk):
        per_layer = alloc(shapes, sparsity)
        assert pruned_total(shapes, per_layer) == n_pruned(total, sparsity)
        assert all(0.0 <= s <= 1.0 for s in per_layer.values())


def test_erk_follows_the_er_kernel_formula():
    per_layer = erk(SHAPES, 0.9)
    # Density ∝ sum(shape)/prod(shape): layers with fewer weights per fan are denser.
    density = {f: 1 - s for f, s in per_layer.items()}
    raw = {f: sum(s) / math.prod(s) for f, s in SHAPES.items()}
    sparse = [f for f in SHAPES if density[f] < 1.0]
    ratios = [density[f] / raw[f] for f in sparse]
    assert max(ratios) / min(ratios) == pytest.approx(1.0, rel=0.02)  # one epsilon for all
    assert density["fc1"] < density["fc2"] < density["fc3"]


def test_erk_keeps_layers_dense_when_they_would_exceed_density_one():
    shapes = {"tiny": (2, 2), "big": (1000, 1000)}
    per_layer = erk(shapes, 0.5)
    assert per_layer["tiny"] == 0.0
    assert pruned_total(shapes, per_layer) == n_pruned(1_000_004, 0.5)


def test_global_keeps_highest_scores_across_layers():
    scores = {"a": torch.tensor([[1.0, 2.0], [3.0, 4.0]]), "b": torch.tensor([[10.0, 20.0]])}
    per_layer = global_budget(scores, 0.5)
    assert per_layer == {"a": 0.75, "b": 0.0}
    masks = {f: select(scores[f], "unstructured", s) for f, s in per_layer.items()}
    assert masks["a"].tolist() == [[False, False], [False, True]]


def test_global_ties_are_exact():
    scores = {"a": torch.ones(3, 3), "b": torch.ones(2, 5)}
    per_layer = global_budget(scores, 0.5)
    assert pruned_total({"a": (3, 3), "b": (2, 5)}, per_layer) == n_pruned(19, 0.5)
    assert per_layer == {"a": 0.0, "b": 1.0}  # ties keep the earlier layer's weights first


def test_global_underscore_is_a_deprecated_alias():
    scores = {"a": torch.tensor([[1.0, 2.0], [3.0, 4.0]])}
    with pytest.warns(DeprecationWarning, match="global_budget"):
        assert global_(scores, 0.5) == global_budget(scores, 0.5)
    assert ALLOCATIONS.get("global") is global_budget


@pytest.mark.parametrize("bad", [1.0, -0.5, float("nan")])
def test_bad_sparsity_raises(bad):
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        uniform(SHAPES, bad)
    with pytest.raises(ValueError):
        erk(SHAPES, bad)


def test_empty_targets_raise():
    with pytest.raises(ValueError, match="no target layers"):
        uniform({}, 0.5)
