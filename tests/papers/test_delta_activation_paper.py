"""`delta-activation` reproduction pieces: the translated stream, the delta CNN, and a tiny run."""

from __future__ import annotations

import torch

from sparsetorch.activations.delta import DeltaActivation, DeltaConfig, accumulate
from sparsetorch.papers.delta_activation import FrameCNN, reproduce, translated_stream


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


def test_delta_activation_tiny_run():
    result = reproduce("tiny")  # raises DataNotFoundError without Fashion-MNIST
    m = result.metrics
    assert 0.0 < m["delta_density"] < m["baseline_density"] <= 1.0
    assert m["sparsity_gain"] > 1.0
    assert 0.1 < m["delta_accuracy"] <= 1.0 and 0.1 < m["baseline_accuracy"] <= 1.0
