"""The tiny byte-level GPT: causality, byte codec, sampling, loss."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sparsetorch.models import create_model
from sparsetorch.models.gpt import GPT, GPTConfig, decode, encode

SMALL = {"n_layer": 2, "n_head": 2, "d_model": 32, "block_size": 16}


def small_gpt(**overrides) -> GPT:
    return create_model("gpt-tiny", seed=0, **{**SMALL, **overrides})


def test_default_config_and_names():
    model = create_model("gpt-tiny")
    assert model.config == GPTConfig()
    assert isinstance(model.blocks, nn.ModuleList) and len(model.blocks) == 4
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    assert linears[:6] == [
        f"blocks.0.{s}"
        for s in ("attn.q_proj", "attn.k_proj", "attn.v_proj", "attn.out_proj", "mlp.fc1", "mlp.fc2")
    ]
    assert linears[-1] == model.classifier_fqn == "lm_head"
    assert model.lm_head.weight is not model.tok_emb.weight  # untied by default


def test_causal():
    model = small_gpt().eval()
    gen = torch.Generator().manual_seed(0)
    idx = torch.randint(0, 256, (2, 16), generator=gen)
    t = 6
    changed = idx.clone()
    changed[:, t + 1 :] = torch.randint(0, 256, (2, 16 - t - 1), generator=gen)
    a, b = model(idx), model(changed)
    assert torch.allclose(a[:, : t + 1], b[:, : t + 1], atol=1e-6)
    assert not torch.allclose(a[:, t + 1 :], b[:, t + 1 :])


@pytest.mark.parametrize("text", ["", "To be, or not to be", "naïve café — ünïcødé ✓"])
def test_encode_decode_round_trip(text):
    ids = encode(text)
    assert ids.dtype == torch.long and ids.shape == (len(text.encode("utf-8")),)
    assert decode(ids) == text == GPT.decode(GPT.encode(text))
    assert decode(ids.tolist()) == text


def test_loss_is_next_token_cross_entropy():
    model = small_gpt()
    idx = torch.randint(0, 256, (2, 9))
    expected = F.cross_entropy(model(idx[:, :-1]).reshape(-1, 256), idx[:, 1:].reshape(-1))
    assert torch.allclose(model.loss(idx[:, :-1], idx[:, 1:]), expected)
    assert abs(expected.item() - torch.log(torch.tensor(256.0)).item()) < 0.5  # near uniform at init


def test_generate_reproducible_with_generator():
    model = small_gpt().eval()
    prompt = encode("Hi").unsqueeze(0)  # (1, 2)
    a = model.generate(prompt, 20, generator=torch.Generator().manual_seed(1), top_k=10)
    b = model.generate(prompt, 20, generator=torch.Generator().manual_seed(1), top_k=10)
    assert a.shape == (1, 22) and torch.equal(a, b) and torch.equal(a[:, :2], prompt)
    greedy = model.generate(prompt, 20, temperature=0)  # longer than block_size: context is cropped
    assert greedy.shape == (1, 22)
    assert isinstance(decode(a[0]), str)


def test_block_size_enforced_and_tying():
    model = small_gpt(tie_weights=True)
    assert model.lm_head.weight is model.tok_emb.weight
    with pytest.raises(ValueError, match="block_size"):
        model(torch.zeros(1, 17, dtype=torch.long))
    with pytest.raises(ValueError, match="divisible"):
        GPTConfig(d_model=30, n_head=4)
