"""Grown weights start at 0 with zeroed optimizer state; survivors keep theirs; growth reads dL/dW_eff."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tests.training.training_testutil import TARGETS, batches, net, prepared

SLOTS = {"sgd": ("momentum_buffer",), "adam": ("exp_avg", "exp_avg_sq"), "adamw": ("exp_avg", "exp_avg_sq")}


@pytest.mark.parametrize(
    ("name", "opt"),
    [("rigl", "sgd"), ("rigl", "adam"), ("rigl", "adamw"), ("set", "sgd"), ("granet", "adamw")],
)
def test_grown_weights_have_zeroed_optimizer_state(name, opt):
    model, optimizer, m = prepared(name, opt=opt)
    slots = SLOTS[opt] + (("max_exp_avg_sq",) if opt == "adamw" else ())  # the adamw helper uses amsgrad
    originals = {
        f: model.get_submodule(f.rpartition(".")[0]).parametrizations.weight.original for f in TARGETS
    }
    checked = 0
    for x, y in batches(12):
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
        old = {f: mask.clone() for f, mask in m.masks.items()}
        state = {f: {k: optimizer.state[p][k].clone() for k in slots} for f, p in originals.items()}
        if not m.step():
            optimizer.zero_grad()
            continue
        for f, p in originals.items():
            new = m.masks[f]
            grown, kept = new & ~old[f], new & old[f]
            assert (p[grown] == 0).all()  # grown weights start at 0
            for k in slots:
                assert (optimizer.state[p][k][grown] == 0).all(), (f, k)
                assert (optimizer.state[p][k][~new] == 0).all(), (f, k)
                assert torch.equal(optimizer.state[p][k][kept], state[f][k][kept]), (
                    f,
                    k,
                )  # survivors keep theirs
            checked += int(grown.sum())
        optimizer.zero_grad()
    assert checked > 0
    # The state that was zeroed had been non-zero before the update for some grown weight.
    assert any((optimizer.state[p][slots[0]] != 0).any() for p in originals.values())


def test_rigl_update_matches_an_independent_implementation():
    """One RigL update by hand: drop the smallest |w| active, grow the largest |dL/dW_eff| inactive."""
    model, optimizer, m = prepared(
        "rigl", opt="sgd", update_every=1, end=None, drop_fraction_anneal="constant"
    )
    optimizer.param_groups[0].update(momentum=0.0, weight_decay=0.0)
    x, y = batches(1)[0]
    masks = {f: mask.clone() for f, mask in m.masks.items()}
    # Reference gradient: a plain dense copy holding the effective (masked) weights.
    dense = net()
    dense.load_state_dict({k: v for k, v in _plain(model).items()})
    F.cross_entropy(dense(x), y).backward()

    F.cross_entropy(model(x), y).backward()
    optimizer.step()
    weights = {f: model.get_submodule(f.rpartition(".")[0]).weight.detach().clone() for f in TARGETS}
    assert m.step()
    for f in TARGETS:
        weight = weights[f]
        grad = dense.get_parameter(f).grad
        mask = masks[f]
        assert (grad[~mask] != 0).any()  # the effective weight's gradient is dense where masked
        active = int(mask.sum())
        n = math.floor(0.3 * active)
        magnitude = weight.abs().masked_fill(~mask, math.inf).flatten()
        dropped = magnitude.argsort()[:n]
        kept = mask.flatten().clone()
        kept[dropped] = False
        score = grad.abs().flatten().masked_fill(kept, -math.inf)
        grown = score.argsort(descending=True)[:n]
        expected = kept.clone()
        expected[grown] = True
        assert torch.equal(m.masks[f].flatten(), expected), f


def _plain(model):
    """state_dict under plain names, weights as the effective (masked) ones."""
    out = {}
    for k, v in model.state_dict().items():
        if k.endswith(".0.mask"):
            continue
        if ".parametrizations.weight.original" in k:
            owner = k.partition(".parametrizations")[0]
            v = model.get_submodule(owner).weight.detach()
            k = f"{owner}.weight"
        out[k] = v
    return out
