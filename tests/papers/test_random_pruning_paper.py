"""The random-pruning width reproduction at tiny scale: three widths, dense and random each."""

from __future__ import annotations

import math

import pytest

from sparsetorch.papers import random_pruning as paper
from tests.papers.papers_testutil import one_thread


@pytest.fixture(scope="module")
def result():
    return one_thread(paper.reproduce, "tiny", seed=0)


@pytest.mark.data
def test_tiny_random_pruning_checks_are_strict_gap_shrinks_and_sparsity_guards(result):
    assert {c.name: c.kind for c in result.checks} == {
        "gap_shrinks_x1_to_x2": "claim",
        "gap_shrinks_x2_to_x4": "claim",
        **{f"random_x{k}_sparsity_90": "sanity" for k in paper.WIDTHS},
    }
    assert all(c.op == "<" for c in result.claims)  # strict: equal gaps fail
    assert all(c.paper for c in result.claims)
    assert all(c.passed for c in result.sanity)


@pytest.mark.data
def test_tiny_random_pruning_gap_is_measured_per_width(result):
    m = result.metrics
    assert all(math.isfinite(v) for v in m.values())
    for k in paper.WIDTHS:
        assert m[f"dense_x{k}_sparsity"] == 0.0
        assert m[f"random_x{k}_sparsity"] == pytest.approx(paper.SPARSITY)
        gap = 100 * (m[f"dense_x{k}_accuracy"] - m[f"random_x{k}_accuracy"])
        assert m[f"gap_points_x{k}"] == pytest.approx(gap)
    # the widths are really different networks: the dense arms differ
    assert len({m[f"dense_x{k}_accuracy"] for k in paper.WIDTHS}) == len(paper.WIDTHS)
