"""The tiny `g2gnet` reproduction runs and reports measured, sane numbers."""

from __future__ import annotations

import math

import pytest

from sparsetorch.papers import g2gnet as g2gnet_paper
from tests.papers.papers_testutil import one_thread


@pytest.fixture(scope="module")
def result():
    return one_thread(g2gnet_paper.reproduce, "tiny", seed=0)


def measured(result):
    return {k: v for k, v in result.metrics.items() if not k.endswith("_seconds")}


@pytest.mark.data
def test_tiny_g2gnet_claim_is_strictly_better_and_sparsity_is_sanity(result):
    assert {c.name: c.kind for c in result.checks} == {
        "g2gnet_75_beats_dense": "claim",
        "g2gnet_sparsity_75": "sanity",
    }
    (claim,) = result.claims
    assert claim.op == ">" and claim.threshold == 0.0 and claim.paper  # "improving": strict
    assert result.passed["g2gnet_sparsity_75"]  # by construction


@pytest.mark.data
def test_tiny_reproduction_measures_its_claim(result):
    m = result.metrics
    assert all(math.isfinite(v) for v in m.values())
    assert m["g2gnet_75_sparsity"] == pytest.approx(0.75)
    assert m["dense_sparsity"] == 0.0
    for label in ("dense", "g2gnet_75"):
        assert 0.2 < m[f"{label}_accuracy"] <= 1.0  # 10 classes: chance 0.1
    assert m["g2gnet_gain_points"] == pytest.approx(100 * (m["g2gnet_75_accuracy"] - m["dense_accuracy"]))


@pytest.mark.data
def test_tiny_g2gnet_same_seed_same_numbers_other_seed_other_numbers(result):
    assert measured(one_thread(g2gnet_paper.reproduce, "tiny", seed=0)) == measured(result)
    assert measured(one_thread(g2gnet_paper.reproduce, "tiny", seed=1)) != measured(result)
