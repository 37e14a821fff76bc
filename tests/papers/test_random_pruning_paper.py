"""The random-pruning width reproduction at tiny scale: three widths, dense and random each."""

from __future__ import annotations

import math

import pytest

from sparsetorch.papers import random_pruning as paper


@pytest.mark.data
def test_tiny_random_pruning_gap_is_measured_per_width():
    result = paper.reproduce("tiny")
    assert {c.name for c in result.checks} == {"gap_shrinks_x1_to_x2", "gap_shrinks_x2_to_x4"}
    assert result.holds == all(c.passed for c in result.checks)
    m = result.metrics
    assert all(math.isfinite(v) for v in m.values())
    for k in paper.WIDTHS:
        assert m[f"dense_x{k}_sparsity"] == 0.0
        assert m[f"random_x{k}_sparsity"] == pytest.approx(paper.SPARSITY)
        gap = 100 * (m[f"dense_x{k}_accuracy_mean"] - m[f"random_x{k}_accuracy_mean"])
        assert m[f"gap_points_x{k}"] == pytest.approx(gap)
