"""The `ssr` reproduction at tiny scale: four seeded MoE-GPT trainings, claim and sanity checks."""

from __future__ import annotations

import math

import pytest

from sparsetorch.papers.ssr import BROKEN_ARMS, RUNS, SCALES, reproduce
from tests.papers.papers_testutil import one_thread

CLAIMS = {"ssr_lower_perplexity", "ssr_dropped_below_5pct"}
SANITY = {
    "topk_aux_balance_near_1",
    "topk_aux_dropped_below_5pct",
    "aux_loss_balances_load",
    "ssr_is_selective",
}


@pytest.fixture(scope="module")
def tiny():
    return one_thread(reproduce, "tiny")


def test_claim_and_sanity_checks_are_the_stated_ones_and_timing_is_never_checked(tiny):
    assert {c.name for c in tiny.claims} == CLAIMS
    assert {c.name for c in tiny.sanity} == SANITY
    assert tiny.checks[0].name == "ssr_lower_perplexity" and tiny.checks[0].op == "<"  # strict
    assert all(c.paper for c in tiny.claims)
    assert not any("time" in c.name or "cheaper" in c.name for c in tiny.checks)
    assert set().union(*(arm.fails for arm in BROKEN_ARMS.values())) == CLAIMS
    assert all(math.isfinite(v) for v in tiny.metrics.values())
    assert "cf=1.25" in tiny.note and "tiny" in tiny.note


def test_tiny_runs_are_consistent(tiny):
    m = tiny.metrics
    for run in RUNS:
        assert 1.0 < m[f"{run}_val_perplexity"] < 256.0  # better than uniform over bytes
        assert 0.0 <= m[f"{run}_dropped_fraction"] <= 1.0 and m[f"{run}_max_load_ratio"] >= 1.0
        assert 0.0 < m[f"{run}_router_entropy"] <= math.log(8) + 1e-6
        assert m[f"{run}_median_step_cpu_ms"] > 0.0  # reported, not checked
    calls = SCALES["tiny"]["steps"] * SCALES["tiny"]["n_layer"]
    assert m["sinkhorn_full_sinkhorn_calls"] == m["sinkhorn_full_router_calls"] == calls
    assert 0 <= m["ssr_sinkhorn_calls"] < calls
    # full Sinkhorn routing is balanced by construction; the aux loss balances better than nothing
    assert m["sinkhorn_full_max_load_ratio"] < m["topk_noaux_max_load_ratio"]
    assert all(c.passed for c in tiny.sanity), tiny.render()


def test_unknown_scale_is_refused():
    with pytest.raises(ValueError, match="scale"):
        reproduce("medium")
