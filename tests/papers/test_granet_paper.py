"""The GraNet vs GMP reproduction at tiny scale: both reach 90% and 95%, the gain is measured."""

from __future__ import annotations

import math

import pytest

from sparsetorch.papers import granet as paper
from tests.papers.papers_testutil import one_thread


@pytest.fixture(scope="module")
def result():
    return one_thread(paper.reproduce, "tiny", seed=0)


@pytest.mark.data
def test_tiny_granet_checks_are_strict_gains_and_sparsity_guards(result):
    assert {c.name: c.kind for c in result.checks} == {
        "granet_beats_gmp_at_90": "claim",
        "granet_beats_gmp_at_95": "claim",
        **{f"{arm}_sparsity_{pct}": "sanity" for pct in (90, 95) for arm in ("gmp", "granet")},
    }
    assert all(c.op == ">" and c.threshold == 0.0 for c in result.claims)  # strict: equal arms fail
    assert all(c.paper for c in result.claims)
    assert all(c.passed for c in result.sanity)


@pytest.mark.data
def test_tiny_granet_against_gmp_at_both_sparsities(result):
    m = result.metrics
    assert all(math.isfinite(v) for v in m.values())
    for pct in (90, 95):
        assert m[f"gmp_{pct}_sparsity"] == pytest.approx(pct / 100)
        assert m[f"granet_{pct}_sparsity"] == pytest.approx(pct / 100)
        gain = 100 * (m[f"granet_{pct}_accuracy"] - m[f"gmp_{pct}_accuracy"])
        assert m[f"granet_minus_gmp_points_{pct}"] == pytest.approx(gain)
        # regeneration changes the run: GraNet is not GMP under another name
        assert m[f"granet_{pct}_accuracy"] != m[f"gmp_{pct}_accuracy"]
    assert 0.3 < m["dense_accuracy"] <= 1.0
