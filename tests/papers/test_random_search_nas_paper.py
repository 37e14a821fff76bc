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
    tags = ("s50", "s80")
    assert {c.name for c in result.claims} == {
        f"{c}_{t}"
        for t in tags
        for c in ("random_matches_search", "random_matches_initsearch", "random_converges_as_fast")
    } | {"highly_sparse_keeps_90pct_of_dense"}
    assert all(c.paper for c in result.claims)
    assert {c.name for c in result.sanity} == {"sparsity_exact_s50", "sparsity_exact_s80", "dense_learns"}
    assert all(c.passed for c in result.sanity), result.render()
    m = result.metrics
    assert all(math.isfinite(v) for v in m.values())
    for tag in tags:
        for arm in paper.ARMS:
            assert 0.0 <= m[f"{arm}_{tag}_accuracy"] <= 1.0
            assert 0.0 < m[f"{arm}_{tag}_node_fraction"] <= 1.0
        assert (
            m[f"random_{tag}_accuracy_min"] <= m[f"random_{tag}_accuracy"] <= m[f"random_{tag}_accuracy_max"]
        )
        for arm in ("search", "initsearch"):
            assert m[f"{arm}_minus_random_{tag}_points"] == pytest.approx(
                100 * (m[f"{arm}_{tag}_accuracy"] - m[f"random_{tag}_accuracy"])
            )
            check = next(c for c in result.claims if c.name == f"random_matches_{arm}_{tag}")
            # "no better" needs random within MARGIN of the search, not a spread that grows with noise
            assert check.threshold == pytest.approx(m[f"{arm}_{tag}_accuracy"] - paper.MARGIN)
        assert m[f"search_{tag}_accuracy"] > 0.15  # the arms leave chance level at tiny
    assert 0.0 < m["dense_accuracy"] <= 1.0


@pytest.mark.data
def test_every_search_ran_with_the_test_set_untouched(tiny):
    _, searches = tiny
    cfg = paper.SCALES["tiny"]
    assert sorted(s for _, s in searches) == sorted(list(cfg["sparsities"]) * 2)  # search, initsearch


def test_no_seed_loop_inside_a_run():
    assert all("seeds" not in cfg for cfg in paper.SCALES.values())
    assert paper.SCALES["small"]["random"] >= 2


def test_unknown_scale_is_refused():
    with pytest.raises(ValueError, match="scale"):
        paper.reproduce("medium")
