"""Top-k activation: exact k per token, ties, ReLU variant, gradients only through kept entries."""

from __future__ import annotations

import pytest
import torch

from sparsetorch.activations.kwta import kwinners
from sparsetorch.activations.topk import TopK, topk_activation


def test_keeps_exactly_k_largest_per_token():
    x = torch.randn(2, 5, 32, generator=torch.Generator().manual_seed(0))
    y = TopK(4, relu=False)(x)
    assert ((y != 0).sum(-1) == 4).all()
    kept_min = torch.where(y != 0, x, torch.inf).amin(-1)
    dropped_max = torch.where(y == 0, x, -torch.inf).amax(-1)
    assert (kept_min > dropped_max).all()
    torch.testing.assert_close(y[y != 0], x[y != 0], rtol=0, atol=0)  # kept values are unchanged


def test_relu_variant_equals_topk_of_relu():
    x = torch.tensor([[3.0, -1.0, 0.5, -2.0, 2.0]])
    assert TopK(4)(x).tolist() == [[3.0, 0.0, 0.5, 0.0, 2.0]]  # the 4th largest (-1) is not positive
    xr = torch.randn(6, 20, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(TopK(5)(xr), TopK(5, relu=False)(torch.relu(xr)) * (xr > 0))


def test_ties_go_to_lowest_index():
    x = torch.tensor([[1.0, 2.0, 2.0, 2.0, 1.0]])
    assert kwinners(x, 2).tolist() == [[0.0, 2.0, 2.0, 0.0, 0.0]]


def test_topk_activation_is_a_deprecated_alias_of_kwinners():
    x = torch.randn(4, 9, generator=torch.Generator().manual_seed(4))
    with pytest.warns(DeprecationWarning, match="kwinners"):
        old = topk_activation(x, 3, relu=True)
    assert torch.equal(old, kwinners(x, 3, relu=True))


def test_gradient_flows_only_through_kept_entries():
    x = torch.randn(3, 16, generator=torch.Generator().manual_seed(2), requires_grad=True)
    w = torch.randn(3, 16, generator=torch.Generator().manual_seed(3))
    y = TopK(5)(x)
    (y * w).sum().backward()
    kept = y.detach() != 0
    torch.testing.assert_close(x.grad, torch.where(kept, w, 0.0))
    assert int(kept.sum()) <= 15 and (x.grad[~kept] == 0).all()


def test_other_dim_and_bad_k():
    x = torch.randn(2, 6, 4)
    assert ((TopK(2, dim=1, relu=False)(x) != 0).sum(1) == 2).all()
    with pytest.raises(ValueError, match=r"\[1, 4\]"):
        TopK(5)(x)
    with pytest.raises(ValueError, match="k must be"):
        TopK(0)
