"""`lazy-neuron` reproduction at tiny scale: a ReLU tiny GPT's MLP activations sparsify in training."""

from __future__ import annotations

import pytest
import torch

from sparsetorch.papers import lazy_neuron


def test_relu_gpt_swaps_only_the_activation():
    model = lazy_neuron.relu_gpt(n_layer=2, d_model=32, block=16, seed=0)
    names = [n for n, _ in model.named_modules() if n.endswith("mlp.act")]
    assert names == ["blocks.0.mlp.act", "blocks.1.mlp.act"]
    assert all(isinstance(m.mlp.act, torch.nn.ReLU) for m in model.blocks)
    keys = set(model.state_dict())
    assert {"blocks.0.mlp.fc1.weight", "blocks.0.mlp.fc2.weight"} <= keys  # the same FQNs as the GELU GPT


@pytest.mark.data
def test_tiny_reproduction_sparsity_emerges():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: the same float results on every machine
    try:
        result = lazy_neuron.reproduce("tiny")
    finally:
        torch.set_num_threads(threads)
    m = result.metrics
    assert result.holds, result.render()
    assert {"sparsity_emerges_L0", "sparsity_emerges_L1", "model_learns"} <= set(result.passed)
    for layer in (0, 1):
        assert 35.0 < m[f"nonzero_pct_L{layer}_init"] < 65.0  # ReLU of symmetric pre-activations at init
        assert 0.0 <= m[f"nonzero_pct_L{layer}_final"] <= 100.0
