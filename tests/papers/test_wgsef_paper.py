"""The tiny `wgsef` reproduction: its claim check, its construction invariants as sanity checks
(the preset group sparsity, exact by a final projection), sane numbers, and the seed fixing them."""

import math

import pytest

from sparsetorch.papers import get_paper
from tests.papers.papers_testutil import one_thread


def _run(seed=0):
    return one_thread(get_paper("wgsef").run, "tiny", seed=seed)


@pytest.fixture(scope="module")
def tiny():
    return _run()


@pytest.mark.data
def test_tiny_reproduction_measures_its_claim(tiny):
    assert {c.name for c in tiny.claims} == {"wgsef_within_1_point_of_dense"}
    assert {c.name for c in tiny.sanity} == {
        "wgsef_reaches_the_preset_group_sparsity",
        "wgsef_not_above_the_preset_group_sparsity",
    }
    assert all(c.paper.strip() for c in tiny.claims)
    assert all(c.passed for c in tiny.sanity)  # the projection makes the group sparsity exact
    m = tiny.metrics
    assert all(math.isfinite(v) for v in m.values())
    assert m["wgsef_sparsity"] == m["magnitude_group_sparsity"] == 0.5
    for label in ("dense", "wgsef", "magnitude_group"):
        assert 0.2 < m[f"{label}_accuracy"] <= 1.0  # 10 classes: chance 0.1
    assert m["wgsef_drop_points"] == pytest.approx(100 * (m["dense_accuracy"] - m["wgsef_accuracy"]))


@pytest.mark.data
def test_the_seed_fixes_every_number(tiny):
    def measured(result):
        return {k: v for k, v in result.metrics.items() if not k.endswith("_seconds")}

    assert measured(_run(0)) == measured(tiny)
    assert measured(_run(1)) != measured(tiny)
