"""The `magnet` reproduction (routing regime only) at tiny scale: measured checks and invariants."""

from __future__ import annotations

import math

import pytest

from sparsetorch.papers.magnet import reproduce
from tests.papers.papers_testutil import one_thread


@pytest.fixture(scope="module")
def tiny():
    return one_thread(reproduce, "tiny")


def test_tiny_reproduction_is_measured_not_asserted(tiny):
    assert {c.name for c in tiny.checks} == {
        "coverage_phase_spreads_load", "trigger_fired", "specialization_more_confident",
        "no_collapse_late", "perplexity_within_5pct",
    }  # fmt: skip
    assert tiny.holds == all(c.passed for c in tiny.checks)
    m = tiny.metrics
    assert all(math.isfinite(v) for v in m.values())
    for run in ("fixed", "magnet"):
        for key in ("early_utilization", "late_utilization", "early_confidence", "late_confidence"):
            assert 0.0 <= m[f"{run}_{key}"] <= 1.0 + 1e-6
    assert 0 < m["magnet_switch_step"] <= m["steps"]
    assert "out of scope" in tiny.note


def test_unknown_scale_is_refused():
    with pytest.raises(ValueError, match="scale"):
        reproduce("medium")
