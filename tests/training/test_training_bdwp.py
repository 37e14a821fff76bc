"""BDWP: N:M weights along the inputs in the forward pass and along the outputs in the backward
pass, against explicit products for Linear and Conv layers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sparsetorch.masks import get_masks as attached
from sparsetorch.patterns import NM
from sparsetorch.training import TRAINERS
from sparsetorch.training.bdwp import backward_nm_mask
from sparsetorch.training.nm import nm_mask
from tests.training.method_testutil import prepared
from tests.training.training_testutil import TARGETS, batches, net, train


def test_backward_mask_keeps_n_of_every_m_outputs_by_hand():
    w = torch.tensor([[0.1, 4.0], [-0.5, -3.0], [0.3, 2.0], [0.2, 1.0]])  # (out 4, in 2)
    # Column 0 (input 0): 0.3 and |-0.5| of the four outputs; column 1: 4 and |-3|.
    assert backward_nm_mask(w, NM(2, 4)).tolist() == [
        [False, True],
        [True, True],
        [True, False],
        [False, False],
    ]
    assert nm_mask(w.T, NM(2, 4)).T.tolist() == backward_nm_mask(w, NM(2, 4)).tolist()


def test_linear_products_by_hand():
    model, _opt, m = prepared("bdwp", decay=0.0)  # 1:4 on net(): 12 -> 16 -> 16 -> 3
    layer = model[2]
    original = layer.parametrizations.weight.original.detach().clone()
    forward_mask = nm_mask(original, NM(1, 4))
    backward_mask = backward_nm_mask(original, NM(1, 4))
    assert torch.equal(m.masks["2.weight"], forward_mask)
    assert torch.equal(layer.parametrizations.weight[0].backward_mask, backward_mask)
    assert (backward_mask.reshape(4, 4, 16).sum(1) == 1).all()  # 1 of every 4 outputs, per input

    x = torch.randn(5, 16, requires_grad=True)
    out = layer(x)
    torch.testing.assert_close(out, x @ (original * forward_mask).T + layer.bias)  # Y = X W_F^T
    dy = torch.randn_like(out)
    out.backward(dy)
    torch.testing.assert_close(x.grad, dy @ (original * backward_mask))  # dX = dY W_B
    torch.testing.assert_close(layer.parametrizations.weight.original.grad, dy.T @ x.detach())  # dense dW
    assert not torch.allclose(x.grad, dy @ (original * forward_mask))  # not SR-STE's dX


def test_conv_input_gradient_reads_the_backward_weights():
    model = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(32, 2))
    m = TRAINERS.get("bdwp")(pattern="2:4")
    m.prepare(model, torch.optim.SGD(model.parameters(), lr=0.1))
    conv = model[0]
    w = conv.parametrizations.weight.original.detach()
    wb = w * backward_nm_mask(w, NM(2, 4))
    groups = backward_nm_mask(w, NM(2, 4)).movedim(0, -1).reshape(-1, 4)  # 4 consecutive outputs
    assert (groups.sum(-1) == 2).all()
    x = torch.randn(2, 4, 4, 4, requires_grad=True)
    out = conv(x)
    dy = torch.randn_like(out)
    out.backward(dy)
    expected = torch.nn.grad.conv2d_input(x.shape, wb, dy, stride=2, padding=1)
    torch.testing.assert_close(x.grad, expected)
    torch.testing.assert_close(
        conv.parametrizations.weight.original.grad,
        torch.nn.grad.conv2d_weight(x.detach(), w.shape, dy, stride=2, padding=1),
    )


def test_both_masks_follow_the_weights_and_save_with_the_model():
    model, opt, m = prepared("bdwp")

    def after(updated):
        for f in TARGETS:
            mask = model.get_submodule(f.rpartition(".")[0]).parametrizations.weight
            assert torch.equal(mask[0].mask, nm_mask(mask.original, NM(1, 4)))
            assert torch.equal(mask[0].backward_mask, backward_nm_mask(mask.original, NM(1, 4)))

    train(model, m, opt, batches(4), after_step=after)
    assert "0.parametrizations.weight.0.backward_mask" in model.state_dict()


def test_no_grad_forward_is_untouched():
    model, _opt, _m = prepared("bdwp")
    x = torch.randn(3, 12)
    with torch.no_grad():
        a = model(x)
    torch.testing.assert_close(model(x.requires_grad_()), a)


def test_defaults_and_bad_input():
    config = TRAINERS.get("bdwp")().config
    assert (config.pattern, config.sparsity, config.decay) == ("2:8", 0.75, 2e-4)
    with pytest.raises(ValueError, match="incompatible"):
        TRAINERS.get("bdwp")(pattern="block4x4")
    # Outputs 6: the backward pass cannot group 4 consecutive outputs.
    model = nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 2))
    with pytest.raises(ValueError, match=r"transposed.*not divisible"):
        TRAINERS.get("bdwp")(pattern="2:4").prepare(
            model, torch.optim.SGD(model.parameters(), lr=0.1), targets="0.weight"
        )
    assert attached(model) == {}
    model = nn.Sequential(nn.Bilinear(4, 4, 8), nn.Linear(8, 2))
    with pytest.raises(ValueError, match="incompatible"):
        TRAINERS.get("bdwp")(pattern="2:4").prepare(
            model, torch.optim.SGD(model.parameters(), lr=0.1), targets="0.weight"
        )
    with pytest.raises(RuntimeError, match="before prepare"):
        TRAINERS.get("bdwp")().step()


def test_bdwp_trains():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 12, generator=g)
    y = (x[:, :3].argmax(1)).long()
    model = net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    m = TRAINERS.get("bdwp")(pattern="2:4")
    m.prepare(model, opt)
    before = F.cross_entropy(model(x), y).item()
    for _ in range(30):
        F.cross_entropy(model(x), y).backward()
        opt.step()
        m.step()
        opt.zero_grad()
    assert F.cross_entropy(model(x), y).item() < before * 0.7


def test_in_place_activations_after_a_layer():
    model = nn.Sequential(
        nn.Linear(8, 8), nn.ReLU(inplace=True), nn.Linear(8, 8), nn.ReLU(inplace=True), nn.Linear(8, 2)
    )
    m = TRAINERS.get("bdwp")(pattern="2:4")
    m.prepare(model, torch.optim.SGD(model.parameters(), lr=0.1))
    x = torch.randn(4, 8, requires_grad=True)
    F.cross_entropy(model(x), torch.tensor([0, 1, 0, 1])).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
