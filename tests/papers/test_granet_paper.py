"""The GraNet vs GMP reproduction at tiny scale: both reach 90% and 95%, the gain is measured."""

from __future__ import annotations

import math

import pytest

from sparsetorch.papers import granet as paper


@pytest.mark.data
def test_tiny_granet_against_gmp_at_both_sparsities():
    result = paper.reproduce("tiny")
    assert {c.name for c in result.checks} == {"granet_beats_gmp_at_90", "granet_beats_gmp_at_95"}
    assert result.holds == all(c.passed for c in result.checks)
    m = result.metrics
    assert all(math.isfinite(v) for v in m.values())
    for pct in (90, 95):
        assert m[f"gmp_{pct}_sparsity"] == pytest.approx(pct / 100)
        assert m[f"granet_{pct}_sparsity"] == pytest.approx(pct / 100)
        gain = 100 * (m[f"granet_{pct}_accuracy_mean"] - m[f"gmp_{pct}_accuracy_mean"])
        assert m[f"granet_minus_gmp_points_{pct}"] == pytest.approx(gain)
    assert 0.3 < m["dense_accuracy_mean"] <= 1.0
