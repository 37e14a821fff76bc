"""The `beyond-l1` reproduction: l0 and CEL0 beat l1 at equal sparsity; the atoms are oriented."""

from __future__ import annotations

import math

import pytest

from sparsetorch.papers.beyond_l1 import PAPER, reproduce


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("figures")
    return reproduce("tiny", figure_dir=folder), folder


@pytest.mark.data
def test_tiny_reproduction_holds_with_the_paper_beside_each_claim(tiny):
    result, _ = tiny
    assert result.holds, result.render()
    assert {c.name for c in result.claims} == set(PAPER)
    assert all(c.paper for c in result.claims)
    assert [c.name for c in result.sanity] == ["cel0_prox_matches_brute_force"]
    assert all(c.passed for c in result.sanity)
    assert all(math.isfinite(v) for v in result.metrics.values())
    # the paper's ratios stand beside the (scale-limited) thresholds
    assert "five times" in result.checks[0].paper


@pytest.mark.data
def test_l0_based_codes_reconstruct_better_at_equal_sparsity(tiny):
    m = tiny[0].metrics
    for tag in ("3pct", "5pct"):
        assert m[f"cel0_error_at_{tag}"] < m[f"l1_error_at_{tag}"]
        assert m[f"l0_error_at_{tag}"] < m[f"l1_error_at_{tag}"]
    assert m["l1_density_at_matched_error"] > m["cel0_density_at_matched_error"]
    for name in ("l1", "l0", "cel0", "l1_2x"):
        assert m[f"{name}_loss_last"] < m[f"{name}_loss_first"]  # learning lowered the objective


@pytest.mark.data
def test_the_dictionaries_are_drawn(tiny):
    pytest.importorskip("matplotlib")
    result, folder = tiny
    for name in ("l1", "l0", "cel0", "l1_2x"):
        png = (folder / f"beyond_l1_{name}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        assert len(png) == result.metrics[f"{name}_figure_png_bytes"]


def test_unknown_scale_is_refused():
    with pytest.raises(ValueError, match="scale"):
        reproduce("huge")
