"""The `roma` reproduction at tiny scale: claims against router-only fine-tuning, invariants."""

from __future__ import annotations

import math

import pytest

from sparsetorch.papers.roma import BROKEN_ARMS, _samples, reproduce
from tests.papers.papers_testutil import one_thread

CLAIMS = {"roma_narrows_oracle_gap", "roma_beats_router_only_finetuning"}


@pytest.fixture(scope="module")
def tiny():
    return one_thread(reproduce, "tiny")


def test_claims_are_judged_against_router_only_finetuning(tiny):
    by_name = {c.name: c for c in tiny.claims}
    assert set(by_name) == CLAIMS
    assert {c.name for c in tiny.sanity} == {"routers_suboptimal_before", "successful_set_has_neighbours"}
    m = tiny.metrics
    gap = by_name["roma_narrows_oracle_gap"]
    assert gap.op == "<" and gap.threshold == m["baseline_gap"] and gap.measured == m["roma_gap"]
    acc = by_name["roma_beats_router_only_finetuning"]
    assert acc.op == ">" and acc.threshold == m["baseline_acc"]
    assert all(c.paper for c in tiny.claims)
    assert set().union(*(arm.fails for arm in BROKEN_ARMS.values())) == CLAIMS


def test_tiny_metrics_are_consistent(tiny):
    m = tiny.metrics
    assert all(math.isfinite(v) for v in m.values())
    assert m["test_samples"] == 140 and m["finetune_samples"] == 42
    for run in ("before", "baseline", "roma"):
        acc = m["router_acc_before"] if run == "before" else m[f"{run}_acc"]
        oracle = m["oracle_acc_before"] if run == "before" else m[f"{run}_oracle_acc"]
        gap = m["gap_before"] if run == "before" else m[f"{run}_gap"]
        assert 0.0 <= acc <= oracle <= 1.0  # the oracle includes the router's own routing
        assert gap == pytest.approx(oracle - acc)
        assert acc * 140 == pytest.approx(round(acc * 140))  # a share of the 140 test words
    assert 5 <= m["successful_set_size"] <= 42
    assert all(c.passed for c in tiny.sanity), tiny.render()
    assert 0.0 <= m["family_forced_acc"] <= 1.0
    assert "out of scope" in tiny.note and "seed 0" in tiny.note


def test_samples_are_left_padded_words_ending_in_a_separator():
    seq = _samples(("ab", "héllo"))
    assert seq.shape == (2, 16)
    assert seq[0].tolist() == [0] * 13 + [97, 98, 0]
    assert bytes(seq[1, -7:-1].tolist()).decode() == "héllo" and seq[1, -1] == 0 and (seq[1, :-7] == 0).all()


def test_unknown_scale_is_refused():
    with pytest.raises(ValueError, match="scale"):
        reproduce("medium")
