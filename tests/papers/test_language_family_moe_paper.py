"""The `language-family-moe` reproduction at tiny scale: held-out claims against matched baselines."""

from __future__ import annotations

import math

import pytest

from sparsetorch.papers.language_family_moe import BROKEN_ARMS, HELD_OUT, KINDS, reproduce
from tests.papers.papers_testutil import one_thread

CLAIMS = {
    "post_moe_heldout_beats_dense_active", "post_moe_heldout_beats_dense_params",
    "post_moe_heldout_beats_all_moe", "family_expert_transfers_to_heldout",
}  # fmt: skip


@pytest.fixture(scope="module")
def tiny():
    pytest.importorskip("numpy")
    # Missing word lists raise DataNotFoundError: the conftest skips, or fails under REQUIRE_DATA.
    return one_thread(reproduce, "tiny")


def test_claims_are_strict_on_held_out_languages(tiny):
    assert {c.name for c in tiny.claims} == CLAIMS
    assert {c.name for c in tiny.sanity} == {"dense_params_matched"}
    assert all(c.op == ">" and c.paper for c in tiny.claims)
    assert all(c.measured == tiny.metrics["heldout_post_moe_acc"] for c in tiny.claims)
    assert set().union(*(arm.fails for arm in BROKEN_ARMS.values())) == CLAIMS


def test_baselines_are_matched_and_metrics_in_range(tiny):
    m = tiny.metrics
    assert tiny.passed["dense_params_matched"], tiny.render()  # by construction
    # active compute: Post-MoE's MoE layers run 2 experts of 4d, the dense_active FFN 8d there
    assert m["dense_active_params"] < m["post_moe_params"] < m["all_moe_params"]
    accs = {k: v for k, v in m.items() if "acc" in k}
    assert accs and all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in accs.values())
    for kind in KINDS:
        assert not any(f"{kind}_acc_{code}" in m for code in HELD_OUT)  # held out of training
        assert f"heldout_{kind}_acc" in m
    assert "next-character accuracy" in tiny.note and "seed 0" in tiny.note


def test_unknown_scale_is_refused():
    with pytest.raises(ValueError, match="scale"):
        reproduce("medium")
