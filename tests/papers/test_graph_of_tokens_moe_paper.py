"""The `graph-of-tokens-moe` reproduction at tiny scale: three seeded trainings, measured checks."""

from __future__ import annotations

import math

import pytest

from sparsetorch.papers.graph_of_tokens_moe import RUNS, reproduce
from tests.papers.papers_testutil import one_thread


@pytest.fixture(scope="module")
def tiny():
    return one_thread(reproduce, "tiny")


def test_tiny_reproduction_is_measured_not_asserted(tiny):
    assert {c.name for c in tiny.checks} == {
        f"{n}_{c}"
        for n in ("similarity", "attention")
        for c in ("fluctuates_less", "lower_entropy", "perplexity_within_5pct")
    }
    assert tiny.holds == all(c.passed for c in tiny.checks)
    assert all(math.isfinite(v) for v in tiny.metrics.values())
    for run in RUNS:
        assert 0.0 <= tiny.metrics[f"{run}_fluctuation"] <= 1.0
        assert 0.0 < tiny.metrics[f"{run}_entropy"] <= math.log(8) + 1e-5
        assert 1.0 < tiny.metrics[f"{run}_val_perplexity"] < 256.0
    assert "tiny" in tiny.note


def test_unknown_scale_is_refused():
    with pytest.raises(ValueError, match="scale"):
        reproduce("medium")
