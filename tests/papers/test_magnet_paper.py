"""The `magnet` reproduction (routing regime only) at tiny scale: checks, kinds, invariants, seeds."""

from __future__ import annotations

import math

import pytest

from sparsetorch.papers.magnet import BROKEN_ARMS, reproduce
from tests.papers.papers_testutil import one_thread

CLAIMS = {"coverage_phase_spreads_load", "trigger_fired", "specialization_more_confident", "no_collapse_late"}


@pytest.fixture(scope="module")
def tiny():
    return one_thread(reproduce, "tiny")


def test_claim_and_sanity_checks_are_the_stated_ones(tiny):
    assert {c.name for c in tiny.claims} == CLAIMS
    assert {c.name for c in tiny.sanity} == {"perplexity_within_5pct"}
    assert all(c.paper for c in tiny.claims) and not any(c.paper for c in tiny.sanity)
    ops = {c.name: c.op for c in tiny.claims}
    assert ops["coverage_phase_spreads_load"] == ops["specialization_more_confident"] == ">"  # strict
    assert set().union(*(arm.fails for arm in BROKEN_ARMS.values())) == CLAIMS


def test_tiny_metrics_are_in_range_and_the_switch_comes_only_from_the_trigger(tiny):
    m = tiny.metrics
    assert all(math.isfinite(v) for v in m.values())
    for run in ("fixed", "magnet"):
        for key in ("early_utilization", "late_utilization", "early_confidence", "late_confidence"):
            assert 0.0 <= m[f"{run}_{key}"] <= 1.0 + 1e-6
    assert 0 < m["magnet_switch_step"] <= m["steps"]
    # no forced timeout: switched before the end exactly when the trigger fired
    assert m["magnet_switched_by_trigger"] == float(m["magnet_switch_step"] < m["steps"])
    assert tiny.passed["trigger_fired"] == bool(m["magnet_switched_by_trigger"])
    assert "out of scope" in tiny.note and "seed 0" in tiny.note


def test_the_same_seed_repeats_and_another_seed_differs(tiny):
    again = one_thread(reproduce, "tiny", seed=0)
    other = one_thread(reproduce, "tiny", seed=1)
    assert again.metrics == tiny.metrics
    assert other.metrics["fixed_val_perplexity"] != tiny.metrics["fixed_val_perplexity"]


def test_unknown_scale_is_refused():
    with pytest.raises(ValueError, match="scale"):
        reproduce("medium")
