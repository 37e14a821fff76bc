"""The tiny reproductions of the one-shot pruning papers run and report measured, sane numbers."""

import math

import pytest

from sparsetorch.papers import get_paper, run_paper


@pytest.mark.data
@pytest.mark.parametrize("key", ["dsnot", "icbs"])
def test_tiny_reproduction_measures_its_claim(key):
    paper = get_paper(key)
    assert paper.status == "implemented" and paper.modules
    result = run_paper(key, "tiny")
    assert result.checks, "a reproduction states its claim as checks"
    assert all(math.isfinite(v) for v in result.metrics.values())
    errors = {k: v for k, v in result.metrics.items() if "error" in k}
    assert errors and all(0.0 < v < 1.0 for v in errors.values())
    cosines = {k: v for k, v in result.metrics.items() if "cosine" in k}
    assert cosines and all(0.0 < v <= 1.0 for v in cosines.values())
    assert result.holds == all(c.passed for c in result.checks)  # computed, never set


def test_unknown_scale_is_refused():
    with pytest.raises(ValueError):
        run_paper("dsnot", "huge")
