"""Sparse-IFT's Sparse Wide transformation: the widths, the iso-FLOP budgets, and training under them."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from sparsetorch.accounting import report
from sparsetorch.masks import attach
from sparsetorch.models import create_model
from sparsetorch.training import fit
from sparsetorch.training.sparse_ift import (
    SparseWideRigL,
    SparseWideStatic,
    iso_flop_method,
    sparse_wide,
    width_multiplier,
)

SMALL = {"hidden": (12, 6), "in_features": 20, "num_classes": 3}


def small(sparsity: float):
    return sparse_wide(sparsity, SMALL["hidden"], in_features=20, num_classes=3)


def flops(model) -> int:
    return report(model, torch.zeros(1, model.config.in_features)).effective_flops


def dense_flops(**config) -> int:
    model = create_model("lenet-300-100", seed=0, **config)
    attach(
        model, {n: torch.ones_like(p, dtype=torch.bool) for n, p in model.named_parameters() if p.dim() == 2}
    )
    return flops(model)


@pytest.mark.parametrize("s", [0.0, 0.5, 0.75, 0.9, 0.96])
def test_width_multiplier_makes_a_both_sides_widened_layer_iso_flop(s):
    k = width_multiplier(s)
    assert (1 - s) * k**2 == pytest.approx(1.0)


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, True, "0.5"])
def test_width_multiplier_rejects_bad_sparsity(bad):
    with pytest.raises(ValueError, match="sparsity"):
        width_multiplier(bad)


def test_lenet_300_100_at_75_percent_doubles_the_widths():
    wide = sparse_wide(0.75)
    assert wide.width_multiplier == pytest.approx(2.0)
    assert wide.hidden == (600, 200) and wide.dense_hidden == (300, 100)
    assert wide.shapes == {"fc1.weight": (600, 784), "fc2.weight": (200, 600), "fc3.weight": (10, 200)}
    assert wide.nonzeros == {"fc1.weight": 784 * 300, "fc2.weight": 300 * 100, "fc3.weight": 100 * 10}
    # interior layer at s, boundary layers (one side widened) at 1 - sqrt(1 - s) = 0.5
    assert wide.layer_sparsity == pytest.approx({"fc1.weight": 0.5, "fc2.weight": 0.75, "fc3.weight": 0.5})
    assert wide.model_config() == {"in_features": 784, "hidden": (600, 200), "num_classes": 10}


def test_zero_sparsity_is_the_identity():
    wide = sparse_wide(0.0)
    assert wide.hidden == (300, 100) and set(wide.pruned.values()) == {0} and wide.target_sparsity == 0.0


@pytest.mark.parametrize("s", [0.3, 0.5, 0.8, 0.9])
def test_budgets_keep_the_dense_weight_count_for_any_rounding(s):
    wide = sparse_wide(s, (37, 11), in_features=50, num_classes=7)
    dense = (50, 37, 11, 7)
    for i, f in enumerate(wide.fqns):
        out, inp = wide.shapes[f]
        assert wide.nonzeros[f] == dense[i] * dense[i + 1] <= out * inp
    assert all(h >= d for h, d in zip(wide.hidden, wide.dense_hidden, strict=True))
    total = sum(o * i for o, i in wide.shapes.values())
    assert round(wide.target_sparsity * total) == sum(wide.pruned.values())


@pytest.mark.parametrize("name", ["rigl", "set", "random-pruning"])
def test_prepared_sparse_wide_model_has_the_dense_flops(name):
    wide = small(0.75)
    model = create_model("lenet-300-100", seed=0, **wide.model_config())
    method = wide.method(name, seed=0)
    method.prepare(model, torch.optim.SGD(model.parameters(), lr=0.1), total_steps=10)
    assert set(method.masks) == set(wide.fqns)  # the classifier too: its input was widened
    for f, mask in method.masks.items():
        assert int(mask.sum()) == wide.nonzeros[f]
    assert flops(model) == dense_flops(**SMALL)


def test_rigl_keeps_the_budgets_through_mask_updates():
    torch.manual_seed(0)
    wide = small(0.8)
    model = create_model("lenet-300-100", seed=0, **wide.model_config())
    method = iso_flop_method(wide, "rigl", update_every=2, end=10, seed=0)
    assert isinstance(method, SparseWideRigL)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    method.prepare(model, opt, total_steps=12)
    before = {f: m.clone() for f, m in method.masks.items()}
    g = torch.Generator().manual_seed(1)
    for _ in range(12):
        x, y = torch.randn(8, 20, generator=g), torch.randint(0, 3, (8,), generator=g)
        F.cross_entropy(model(x), y).backward()
        opt.step()
        method.step()
        opt.zero_grad()
    assert method.stats["updates"] == 5
    assert any(not torch.equal(before[f], m) for f, m in method.masks.items())  # masks moved
    for f, mask in method.masks.items():
        assert int(mask.sum()) == wide.nonzeros[f]
    # iso-FLOP in the masks' count; weights grown at 0 may still be 0, so count masks, not values
    assert sum(int(m.sum()) for m in method.masks.values()) * 2 == dense_flops(**SMALL)


def test_fit_trains_the_sparse_wide_model():
    wide = small(0.5)
    model = create_model("lenet-300-100", seed=0, **wide.model_config())
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 20, generator=g), torch.randint(0, 3, (64,), generator=g)
    out = fit(model, wide.method("random-pruning", seed=0), (x, y), epochs=2, batch_size=16, progress=False)
    assert math.isfinite(out["train_loss"]) and out["sparsity"] == pytest.approx(wide.target_sparsity)


def test_same_seed_same_masks():
    wide = small(0.75)
    masks = []
    for _ in range(2):
        model = create_model("lenet-300-100", seed=0, **wide.model_config())
        method = SparseWideStatic(wide, seed=3)
        method.prepare(model, torch.optim.SGD(model.parameters(), lr=0.1))
        masks.append(method.masks)
    assert all(torch.equal(masks[0][f], masks[1][f]) for f in wide.fqns)


def test_bad_input_is_refused_clearly():
    wide = small(0.75)
    with pytest.raises(ValueError, match="sets the sparsity"):
        wide.method("rigl", sparsity=0.9)
    with pytest.raises(KeyError, match="supports"):
        wide.method("gmp")
    with pytest.raises(ValueError, match="positive"):
        sparse_wide(0.5, (0, 10))
    model = create_model("lenet-300-100", seed=0, **wide.model_config())
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="pass no targets"):
        wide.method("set").prepare(model, opt, targets="fc1")
    dense = create_model("lenet-300-100", seed=0, **SMALL)
    with pytest.raises(ValueError, match="not the sparse wide shapes"):
        wide.method("set").prepare(dense, torch.optim.SGD(dense.parameters(), lr=0.1))
