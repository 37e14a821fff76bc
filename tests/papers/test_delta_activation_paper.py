"""`delta-activation` reproduction pieces: the translated stream, the delta CNN, and a tiny run."""

from __future__ import annotations

import pytest
import torch

from sparsetorch.activations.delta import DeltaActivation, DeltaConfig, accumulate
from sparsetorch.papers.delta_activation import BROKEN_ARMS, FrameCNN, reproduce, translated_stream
from tests.papers.papers_testutil import one_thread


def test_translated_stream_moves_one_pixel_per_frame():
    img = torch.rand(3, 1, 28, 28) + 0.1  # strictly positive so the item's extent is visible
    s = translated_stream(img, frames=8, canvas=40, seed=0)
    assert s.shape == (3, 8, 1, 40, 40)
    for i in range(3):
        assert torch.allclose(s[i, :].sum((1, 2, 3)), img[i].sum().expand(8))  # never clipped
        rows = [(f[0].sum(1) > 0).nonzero()[0].item() for f in s[i]]
        cols = [(f[0].sum(0) > 0).nonzero()[0].item() for f in s[i]]
        dy, dx = rows[1] - rows[0], cols[1] - cols[0]
        assert (dy, dx) != (0, 0) and abs(dy) <= 1 and abs(dx) <= 1
        assert rows == [rows[0] + dy * t for t in range(8)] and cols == [cols[0] + dx * t for t in range(8)]


def test_delta_cnn_operands_accumulate_to_quantized_relu():
    torch.manual_seed(0)
    model, x = FrameCNN(), torch.rand(2, 4, 1, 40, 40)
    delta = DeltaActivation(DeltaConfig(step=1 / 16, l1=0.1))
    _, _, dense_ops = model(x)
    logits, penalty, ops = model(x, delta)
    assert logits.shape == (2, 4, 10) and penalty.item() > 0
    first = dense_ops[0].unflatten(0, (2, 4))
    assert torch.equal(accumulate(ops[0]), torch.round(first / (1 / 16)) * (1 / 16))


@pytest.fixture(scope="module")
def tiny():
    return one_thread(reproduce, "tiny")  # raises DataNotFoundError without Fashion-MNIST


@pytest.mark.data
def test_delta_activation_tiny_run(tiny):
    m = tiny.metrics
    assert 0.0 < m["delta_density"] < m["baseline_density"] <= 1.0
    assert m["sparsity_gain"] > 1.0
    assert 0.1 < m["delta_accuracy"] <= 1.0 and 0.1 < m["baseline_accuracy"] <= 1.0
    assert m["sparsity_gain"] == pytest.approx(m["baseline_density"] / m["delta_density"])


@pytest.mark.data
def test_claim_and_sanity_checks_are_the_stated_ones(tiny):
    assert {c.name for c in tiny.claims} == {
        "sparsity_gain_at_least_2x",
        "accuracy_cost_small",
        "training_adds_sparsity",
    }
    assert {c.name for c in tiny.sanity} == {"baseline_above_chance"}
    assert {c.name: c.op for c in tiny.claims}["training_adds_sparsity"] == "<"  # strictly fewer
    assert all(c.paper for c in tiny.claims) and not any(c.paper for c in tiny.sanity)
    assert all(c.passed for c in tiny.sanity), tiny.render()
    assert set(BROKEN_ARMS) == {"baseline-twice", "no-delta-training", "untrained-delta-arm"}


@pytest.mark.data
def test_same_seed_same_numbers_other_seed_other_numbers(tiny):
    again = one_thread(reproduce, "tiny", seed=0)
    assert again.metrics == tiny.metrics
    other = one_thread(reproduce, "tiny", seed=1)
    assert other.metrics["baseline_density"] != tiny.metrics["baseline_density"]
    assert other.metrics["delta_accuracy"] != tiny.metrics["delta_accuracy"] or (
        other.metrics["baseline_accuracy"] != tiny.metrics["baseline_accuracy"]
    )
