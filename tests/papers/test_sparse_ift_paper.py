"""The Sparse-IFT reproduction at tiny scale: iso-FLOPs measured exactly, accuracies compared."""

from __future__ import annotations

import math

import pytest

from sparsetorch.papers import sparse_ift as paper
from tests.papers.papers_testutil import one_thread


@pytest.fixture(scope="module")
def result():
    return one_thread(paper.reproduce, "tiny", seed=0)


@pytest.mark.data
def test_tiny_sparse_ift_claims_are_accuracy_and_iso_flops_is_sanity(result):
    assert {c.name: c.kind for c in result.checks} == {
        "wide_s50_beats_dense": "claim",
        "wide_s75_beats_dense": "claim",
        "iso_flops_wide_s50": "sanity",
        "iso_flops_wide_s75": "sanity",
    }
    assert all(c.op == ">" and c.threshold == 0.0 for c in result.claims)  # strict: equal arms fail
    assert all(c.paper for c in result.claims)
    assert all(c.passed for c in result.sanity)  # iso-FLOPs by construction


@pytest.mark.data
def test_tiny_sparse_wide_is_iso_flop_and_compared_with_dense(result):
    m = result.metrics
    assert all(math.isfinite(v) for v in m.values())
    assert m["flops_dense"] == 2 * (784 * 300 + 300 * 100 + 100 * 10)  # multiply-adds x 2, batch 1
    assert m["flops_wide_s50"] == m["flops_dense"] == m["flops_wide_s75"]
    assert m["width_multiplier_wide_s75"] == pytest.approx(2.0)
    assert 0.0 < m["wide_s75_sparsity"] < 0.75  # boundary layers are sparser by 1 - sqrt(1 - s) only
    for label in ("wide_s50", "wide_s75"):
        gain = 100 * (m[f"{label}_accuracy"] - m["dense_accuracy"])
        assert m[f"{label}_minus_dense_points"] == pytest.approx(gain)
        assert 0.1 < m[f"{label}_accuracy"] <= 1.0
