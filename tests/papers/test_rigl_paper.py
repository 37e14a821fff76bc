"""The RigL vs SET vs static reproduction at tiny scale: measured, ordered, sparsities exact."""

from __future__ import annotations

import math

import pytest

from sparsetorch.papers import rigl as paper


@pytest.mark.data
def test_tiny_rigl_comparison_reports_the_measured_order():
    result = paper.reproduce("tiny")
    assert {c.name for c in result.checks} == {"rigl_beats_set", "set_beats_static"}
    assert result.holds == all(c.passed for c in result.checks)  # computed, never set
    assert all(math.isfinite(v) for v in result.metrics.values())
    m = result.metrics
    for arm in ("rigl", "set", "static"):
        assert m[f"{arm}_sparsity"] == pytest.approx(paper.SPARSITY)
        assert 0.0 <= m[f"{arm}_accuracy_mean"] <= 1.0
    assert m["dense_sparsity"] == 0.0
    assert sorted(m[f"rank_{a}"] for a in ("rigl", "set", "static")) == [1, 2, 3]
    assert m["rigl_minus_set_points"] == pytest.approx(
        100 * (m["rigl_accuracy_mean"] - m["set_accuracy_mean"])
    )
    assert "measured order" in result.note and m["epochs"] == paper.EPOCHS["tiny"]
