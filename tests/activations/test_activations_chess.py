"""CHESS / CATS thresholds: calibration hits the target per channel, CATS == CHESS on identical
channels, module swaps on the tiny GPT (selective attention) and state_dict round trip."""

from __future__ import annotations

import pytest
import torch

from sparsetorch.activations.chess import (
    ChessConfig,
    ThresholdActivation,
    ThresholdInputLinear,
    calibrate,
    channel_thresholds,
    layer_threshold,
    sparsify,
    sparsify_gpt,
    threshold,
    weighted_thresholds,
)


def test_channel_thresholds_zero_target_fraction_per_channel():
    g = torch.Generator().manual_seed(0)
    # channels with very different scales: a single threshold could not give each 30%
    acts = torch.randn(1000, 6, generator=g) * torch.tensor([0.01, 0.1, 1.0, 3.0, 10.0, 100.0])
    t = channel_thresholds(acts, 0.3)
    zeroed = (threshold(acts, t) == 0).float().mean(0)
    assert torch.equal(zeroed, torch.full((6,), 0.3))
    cats = threshold(acts, layer_threshold(acts, 0.3))
    assert (cats == 0).float().mean().item() == pytest.approx(0.3)
    assert (cats == 0).float().mean(0)[0] == 1.0  # CATS zeroes the small-scale channel entirely


def test_zero_sparsity_keeps_everything():
    acts = torch.randn(50, 4)
    assert torch.equal(threshold(acts, channel_thresholds(acts, 0.0)), acts)
    assert torch.equal(threshold(acts, layer_threshold(acts, 0.0)), acts)


def test_cats_equals_chess_when_channels_identical():
    v = torch.randn(100, generator=torch.Generator().manual_seed(1))
    acts = v[:, None].expand(100, 8).contiguous()  # every channel has the same values
    assert torch.equal(channel_thresholds(acts, 0.5), layer_threshold(acts, 0.5).expand(8))
    # error-weighted CHESS with unit column norms is CATS too
    assert torch.allclose(weighted_thresholds(acts, torch.ones(8), 0.5), layer_threshold(acts, 0.5).expand(8))


def test_bad_config_and_inputs():
    with pytest.raises(ValueError, match="sparsity"):
        ChessConfig(sparsity=1.0)
    with pytest.raises(ValueError, match="mode"):
        ChessConfig(mode="topk")
    with pytest.raises(ValueError, match="tokens, channels"):
        channel_thresholds(torch.randn(2, 3, 4), 0.5)


def _gpt():
    from sparsetorch.models import create_model

    return create_model("gpt-tiny", seed=0, n_layer=2, d_model=32, n_head=2, block_size=16, dropout=0.0)


def test_sparsify_gpt_selective_attention_and_state_dict():
    model = _gpt()
    batches = list(torch.randint(0, 256, (8, 16), generator=torch.Generator().manual_seed(0)).split(4))
    sparse, thr = sparsify_gpt(model, batches, ChessConfig(0.5, "chess", attention_sparsity=0.5))
    assert set(thr) == {
        "blocks.0.mlp.act",
        "blocks.1.mlp.act",
        "blocks.0.attn.q_proj",
        "blocks.1.attn.q_proj",
        "blocks.0.attn.out_proj",
        "blocks.1.attn.out_proj",
    }
    assert isinstance(sparse.blocks[0].mlp.act, ThresholdActivation)
    assert isinstance(sparse.blocks[0].attn.q_proj, ThresholdInputLinear)
    assert isinstance(sparse.blocks[0].attn.k_proj, torch.nn.Linear)  # keys / values stay dense
    assert isinstance(sparse.blocks[0].attn.v_proj, torch.nn.Linear)
    assert not hasattr(model.blocks[0].mlp, "act")  # the original is untouched
    # on the calibration data every FFN channel of the first layer is zeroed half of the time
    # (calibration is one-shot on the dense model, so only with attention left dense)
    ffn_only, _ = sparsify_gpt(model, batches, ChessConfig(0.5, "chess"))
    rec = []
    h = ffn_only.blocks[0].mlp.act.register_forward_hook(
        lambda m, a, o: rec.append(o.reshape(-1, o.shape[-1]))
    )
    with torch.no_grad():
        for b in batches:
            ffn_only(b)
    h.remove()
    frac = (torch.cat(rec) == 0).float().mean(0)
    assert torch.allclose(frac, torch.full_like(frac, 0.5))
    # thresholds are buffers: the sparse model round-trips through state_dict
    again, _ = sparsify_gpt(model, batches[:1], ChessConfig(0.5, "cats", attention_sparsity=0.5))
    again.load_state_dict(sparse.state_dict())
    x = batches[0]
    with torch.no_grad():
        assert torch.equal(again(x), sparse(x))


def test_calibrate_without_attention_and_sparsify_copy():
    model = _gpt()
    from sparsetorch.activations.chess import gpt_with_act_modules

    base = gpt_with_act_modules(model)
    x = torch.randint(0, 256, (4, 16), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.allclose(base(x), model(x), atol=1e-6)  # the module swap keeps outputs
    thr = calibrate(base, [x], ffn="blocks.*.mlp.act", config=ChessConfig(0.0, "cats"))
    assert set(thr) == {"blocks.0.mlp.act", "blocks.1.mlp.act"}
    with torch.no_grad():
        assert torch.equal(sparsify(base, thr)(x), base(x))  # sparsity 0 changes nothing
    with pytest.raises(ValueError, match="no module"):
        calibrate(base, [x], ffn="nothing.*")
