"""The `sparsey` reproduction: single-trial storage, recall, similar inputs -> similar codes."""

from __future__ import annotations

import math

import pytest

from sparsetorch.papers.sparsey import LEVELS, reproduce


@pytest.fixture(scope="module")
def tiny():
    return reproduce("tiny")


@pytest.mark.data
def test_tiny_reproduction_holds_with_the_paper_beside_each_claim(tiny):
    assert tiny.holds, tiny.render()
    assert {c.name for c in tiny.claims} == {
        "stored_input_reinstates_its_code", "noisy_probe_recalls_the_item", "similar_inputs_similar_codes",
        "sisc_beats_random_codes", "familiarity_tracks_similarity", "pairwise_similarity_preserved",
        "label_retrieval_above_chance",
    }  # fmt: skip
    assert all(c.paper for c in tiny.claims)
    assert {c.name for c in tiny.sanity} == {"one_winner_per_cm", "novel_inputs_near_random_codes"}
    assert all(c.passed for c in tiny.sanity), tiny.render()
    assert all(math.isfinite(v) for v in tiny.metrics.values())


@pytest.mark.data
def test_code_overlap_rises_with_input_similarity_only_under_the_csa(tiny):
    m = tiny.metrics
    csa = [m[f"csa_code_overlap_at_{round(level * 100)}pct"] for level in LEVELS]
    control = [m[f"control_code_overlap_at_{round(level * 100)}pct"] for level in LEVELS]
    assert csa[0] > 0.9 > 0.1 > csa[-1]  # fully familiar -> same code; novel -> near-random code
    assert max(control) < 0.1  # random codes: about 1/K whatever the similarity
    assert m["csa_sisc_spearman"] > m["control_sisc_spearman"] + 0.4
    assert m["csa_one_winner_per_cm"] == 1.0 == m["control_one_winner_per_cm"]


@pytest.mark.data
def test_both_memories_recall_noisy_probes(tiny):
    m = tiny.metrics
    assert m["csa_noisy_item_recall"] >= 0.9 and m["control_noisy_item_recall"] >= 0.9
    assert m["csa_exact_retrieval_overlap"] >= 0.99
    assert m["csa_label_accuracy"] > 0.25 and m["raw_pixel_nn_label_accuracy"] > 0.25


@pytest.mark.data
def test_same_seed_same_numbers_other_seed_other_items(tiny):
    keep = ("csa_sisc_spearman", "csa_label_accuracy", "csa_pairs_pearson")
    again, other = reproduce("tiny", seed=0), reproduce("tiny", seed=1)
    assert {k: again.metrics[k] for k in keep} == {k: tiny.metrics[k] for k in keep}
    assert {k: other.metrics[k] for k in keep} != {k: tiny.metrics[k] for k in keep}


def test_unknown_scale_is_refused():
    with pytest.raises(ValueError, match="scale"):
        reproduce("huge")
