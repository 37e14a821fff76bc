"""The `sdr-dendrites` reproduction: the paper's numbers, Monte Carlo agreement, the optimal threshold."""

from __future__ import annotations

import math

import pytest

from sparsetorch.papers.sdr_dendrites import BROKEN_ARMS, reproduce


@pytest.fixture(scope="module")
def tiny():
    return reproduce("tiny")


def test_tiny_reproduction_holds_with_the_paper_beside_each_claim(tiny):
    assert tiny.holds, tiny.render()
    assert len(tiny.claims) == 11 and all(c.paper for c in tiny.claims)
    sanity = {c.name for c in tiny.sanity}
    assert {"union_fewer_than_250_synapses", "numenta_fig7b_agrees", "mc_union_agrees"} <= sanity
    assert all(c.passed for c in tiny.sanity), tiny.render()
    assert not sanity & {c.name for c in tiny.claims}
    assert all(math.isfinite(v) for v in tiny.metrics.values())
    assert set(BROKEN_ARMS["threshold-at-s"].fails) <= {c.name for c in tiny.claims}


def test_the_paper_examples_are_recomputed(tiny):
    m = tiny.metrics
    assert m["ex1_false_match"] == pytest.approx(2.279e-11, rel=1e-3)
    assert m["ex1_false_negative_20pct_noise"] == pytest.approx(3.947e-8, rel=1e-3)
    assert m["ex2_false_match_1e6_segments"] == pytest.approx(1.0492e-9, rel=1e-4)
    assert m["ex2_naive_float_1e6_segments"] < 1e-9 < m["ex2_false_match_1e6_segments"]
    assert m["union_expected_synapses"] == pytest.approx(248.6, abs=0.05)
    assert m["fig5a_false_match"] == pytest.approx(1.343e-12, rel=1e-3)
    assert m["fig6_first_theta_median_at_most_1e-9"] == 10


def test_the_optimal_threshold_falls_in_the_measured_range(tiny):
    m = tiny.metrics
    for noise in (10, 20, 30):
        assert 8 <= m[f"optimal_theta_median_noise_{noise}pct"] <= 20
    # noisier inputs favour lower thresholds
    assert m["optimal_theta_median_noise_10pct"] > m["optimal_theta_median_noise_30pct"]


def test_the_seed_moves_only_the_monte_carlo(tiny):
    again, other = reproduce("tiny", seed=0), reproduce("tiny", seed=1)
    assert again.metrics == tiny.metrics
    assert other.metrics["mc_false_match_simulated"] != tiny.metrics["mc_false_match_simulated"]
    assert other.metrics["ex1_false_match"] == tiny.metrics["ex1_false_match"]


def test_unknown_scale_is_refused():
    with pytest.raises(ValueError, match="scale"):
        reproduce("huge")
