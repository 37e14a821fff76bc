"""Activation-sparsity statistics on models with known zeros; hooks are removed afterwards."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sparsetorch.activations.stats import ActivationSparsity, measure_activation_sparsity
from sparsetorch.activations.topk import TopK


class _Known(nn.Module):
    """Multiplies its input by a fixed 0/1 pattern, so the zeros of the output are known."""

    def __init__(self, pattern: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("pattern", pattern)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.pattern


def _model() -> nn.Sequential:
    # 3 tokens of 4 units: 0, 2 and 3 zeros per token
    pattern = torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 1.0, 0.0, 1.0], [0.0, 0.0, 0.0, 1.0]])
    return nn.Sequential(_Known(pattern), nn.Identity())


def test_known_zeros_per_token_and_layer():
    model = _model()
    x = torch.tensor([[0.5, 2.0, 0.05, 3.0], [1.0, 1.0, 1.0, 0.01], [1.0, 1.0, 1.0, 1.0]])
    with ActivationSparsity(model, targets="0", threshold=0.1) as rec:
        model(x)
    r = rec.results()["0"]
    assert r.tokens == 3 and r.units == 4
    torch.testing.assert_close(r.per_token, torch.tensor([0.0, 0.5, 0.75]))
    torch.testing.assert_close(r.per_token_near_zero, torch.tensor([0.25, 0.75, 0.75]))  # 0.05 and 0.01 count
    assert r.sparsity == pytest.approx(1.25 / 3)
    assert r.near_zero == pytest.approx(1.75 / 3)
    assert r.nonzero_percent == pytest.approx(100 * (1 - 1.25 / 3))


def test_hooks_removed_after_exit_also_on_error():
    model = _model()
    with ActivationSparsity(model, targets=["0", "1"]):
        assert len(model[0]._forward_hooks) == 1 and len(model[1]._forward_hooks) == 1
    assert not model[0]._forward_hooks and not model[1]._forward_hooks
    with pytest.raises(RuntimeError, match="boom"), ActivationSparsity(model, targets="1", capture="input"):
        assert len(model[1]._forward_pre_hooks) == 1
        raise RuntimeError("boom")
    assert not model[1]._forward_pre_hooks


def test_capture_input_of_next_layer_and_batched_tokens():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), TopK(4), nn.Linear(32, 8))
    x = torch.randn(2, 5, 8)
    with torch.no_grad(), ActivationSparsity(model, targets="2", capture="input") as rec:
        model(x)
        model(x[:1])
    r = rec.results()["2"]
    assert r.tokens == 15 and r.per_token.shape == (15,)
    assert r.sparsity >= 28 / 32  # at most 4 of 32 nonzero per token
    default = measure_activation_sparsity(model, x)  # default targets: the TopK module
    assert set(default) == {"1"} and default["1"].sparsity == pytest.approx(r.sparsity, abs=1e-6)


def test_token_mask_drops_padding():
    model = _model()
    x = torch.ones(1, 3, 4)
    with ActivationSparsity(model, targets="0") as rec:
        rec.token_mask = torch.tensor([[True, False, True]])
        model[0].pattern = model[0].pattern.unsqueeze(0)
        model(x)
    torch.testing.assert_close(rec.results()["0"].per_token, torch.tensor([0.0, 0.75]))


def test_gpt_mlp_hidden_via_fc2_input():
    from sparsetorch.models.gpt import GPT, GPTConfig

    gpt = GPT(GPTConfig(n_layer=2, d_model=32, n_head=2, block_size=16)).eval()
    res = measure_activation_sparsity(
        gpt, torch.randint(0, 256, (2, 16)), targets="blocks.*.mlp.fc2", capture="input"
    )
    assert list(res) == ["blocks.0.mlp.fc2", "blocks.1.mlp.fc2"]
    assert all(r.tokens == 32 and r.units == 128 for r in res.values())
    assert all(r.sparsity < 0.01 for r in res.values())  # GELU: almost no exact zeros


def test_errors():
    with pytest.raises(ValueError, match="no activation module"):
        ActivationSparsity(nn.Sequential(nn.Linear(2, 2)))
    with pytest.raises(ValueError, match="no module matches"):
        ActivationSparsity(_model(), targets="blocks.*")
    with pytest.raises(ValueError, match="capture"):
        ActivationSparsity(_model(), targets="0", capture="both")
    with pytest.raises(ValueError, match="threshold"):
        ActivationSparsity(_model(), targets="0", threshold=-1.0)
