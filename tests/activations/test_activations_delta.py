"""Delta Activation Layer: exact reconstruction by accumulation, streaming form, STE, penalty."""

from __future__ import annotations

import pytest
import torch

from sparsetorch.activations.delta import (
    DeltaActivation,
    DeltaConfig,
    accumulate,
    delta_sparsity,
    quantize,
    temporal_delta,
)


def test_accumulated_deltas_reconstruct_quantized_activation_exactly():
    a = torch.randn(3, 50, 7, generator=torch.Generator().manual_seed(0)) * 5
    for step in (1.0, 0.25, 1 / 64):
        d = temporal_delta(a, step)
        assert torch.equal(accumulate(d), quantize(a, step))
        assert torch.equal(d[:, 0], quantize(a, step)[:, 0])  # q(a_0) = 0: the first delta is the frame


def test_streaming_step_matches_batch_deltas():
    layer = DeltaActivation(DeltaConfig(step=0.125, l1=0.1))
    a = torch.randn(2, 10, 4)
    out = layer(a)
    state = None
    for t in range(10):
        d, state = layer.step(a[:, t], state)
        assert torch.equal(d, out.delta[:, t])
    assert torch.equal(out.value, quantize(a, 0.125))
    assert out.penalty.item() == pytest.approx(0.1 * out.delta.abs().mean().item())


def test_constant_stream_has_only_first_frame_delta_and_ste_gradient():
    a = torch.rand(1, 6, 5).expand(1, 6, 5).clone()
    a[:, 1:] = a[:, :1]
    d = temporal_delta(a, 1 / 16)
    assert torch.count_nonzero(d[:, 1:]) == 0
    assert delta_sparsity(d[:, 1:]) == 1.0
    x = torch.randn(4, 3, requires_grad=True)
    quantize(x, 0.5).sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))  # straight-through


def test_small_changes_below_step_give_zero_deltas():
    a = torch.tensor([[[0.50], [0.52], [0.55], [0.70]]])  # (1, 4, 1)
    d = temporal_delta(a, 0.25)
    assert d.flatten().tolist() == [0.5, 0.0, 0.0, 0.25]


def test_bad_config():
    with pytest.raises(ValueError, match="step"):
        DeltaConfig(step=0.0)
    with pytest.raises(ValueError, match="l1"):
        DeltaConfig(l1=-1.0)
