"""The tiny reproductions of the sparse-training papers (sr-ste, bdwp, sparse-model-soups): the
claim and sanity checks they state, sane measured numbers, and one seed fixing every number."""

import math

import pytest

from sparsetorch.papers import get_paper
from tests.papers.papers_testutil import one_thread

# key: (claim checks, sanity checks, sparsity of every sparse arm)
EXPECTED = {
    "sr-ste": ({"srste_2of4_within_1_point_of_dense"}, {"srste_2of4_sparsity_is_half"}, 0.5),
    "bdwp": ({"bdwp_2of8_loss_at_most_0.56_points"}, {"bdwp_2of8_sparsity_is_three_quarters"}, 0.75),
    "sparse-model-soups": (
        {"soup_beats_best_ingredient", "soup_beats_imp_at_equal_compute"},
        {
            "soup_reaches_90pct_sparsity",
            "imp_equal_compute_reaches_90pct_sparsity",
            "imp_reaches_90pct_sparsity",
        },
        0.9,
    ),
}
CHEAP = ("sr-ste", "bdwp")  # about a second per run: seeds are compared


@pytest.fixture(scope="module")
def tiny():
    cache = {}

    def run(key, seed=0):
        if (key, seed) not in cache:
            cache[key, seed] = one_thread(get_paper(key).run, "tiny", seed=seed)
        return cache[key, seed]

    return run


def _measured(result):
    return {k: v for k, v in result.metrics.items() if not k.endswith("_seconds")}  # wall time varies


@pytest.mark.data
@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_tiny_reproduction_states_its_claim_and_sanity_checks(key, tiny):
    claims, sanity, sparsity = EXPECTED[key]
    result = tiny(key)
    assert {c.name for c in result.claims} == claims
    assert {c.name for c in result.sanity} == sanity
    assert all(c.paper.strip() for c in result.claims), "every claim check carries the paper's number"
    assert all(c.passed for c in result.sanity), [c.render() for c in result.sanity]  # by construction
    assert all(math.isfinite(v) for v in result.metrics.values())
    accuracies = {k: v for k, v in result.metrics.items() if k.endswith("_accuracy")}
    assert len(accuracies) >= 2 and all(0.3 < v <= 1.0 for v in accuracies.values())  # 10 classes: chance 0.1
    sparse = [k for k in result.metrics if k.endswith("_sparsity") and not k.startswith("dense")]
    assert sparse and all(result.metrics[k] == pytest.approx(sparsity) for k in sparse)
    assert result.metrics["dense_sparsity"] == 0.0
    assert "seed 0" in result.note


@pytest.mark.data
def test_soups_compare_at_equal_retraining_compute(tiny):
    m = tiny("sparse-model-soups").metrics
    assert m["retraining_epochs_imp_equal_compute"] == m["retraining_epochs_soup"]
    assert m["retraining_epochs_soup"] == 2 * m["retraining_epochs_imp"]  # 2 ingredients at tiny scale
    assert m["best_ingredient_accuracy"] >= m["mean_ingredient_accuracy"]
    assert m["soup_minus_imp_equal_compute_points"] == pytest.approx(
        100 * (m["soup_accuracy"] - m["imp_equal_compute_accuracy"])
    )


@pytest.mark.data
@pytest.mark.parametrize("key", CHEAP)
def test_the_seed_fixes_every_number(key, tiny):
    first, again, other = tiny(key), one_thread(get_paper(key).run, "tiny", seed=0), tiny(key, seed=1)
    assert _measured(again) == _measured(first)
    assert _measured(other) != _measured(first)
    assert "seed 1" in other.note
