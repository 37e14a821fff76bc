"""The `transcoders` reproduction at tiny scale (needs all-MiniLM-L6-v2; skips cleanly without it)."""

from __future__ import annotations

import math

import pytest

from sparsetorch.papers.transcoders import BROKEN_ARMS, SCALES, reproduce
from tests.papers.papers_testutil import one_thread


@pytest.fixture(scope="module")
def tiny():
    return one_thread(reproduce, "tiny")  # load_minilm raises DataNotFoundError when the weights are missing


@pytest.mark.data
def test_tiny_reproduction_is_measured_not_asserted(tiny):
    assert {c.name for c in tiny.claims} == {
        "faithful_fve", "much_closer_than_mean_ablation", "sparse_l0_below_5pct_of_width",
        "sparsity_on_par_with_sae", "faithfulness_on_par_with_sae",
    }  # fmt: skip
    assert {c.name for c in tiny.sanity} == {"closer_than_zero_ablation", "dead_features_at_most_10pct"}
    assert all(c.paper for c in tiny.claims) and not any(c.paper for c in tiny.sanity)
    assert {c.name: c.passed for c in tiny.sanity}["closer_than_zero_ablation"], tiny.render()
    assert set(BROKEN_ARMS) == {"untrained-transcoder", "no-l1"}
    m = tiny.metrics
    assert all(math.isfinite(v) for v in m.values())
    assert m["width"] == SCALES["tiny"]["expansion"] * 384
    assert m["train_tokens"] > 500 and m["heldout_tokens"] > 100
    for side in ("transcoder", "sae"):
        assert 0 < m[f"{side}_l0"] < m["width"]
        assert m[f"{side}_density"] == pytest.approx(m[f"{side}_l0"] / m["width"])
        for key in ("dead_fraction", "never_active_heldout"):
            assert 0.0 <= m[f"{side}_{key}"] <= 1.0
        assert m[f"{side}_fve"] <= 1.0
    for name in ("transcoder", "sae", "mean_ablation", "zero_ablation"):
        assert -1.0 <= m[f"cosine_{name}"] <= 1.0 + 1e-6 and 0.0 <= m[f"top1_{name}"] <= 1.0
    # Removing the MLP's information must cost something, or the comparison would say nothing.
    assert m["cosine_mean_ablation"] < 0.999 and m["cosine_zero_ablation"] < 0.999
    # Even 100 steps learn more than the mean: positive held-out fve, beating mean ablation.
    assert m["transcoder_fve"] > 0.0 and m["cosine_transcoder"] > m["cosine_mean_ablation"]
    assert "not measurable" in tiny.note


def test_unknown_scale_is_refused():
    with pytest.raises(ValueError, match="scale"):
        reproduce("medium")
