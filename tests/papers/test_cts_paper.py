"""The `cts` reproduction (CTS-KL vs SNIP vs random at 98% and 99%) at tiny scale: measured checks."""

from __future__ import annotations

import math

import pytest

from sparsetorch.papers import cts as paper
from tests.papers.papers_testutil import one_thread


@pytest.fixture(scope="module")
def tiny():
    return one_thread(paper.reproduce, "tiny")


@pytest.mark.data
def test_tiny_reproduction_is_measured_not_asserted(tiny):
    assert {c.name for c in tiny.claims} == {"cts_beats_snip_at_98", "cts_beats_snip_at_99"}
    assert all(c.op == ">" for c in tiny.claims)  # "outperforms": an equal SNIP fails
    assert all("74.0%" in c.paper for c in tiny.claims)
    assert {c.name for c in tiny.sanity} == {
        f"{arm}_reaches_{round(100 * s)}" for arm in ("cts", "snip", "random") for s in paper.SPARSITIES
    }
    assert all(c.passed for c in tiny.sanity)
    m = tiny.metrics
    assert all(math.isfinite(v) for v in m.values())
    assert m["epochs"] == paper.SCALES["tiny"]["epochs"]
    assert m["cts_iterations"] == paper.SCALES["tiny"]["iterations"]
    for sparsity in paper.SPARSITIES:
        pct = round(100 * sparsity)
        for arm in ("cts", "snip", "random"):
            assert m[f"{arm}_{pct}_sparsity"] == pytest.approx(sparsity)
            assert 0.0 <= m[f"{arm}_{pct}_accuracy"] <= 1.0
        for arm in ("cts", "snip"):  # learned masks train above chance (0.1) even at tiny scale
            assert m[f"{arm}_{pct}_accuracy"] > 0.2
        gain = 100 * (m[f"cts_{pct}_accuracy"] - m[f"snip_{pct}_accuracy"])
        assert m[f"cts_minus_snip_points_{pct}"] == pytest.approx(gain)
    assert "LTR is not compared" in tiny.note and "seed 0" in tiny.note


def test_unknown_scale_is_refused():
    with pytest.raises(ValueError, match="scale"):
        paper.reproduce("medium")
