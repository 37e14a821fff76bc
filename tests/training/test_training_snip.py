"""SNIP: connection sensitivity |g * w| at initialization, against a closed form and a gate-gradient
implementation; the scoring leaves the model alone; calibration-data errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sparsetorch import allocation
from sparsetorch.masks import get_masks as attached
from sparsetorch.patterns import n_pruned
from sparsetorch.training import TRAINERS, fit, keep_top_among
from tests.training.method_testutil import calibration, prepared
from tests.training.training_testutil import TARGETS, net


def sgd(model):
    return torch.optim.SGD(model.parameters(), lr=0.1)


def test_snip_on_a_linear_softmax_classifier_by_hand():
    # logits = W x, mean cross-entropy: dL/dW = mean_i (softmax(W x_i) - e_y_i) x_i^T (closed form).
    model = nn.Sequential(nn.Linear(2, 3, bias=False))
    w = torch.tensor([[0.5, -1.0], [2.0, 0.25], [-0.75, 1.5]])
    with torch.no_grad():
        model[0].weight.copy_(w)
    x = torch.tensor([[1.0, 2.0], [-1.0, 0.5]])
    y = torch.tensor([0, 2])
    p = torch.softmax(x @ w.T, dim=1)
    grad = (p - F.one_hot(y, 3)).T @ x / 2
    scores = (grad * w).abs()
    m = TRAINERS.get("snip")(sparsity=0.5)
    m.prepare(model, sgd(model), targets="0.weight", data=(x, y))
    expected = keep_top_among(scores, 3)
    assert torch.equal(m.masks["0.weight"], expected)
    assert int(expected.sum()) == 3 and m.sparsity == 0.5


def test_snip_equals_the_gradient_of_a_multiplicative_gate():
    # The paper's definition: s_j = |dL/dc_j| at c = 1 for the gated weights c * w.
    model = net(3)
    x, y = calibration()
    weights = {f: model.get_parameter(f).detach().clone() for f in TARGETS}
    gates = {f: torch.ones_like(w, requires_grad=True) for f, w in weights.items()}
    params = {
        **{k: v.detach() for k, v in model.named_parameters()},
        **{f: gates[f] * weights[f] for f in TARGETS},
    }
    loss = F.cross_entropy(torch.func.functional_call(model, params, (x,)), y)
    grads = torch.autograd.grad(loss, [gates[f] for f in TARGETS])
    scores = {f: g.abs() for f, g in zip(TARGETS, grads, strict=True)}
    per_layer = allocation.global_budget(scores, 0.8)
    m = TRAINERS.get("snip")(sparsity=0.8)
    m.prepare(model, sgd(model), data=(x, y))
    for f in TARGETS:
        keep = weights[f].numel() - n_pruned(weights[f].numel(), per_layer[f])
        assert torch.equal(m.masks[f], keep_top_among(scores[f], keep))
    # One global threshold: the layers end at different sparsities.
    assert len({int((~mask).sum()) / mask.numel() for mask in m.masks.values()}) == 2


def test_snip_uniform_distribution_prunes_each_layer_alike():
    _model, _opt, m = prepared("snip", distribution="uniform")
    per_layer = allocation.uniform({f: tuple(k.shape) for f, k in m.masks.items()}, 0.75)
    for f, mask in m.masks.items():
        assert int((~mask).sum()) == n_pruned(mask.numel(), per_layer[f])


def test_scoring_leaves_the_model_and_rng_alone():
    model = nn.Sequential(nn.Linear(12, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 3))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    m = TRAINERS.get("snip")(sparsity=0.5)
    m.prepare(model, sgd(model), data=calibration())
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(model[1].running_mean, state["1.running_mean"])  # no batch-norm update
    kept = m.masks["0.weight"]
    original = model[0].parametrizations.weight.original
    assert torch.equal(original[kept], state["0.weight"][kept]) and (original[~kept] == 0).all()


def test_other_data_gives_other_masks():
    a = prepared("snip")[2].masks
    model = net()
    m = TRAINERS.get("snip")(sparsity=0.75)
    m.prepare(model, sgd(model), data=calibration(seed=5))
    assert any(not torch.equal(a[f], m.masks[f]) for f in TARGETS)


def test_calibrate_then_fit():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 12, generator=g), torch.randint(0, 3, (64,), generator=g)
    model = net()
    m = TRAINERS.get("snip")(sparsity=0.75).calibrate((x[:16], y[:16]))
    metrics = fit(model, m, (x, y), epochs=1, batch_size=16, progress=False)
    assert metrics["sparsity"] == pytest.approx(0.75) and metrics["mask_updates"] == 0


@pytest.mark.parametrize("name", ["snip", "grasp"])
def test_calibration_errors(name):
    model = net()
    m = TRAINERS.get(name)()
    with pytest.raises(ValueError, match="needs calibration data"):
        m.prepare(model, sgd(model))
    assert attached(model) == {}
    with pytest.raises(ValueError, match="needs labels"):
        m.prepare(model, sgd(model), data=torch.randn(4, 12))
    with pytest.raises(TypeError, match="calibration data must be"):
        m.calibrate([1, 2])
    with pytest.raises(ValueError, match="4 calibration inputs but 3 labels"):
        m.calibrate((torch.randn(4, 12), torch.zeros(3, dtype=torch.long)))
    with pytest.raises(ValueError, match="no examples"):
        m.calibrate((torch.randn(0, 12), torch.zeros(0, dtype=torch.long)))
    m.prepare(model, sgd(model), data=calibration())
    with pytest.raises(RuntimeError, match="after prepare"):
        m.calibrate(calibration())
    with pytest.raises(RuntimeError, match="already called"):
        m.prepare(model, sgd(model), data=calibration())


def test_pai_rejects_patterns_and_masked_targets():
    with pytest.raises(ValueError, match="incompatible"):
        model = net()
        TRAINERS.get("snip")(pattern="2:4", sparsity=0.5).prepare(model, sgd(model), data=calibration())
    model = net()
    TRAINERS.get("random-pruning")(sparsity=0.5).prepare(model, sgd(model))
    with pytest.raises(ValueError, match="already masked"):
        TRAINERS.get("snip")().prepare(model, sgd(model), data=calibration())
