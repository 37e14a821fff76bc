"""`blockffn` reproduction at tiny scale: the BlockFFN GPT trains and reports TLS / CLS@8."""

from __future__ import annotations

import math

import pytest
import torch

from sparsetorch.activations.blockffn import token_sparsity
from sparsetorch.papers.blockffn import BROKEN_ARMS, AllExpertsBlockFFN, BlockFFNGPT, reproduce
from tests.papers.papers_testutil import one_thread


def test_blockffn_gpt_forward_returns_aux_per_layer():
    model = BlockFFNGPT(n_layer=2, d_model=32, block=16, seed=0)
    logits, auxes = model(torch.randint(0, 256, (2, 16)))
    assert logits.shape == (2, 16, 256) and len(auxes) == 2
    for a in auxes:
        assert 0.0 <= a.cls.item() <= a.tls.item() <= 1.0
    dense = BlockFFNGPT(n_layer=2, d_model=32, block=16, seed=0, dense=True)
    assert dense(torch.randint(0, 256, (2, 16)))[1] == []


def test_all_experts_router_activates_every_expert():
    model = BlockFFNGPT(n_layer=2, d_model=32, block=16, seed=0, ffn=AllExpertsBlockFFN)
    _, auxes = model(torch.randint(0, 256, (2, 16)))
    for a in auxes:
        assert (a.scores > 0).all() and a.tls.item() == 0.0 == token_sparsity(a.scores).item()


@pytest.fixture(scope="module")
def tiny():
    return one_thread(reproduce, "tiny")  # raises DataNotFoundError without the Shakespeare text


@pytest.mark.data
def test_blockffn_tiny_run(tiny):
    m = tiny.metrics
    for run in ("cls_aware", "plain"):
        assert m[f"{run}_val_loss"] < m[f"{run}_val_loss_init"]  # it learns something in 30 steps
        assert 0.0 <= m[f"{run}_cls"] <= m[f"{run}_tls"] <= 1.0
    assert m["cls_aware_val_loss_init"] == m["plain_val_loss_init"]  # paired arms: the same initialization
    assert math.isfinite(m["dense_val_loss"]) and m["dense_val_loss"] < m["cls_aware_val_loss_init"]
    assert m["cls_aware_tls_max"] >= m["cls_aware_tls"]


@pytest.mark.data
def test_claim_and_sanity_checks_are_the_stated_ones(tiny):
    assert {c.name for c in tiny.claims} == {
        "tls_reached",
        "cls_reached",
        "cls_losses_raise_cls",
        "close_to_dense",
    }
    assert {c.name for c in tiny.sanity} == {"model_learns", "no_dead_ffn_layer"}
    assert {c.name: c.op for c in tiny.claims}["cls_losses_raise_cls"] == ">"  # strictly higher
    assert all(c.paper for c in tiny.claims) and not any(c.paper for c in tiny.sanity)
    assert {c.name: c.passed for c in tiny.sanity}["model_learns"], tiny.render()
    assert set(BROKEN_ARMS) == {"plain-twice", "all-experts-router", "frozen"}


@pytest.mark.data
def test_same_seed_same_numbers_other_seed_other_numbers(tiny):
    assert one_thread(reproduce, "tiny", seed=0).metrics == tiny.metrics
    other = one_thread(reproduce, "tiny", seed=1).metrics
    assert other["cls_aware_val_loss_init"] != tiny.metrics["cls_aware_val_loss_init"]
    assert other["cls_aware_tls"] != tiny.metrics["cls_aware_tls"]
