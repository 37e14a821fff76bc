"""The `random-search-nas` reproduction at tiny scale: measured checks, exact sparsity, no test leakage."""

from __future__ import annotations

import math

import pytest

from sparsetorch.papers import random_search_nas as paper
from tests.papers.search_paper_testutil import reproduce_tiny_with_armed_test_set


@pytest.fixture(scope="module")
def tiny():
    return reproduce_tiny_with_armed_test_set(paper)


@pytest.mark.data
def test_tiny_reproduction_is_measured_not_asserted(tiny):
    result, _ = tiny
    assert {c.name for c in result.checks} == {
        "search_not_better_s90", "initsearch_not_better_s90", "search_not_faster_s90",
        "search_not_better_s98", "initsearch_not_better_s98", "search_not_faster_s98",
        "highly_sparse_keeps_90pct_of_dense",
    }  # fmt: skip
    assert result.holds == all(c.passed for c in result.checks)
    m = result.metrics
    assert all(math.isfinite(v) for v in m.values())
    for tag in ("s90", "s98"):
        for arm in paper.ARMS:
            assert 0.0 <= m[f"{arm}_{tag}_accuracy_mean"] <= 1.0
            assert 0.0 < m[f"{arm}_{tag}_node_fraction_mean"] <= 1.0
        assert (
            m[f"random_{tag}_accuracy_min"]
            <= m[f"random_{tag}_accuracy_mean"]
            <= m[f"random_{tag}_accuracy_max"]
        )
        for arm in ("search", "initsearch"):
            assert m[f"{arm}_minus_random_{tag}_points"] == pytest.approx(
                100 * (m[f"{arm}_{tag}_accuracy_mean"] - m[f"random_{tag}_accuracy_mean"])
            )
        assert m[f"max_sparsity_error_{tag}"] < 1e-4  # every configuration at exactly the target
    assert 0.0 < m["dense_accuracy_mean"] <= 1.0


@pytest.mark.data
def test_every_search_ran_with_the_test_set_untouched(tiny):
    _, searches = tiny
    cfg = paper.SCALES["tiny"]
    assert sorted(s for _, s in searches) == sorted(
        list(cfg["sparsities"]) * 2 * len(cfg["seeds"])
    )  # search, initsearch


def test_scales_compare_over_seeds_at_small():
    assert len(paper.SCALES["small"]["seeds"]) >= 3
    assert paper.SCALES["small"]["random"] >= 2


def test_unknown_scale_is_refused():
    with pytest.raises(ValueError, match="scale"):
        paper.reproduce("medium")
