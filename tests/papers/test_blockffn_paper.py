"""`blockffn` reproduction at tiny scale: the BlockFFN GPT trains and reports TLS / CLS@8."""

from __future__ import annotations

import math

import torch

from sparsetorch.papers.blockffn import BlockFFNGPT, reproduce


def test_blockffn_gpt_forward_returns_aux_per_layer():
    model = BlockFFNGPT(n_layer=2, d_model=32, block=16, seed=0)
    logits, auxes = model(torch.randint(0, 256, (2, 16)))
    assert logits.shape == (2, 16, 256) and len(auxes) == 2
    for a in auxes:
        assert 0.0 <= a.cls.item() <= a.tls.item() <= 1.0
    dense = BlockFFNGPT(n_layer=2, d_model=32, block=16, seed=0, dense=True)
    assert dense(torch.randint(0, 256, (2, 16)))[1] == []


def test_blockffn_tiny_run():
    result = reproduce("tiny")  # raises DataNotFoundError without the Shakespeare text
    m = result.metrics
    for run in ("cls_aware", "plain"):
        assert m[f"{run}_val_loss"] < m[f"{run}_val_loss_init"]  # it learns something in 30 steps
        assert 0.0 <= m[f"{run}_cls"] <= m[f"{run}_tls"] <= 1.0
    assert math.isfinite(m["dense_val_loss"]) and m["dense_val_loss"] < m["cls_aware_val_loss_init"]
    assert m["cls_aware_tls_max"] >= m["cls_aware_tls"]
    assert set(result.passed) == {
        "model_learns",
        "tls_reached",
        "cls_reached",
        "cls_losses_raise_cls",
        "no_dead_ffn_layer",
        "close_to_dense",
    }
