"""The `dass` reproduction at tiny scale: measured checks, equal search budgets, no test leakage."""

from __future__ import annotations

import math

import pytest

from sparsetorch.papers import dass as paper
from tests.papers.search_paper_testutil import reproduce_tiny_with_armed_test_set


@pytest.fixture(scope="module")
def tiny():
    return reproduce_tiny_with_armed_test_set(paper)


@pytest.mark.data
def test_tiny_reproduction_is_measured_not_asserted(tiny):
    result, _ = tiny
    assert {c.name for c in result.claims} == set(paper.PAPER) == {
        "dass_beats_uniform", "dass_beats_random_mean",
    }  # fmt: skip
    assert all(c.op == ">" and c.paper for c in result.claims)  # "better than": equal arms fail
    assert {c.name for c in result.sanity} == {"sparsity_exact", "equal_search_budget"}
    assert all(c.passed for c in result.sanity), result.render()
    m = result.metrics
    assert all(math.isfinite(v) for v in m.values())
    for arm in ("dass", "uniform", "rsearch", "random"):
        assert 0.0 <= m[f"{arm}_accuracy"] <= 1.0
    assert m["random_accuracy_min"] <= m["random_accuracy"] <= m["random_accuracy_max"]
    assert m["max_sparsity_error"] < 1e-4  # every configuration at exactly the target
    assert m["dass_search_examples"] == m["rsearch_search_examples"]  # equal search budgets
    for layer in ("fc1", "fc2", "fc3"):
        assert m[f"dass_{layer}_multiplier"] in (0.25, 0.5, 1.0, 2.0, 4.0)
        assert 0.0 <= m[f"dass_{layer}_sparsity"] < 1.0
    assert max(m["uniform_accuracy"], m["rsearch_accuracy"]) > 0.15  # the arms leave chance level


@pytest.mark.data
def test_both_searches_ran_with_the_test_set_untouched(tiny):
    _, searches = tiny
    assert sorted(name for name, _ in searches) == ["dass", "random-search"]


@pytest.mark.parametrize("scale", ["tiny", "small", "full"])
def test_equal_search_budget_at_every_scale(scale):
    cfg = paper.SCALES[scale]
    assert 64 * (2 * cfg["search_steps"] - cfg["warmup"]) == 128 * cfg["samples"] * cfg["proxy_steps"]


def test_unknown_scale_is_refused():
    with pytest.raises(ValueError, match="scale"):
        paper.reproduce("medium")
