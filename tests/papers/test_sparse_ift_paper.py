"""The Sparse-IFT reproduction at tiny scale: iso-FLOPs measured exactly, accuracies compared."""

from __future__ import annotations

import math

import pytest

from sparsetorch.papers import sparse_ift as paper


@pytest.mark.data
def test_tiny_sparse_wide_is_iso_flop_and_compared_with_dense():
    result = paper.reproduce("tiny")
    names = {c.name for c in result.checks}
    assert names == {
        "iso_flops_wide_s50",
        "iso_flops_wide_s75",
        "wide_s50_beats_dense",
        "wide_s75_beats_dense",
    }
    assert result.holds == all(c.passed for c in result.checks)
    assert result.passed["iso_flops_wide_s50"] and result.passed["iso_flops_wide_s75"]
    m = result.metrics
    assert all(math.isfinite(v) for v in m.values())
    assert m["flops_dense"] == 2 * (784 * 300 + 300 * 100 + 100 * 10)  # multiply-adds x 2, batch 1
    assert m["flops_wide_s50"] == m["flops_dense"] == m["flops_wide_s75"]
    assert m["width_multiplier_wide_s75"] == pytest.approx(2.0)
    assert 0.0 < m["wide_s75_sparsity"] < 0.75  # boundary layers are sparser by 1 - sqrt(1 - s) only
