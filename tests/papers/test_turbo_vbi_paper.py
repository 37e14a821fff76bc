"""The `turbo-vbi` reproduction at tiny scale: measured checks, sane metrics, structure invariants."""

from __future__ import annotations

import math

import pytest
import torch

from sparsetorch.papers.turbo_vbi import ARMS, PRESET, SPARSITY, removed_neurons, reproduce, weights_per_run
from tests.papers.papers_testutil import one_thread


@pytest.fixture(scope="module")
def tiny():
    return one_thread(reproduce, "tiny")


@pytest.mark.data
def test_tiny_reproduction_is_measured_not_asserted(tiny):
    assert {c.name for c in tiny.claims} == {
        "turbo_removes_more_neurons_than_gmp", "turbo_longer_weight_runs_than_gmp",
        "turbo_more_accurate_than_gmp", "turbo_within_1_point_of_dense_at_10x",
        "markov_prior_removes_more_neurons_than_iid", "posterior_pruning_within_1_point_of_dense",
    }  # fmt: skip
    assert all(c.paper.strip() for c in tiny.claims)
    assert {c.name for c in tiny.sanity} == {f"{arm}_sparsity_is_preset" for arm in PRESET}
    assert all(c.passed for c in tiny.sanity)  # the preset arms are projected to SPARSITY
    m = tiny.metrics
    assert all(math.isfinite(v) for v in m.values())
    for arm in ARMS:
        assert 0.1 < m[f"{arm}_accuracy"] <= 1.0  # 10 classes: better than chance
        assert 0 <= m[f"{arm}_removed_neurons"] <= 400
    for arm in PRESET:  # the preset sparsity is exact: 10x on the targets
        assert m[f"{arm}_sparsity"] == pytest.approx(SPARSITY, abs=1e-6)
        assert m[f"{arm}_compression"] == pytest.approx(1 / (1 - SPARSITY), rel=1e-4)
        assert 1 < m[f"{arm}_model_compression"] < m[f"{arm}_compression"]  # biases, classifier
    assert m["dense_compression"] == 1.0 and m["dense_removed_neurons"] == 0
    assert m["posterior_compression"] == pytest.approx(1 / (1 - m["posterior_sparsity"]))
    assert m["turbo_minus_gmp_points"] == pytest.approx(100 * (m["turbo_accuracy"] - m["gmp_accuracy"]))
    assert "Fashion-MNIST" in tiny.note and "seed 0" in tiny.note


def test_structure_metrics_by_hand():
    w1 = torch.tensor([[1.0, 1.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0], [1.0, 0.0, 1.0, 1.0]])  # 3 x 4
    w2 = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])  # 2 x 3: unit 1 of layer 1 has no outputs
    w3 = torch.ones(5, 2)
    # Layer 1: unit 1 has no inputs (and no outputs); layer 2: unit 1 has no inputs.
    assert removed_neurons([w1, w2, w3]) == 2
    # Runs along rows: w1 [2, 1], -, [1, 2]; w2 [1, 1]: 8 non-zeros in 6 runs.
    assert weights_per_run([w1, w2]) == pytest.approx(8 / 6)
    assert weights_per_run([torch.zeros(2, 3)]) == 0.0


def test_unknown_scale_is_refused():
    with pytest.raises(ValueError, match="scale"):
        reproduce("medium")
