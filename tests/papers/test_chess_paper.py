"""`chess` reproduction at tiny scale (needs all-MiniLM-L6-v2; skips cleanly without it)."""

from __future__ import annotations

import pytest

from sparsetorch.papers.chess import BROKEN_ARMS, SPARSITY, TOLERANCE, _sample, reproduce
from tests.papers.papers_testutil import one_thread

ARMS = ("cats", "chess", "chess_norm", "chess_selective_attn", "chess_all_attn")


@pytest.fixture(scope="module")
def tiny():
    return one_thread(reproduce, "tiny", seed=0)  # load_minilm raises DataNotFoundError without the weights


@pytest.mark.data
def test_chess_tiny_states_the_claim_and_guards_apart(tiny):
    assert {c.name for c in tiny.claims} == {
        "chess_beats_cats",
        "chess_norm_beats_cats",
        "selective_chess_beats_cats",
    }
    assert {c.name for c in tiny.sanity} == {
        *(f"{n}_sparsity_{side}" for n in ("cats", "chess", "chess_norm") for side in ("low", "high")),
        "selective_beats_all_attention",  # a superset of sparsified inputs: holds by construction, not a claim
    }
    assert all(c.op == ">" and c.paper.strip() for c in tiny.claims)
    # the arm also names the gpt_* claims, which exist from `small` on only
    fails = set(BROKEN_ARMS["cats-in-place-of-chess"].fails)
    assert fails - {c.name for c in tiny.claims} == {"gpt_chess_beats_cats", "gpt_chess_norm_beats_cats"}
    assert {c.name for c in tiny.claims} <= fails


@pytest.mark.data
def test_chess_tiny_reaches_target_sparsity_with_bounded_damage(tiny):
    m = tiny.metrics
    assert m["dense_ffn_sparsity"] < 0.05  # GELU outputs are almost never exactly zero
    for name in ARMS:
        assert abs(m[f"{name}_ffn_sparsity"] - SPARSITY) <= TOLERANCE, name
        assert 0.5 < m[f"{name}_cosine"] <= 1.0 + 1e-6, name
    assert all(c.passed for c in tiny.sanity)
    # sparsifying attention inputs as well costs more than the FFN alone
    assert m["chess_selective_attn_cosine"] < m["chess_cosine"]


@pytest.mark.data
def test_the_seed_picks_the_calibration_and_held_out_sentences():
    assert _sample("test", 16, 0) == _sample("test", 16, 0)
    assert _sample("test", 16, 0) != _sample("test", 16, 1)
    assert len(set(_sample("train", 64, 3))) == 64
