"""The tiny `g2gnet` reproduction runs and reports measured, sane numbers."""

import math

import pytest

from sparsetorch.papers import g2gnet as g2gnet_paper


@pytest.mark.data
def test_tiny_reproduction_measures_its_claim():
    result = g2gnet_paper.reproduce("tiny")
    assert {c.name for c in result.checks} == {"g2gnet_75_at_least_dense", "g2gnet_sparsity_75"}
    assert all(math.isfinite(v) for v in result.metrics.values())
    assert result.metrics["g2gnet_75_sparsity"] == pytest.approx(0.75)
    assert result.metrics["dense_sparsity"] == 0.0
    for label in ("dense", "g2gnet_75"):
        assert 0.2 < result.metrics[f"{label}_accuracy_mean"] <= 1.0  # 10 classes: chance 0.1
    assert result.holds == all(c.passed for c in result.checks)  # computed, never set
