"""The `graph-of-tokens-moe` reproduction at tiny scale: three seeded trainings, checks, seeds."""

from __future__ import annotations

import math

import pytest

from sparsetorch.papers.graph_of_tokens_moe import BROKEN_ARMS, RUNS, reproduce
from tests.papers.papers_testutil import one_thread

CLAIMS = {
    f"{n}_{c}"
    for n in ("similarity", "attention")
    for c in ("fluctuates_less", "lower_entropy", "lower_perplexity")
}


@pytest.fixture(scope="module")
def tiny():
    return one_thread(reproduce, "tiny")


def test_claim_checks_are_strict_and_carry_the_papers_statement(tiny):
    assert {c.name for c in tiny.claims} == CLAIMS and not tiny.sanity
    assert all(c.op == "<" and c.paper for c in tiny.claims)  # "better than", as stated
    assert set().union(*(arm.fails for arm in BROKEN_ARMS.values())) == CLAIMS


def test_tiny_metrics_are_in_range(tiny):
    assert all(math.isfinite(v) for v in tiny.metrics.values())
    for run in RUNS:
        assert 0.0 <= tiny.metrics[f"{run}_fluctuation"] <= 1.0
        assert 0.0 < tiny.metrics[f"{run}_entropy"] <= math.log(8) + 1e-5
        assert 1.0 < tiny.metrics[f"{run}_val_perplexity"] < 256.0
    assert "tiny, seed 0" in tiny.note


def test_the_same_seed_repeats_and_another_seed_differs(tiny):
    assert one_thread(reproduce, "tiny", seed=0).metrics == tiny.metrics
    other = one_thread(reproduce, "tiny", seed=1).metrics
    assert other["topk_val_perplexity"] != tiny.metrics["topk_val_perplexity"]


def test_unknown_scale_is_refused():
    with pytest.raises(ValueError, match="scale"):
        reproduce("medium")
