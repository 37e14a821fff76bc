"""GraSP: the Hessian-gradient product against an explicit Hessian, the pruning direction, options."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sparsetorch import allocation
from sparsetorch.patterns import n_pruned
from sparsetorch.training import TRAINERS, keep_top_among
from sparsetorch.training.grasp import grasp_scores

TARGETS = ("0.weight", "2.weight")


def small(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 2))


def explicit_scores(model: nn.Module, x, y, temperature: float) -> dict[str, torch.Tensor]:
    """-S = w * (H g) with H the full Hessian over the targets (autograd.functional), g the gradient."""
    named = dict(model.named_parameters())
    shapes = [named[f].shape for f in TARGETS]
    sizes = [s.numel() for s in shapes]
    flat = torch.cat([named[f].detach().reshape(-1) for f in TARGETS])

    def loss(vector):
        parts = dict(
            zip(
                TARGETS, (p.reshape(s) for p, s in zip(vector.split(sizes), shapes, strict=True)), strict=True
            )
        )
        params = {k: v.detach() for k, v in named.items()} | parts
        return F.cross_entropy(torch.func.functional_call(model, params, (x,)) / temperature, y)

    g = torch.autograd.functional.jacobian(loss, flat)
    hg = torch.autograd.functional.hessian(loss, flat) @ g
    return {f: w * h for f, w, h, s in zip(TARGETS, flat.split(sizes), hg.split(sizes), shapes, strict=True)}


@pytest.mark.parametrize("temperature", [1.0, 200.0])
def test_hessian_gradient_product_matches_the_explicit_hessian(temperature):
    model = small(1).double()
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(10, 3, generator=g, dtype=torch.float64), torch.randint(0, 2, (10,), generator=g)
    expected = explicit_scores(model, x, y, temperature)
    params = {f: model.get_parameter(f) for f in TARGETS}
    got = grasp_scores(model, params, x, y, temperature=temperature)
    for f in TARGETS:
        torch.testing.assert_close(got[f].reshape(-1), expected[f], rtol=1e-8, atol=1e-14)
        assert got[f].abs().max() > 0


def test_grasp_prunes_the_highest_s_globally():
    model = small(2)
    x, y = torch.randn(16, 3), torch.randint(0, 2, (16,))
    with torch.no_grad():
        expected = explicit_scores(small(2).double(), x.double(), y, 200.0)
    keep_scores = {f: expected[f].reshape(model.get_parameter(f).shape).float() for f in TARGETS}
    s = {f: -v for f, v in keep_scores.items()}  # the paper's S = -w * Hg
    m = TRAINERS.get("grasp")(sparsity=0.6)
    m.prepare(model, torch.optim.SGD(model.parameters(), lr=0.1), data=(x, y))
    per_layer = allocation.global_budget(keep_scores, 0.6)
    for f in TARGETS:
        numel = keep_scores[f].numel()
        assert torch.equal(m.masks[f], keep_top_among(keep_scores[f], numel - n_pruned(numel, per_layer[f])))
    # The weight with the highest S anywhere is pruned, the one with the lowest is kept.
    flat_s = torch.cat([s[f].reshape(-1) for f in TARGETS])
    flat_mask = torch.cat([m.masks[f].reshape(-1) for f in TARGETS])
    assert not flat_mask[flat_s.argmax()] and flat_mask[flat_s.argmin()]


def test_grasp_defaults_and_options():
    assert TRAINERS.get("grasp")().config.temperature == 200.0
    assert TRAINERS.get("grasp")().config.distribution == "global"
    for bad in (0, -1.0, True, "200"):
        with pytest.raises(ValueError, match="temperature"):
            TRAINERS.get("grasp")(temperature=bad)
    model = small()
    m = TRAINERS.get("grasp")(sparsity=0.5, distribution="erk")
    x, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
    m.prepare(model, torch.optim.SGD(model.parameters(), lr=0.1), data=(x, y))
    per_layer = allocation.erk({f: tuple(k.shape) for f, k in m.masks.items()}, 0.5)
    for f, mask in m.masks.items():
        assert int((~mask).sum()) == n_pruned(mask.numel(), per_layer[f])
