"""`lazy-neuron` reproduction at tiny scale: a ReLU tiny GPT's MLP activations sparsify in training."""

from __future__ import annotations

import pytest
import torch

from sparsetorch.papers import lazy_neuron
from tests.papers.papers_testutil import one_thread


def test_relu_gpt_swaps_only_the_activation():
    model = lazy_neuron.relu_gpt(n_layer=2, d_model=32, block=16, seed=0)
    names = [n for n, _ in model.named_modules() if n.endswith("mlp.act")]
    assert names == ["blocks.0.mlp.act", "blocks.1.mlp.act"]
    assert all(isinstance(m.mlp.act, torch.nn.ReLU) for m in model.blocks)
    keys = set(model.state_dict())
    assert {"blocks.0.mlp.fc1.weight", "blocks.0.mlp.fc2.weight"} <= keys  # the same FQNs as the GELU GPT


@pytest.fixture(scope="module")
def tiny():
    return one_thread(lazy_neuron.reproduce, "tiny")  # raises DataNotFoundError without the data


@pytest.mark.data
def test_tiny_reproduction_sparsity_emerges(tiny):
    m = tiny.metrics
    passed = tiny.passed
    assert passed["sparsity_emerges_L0"] and passed["sparsity_emerges_L1"], tiny.render()
    assert not passed["few_nonzero_at_end"]  # 60 steps are far from the paper's few percent
    for arm in ("relu", "topk"):
        assert 0.0 <= m[f"noisy_{arm}_memorized"] <= 1.0
        assert 0.1 <= m[f"noisy_{arm}_test_accuracy"] <= 1.0
    for layer in (0, 1):
        assert 35.0 < m[f"nonzero_pct_L{layer}_init"] < 65.0  # ReLU of symmetric pre-activations at init
        assert 0.0 <= m[f"nonzero_pct_L{layer}_final"] <= 100.0


@pytest.mark.data
def test_claim_and_sanity_checks_are_the_stated_ones(tiny):
    assert {c.name for c in tiny.claims} == {
        "sparsity_emerges_L0",
        "sparsity_emerges_L1",
        "few_nonzero_at_end",
        "topk_more_robust_to_label_noise",
    }
    assert {c.name for c in tiny.sanity} == {"model_learns"}
    ops = {c.name: c.op for c in tiny.claims}
    assert ops["sparsity_emerges_L0"] == "<" and ops["topk_more_robust_to_label_noise"] == ">"
    assert all(c.paper for c in tiny.claims) and not any(c.paper for c in tiny.sanity)
    assert all(c.passed for c in tiny.sanity), tiny.render()
    assert set(lazy_neuron.BROKEN_ARMS) == {"gelu-in-place", "relu-twice"}


@pytest.mark.data
def test_same_seed_same_numbers_other_seed_other_numbers(tiny):
    assert one_thread(lazy_neuron.reproduce, "tiny", seed=0).metrics == tiny.metrics
    other = one_thread(lazy_neuron.reproduce, "tiny", seed=1).metrics
    assert other["val_loss_init"] != tiny.metrics["val_loss_init"]
    assert other["noisy_relu_test_accuracy"] != tiny.metrics["noisy_relu_test_accuracy"]


def test_noisy_labels_change_exactly_the_fraction_and_never_to_the_true_class():
    from sparsetorch.papers.lazy_neuron_noise import noisy_labels

    y = torch.arange(1000) % 10
    out = noisy_labels(y, 0.4, generator=torch.Generator().manual_seed(0))
    assert int((out != y).sum()) == 400
    assert out.min() >= 0 and out.max() <= 9
    again = noisy_labels(y, 0.4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    with pytest.raises(ValueError, match="fraction"):
        noisy_labels(y, 1.5, generator=torch.Generator())


def test_tiny_vit_topk_keeps_k_activations_per_token():
    from sparsetorch.activations.topk import TopK
    from sparsetorch.papers.lazy_neuron_noise import TinyViT

    torch.manual_seed(0)
    model = TinyViT(d=32, layers=1, act=lambda: TopK(8, relu=True))
    seen = []
    model.blocks[0].act.register_forward_hook(lambda m, i, o: seen.append(o))
    logits = model(torch.randn(3, 1, 28, 28))
    assert logits.shape == (3, 10)
    assert seen[0].shape == (3, 16, 128)
    assert int((seen[0] != 0).sum(dim=-1).max()) <= 8
