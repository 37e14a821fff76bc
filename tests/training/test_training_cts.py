"""CTS: the Concrete relaxation, the reverse-KL objective and GradBalance by hand; the search leaves
the model alone, is exact and deterministic; bad input is refused."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import sparsetorch.training.cts as cts
from sparsetorch.masks import get_masks as attached
from sparsetorch.patterns import n_pruned
from sparsetorch.training import TRAINERS, fit
from tests.training.method_testutil import calibration
from tests.training.training_testutil import TARGETS, net

FAST = {"iterations": 20, "batch_size": 8}


def sgd(model):
    return torch.optim.SGD(model.parameters(), lr=0.1)


def run(*, model_seed=0, data=None, **overrides):
    model = net(model_seed)
    m = TRAINERS.get("cts")(**{"sparsity": 0.75, **FAST, **overrides})
    m.prepare(model, sgd(model), data=calibration() if data is None else data)
    return model, m


def test_registered_with_its_paper():
    cls = TRAINERS.get("cts")
    assert cls.paper == "cts" and cls.needs_labels is False
    config = cls().config
    assert (config.sparsity, config.distribution, config.objective) == (0.9, "global", "reverse-kl")
    assert config.temperature == pytest.approx(2 / 3) and (config.slack, config.smoothing) == (1.1, 0.01)


def test_concrete_gates_follow_the_binary_concrete_law():
    # P(z > 1/2) = P(logit(u) > -alpha) = sigmoid(alpha), at any temperature.
    alpha = torch.tensor([-2.0, 0.0, 1.5]).repeat(20000, 1)
    g = torch.Generator().manual_seed(0)
    z = cts.concrete_gates({"w": alpha}, temperature=2 / 3, generator=g)["w"]
    assert ((z > 0) & (z < 1)).all()
    torch.testing.assert_close((z > 0.5).float().mean(0), torch.sigmoid(alpha[0]), atol=0.01, rtol=0)
    # Same generator state, same sample; a lower temperature pushes the gates towards 0 and 1.
    again = cts.concrete_gates({"w": alpha}, temperature=2 / 3, generator=torch.Generator().manual_seed(0))[
        "w"
    ]
    assert torch.equal(z, again)
    cold = cts.concrete_gates({"w": alpha}, temperature=0.1, generator=torch.Generator().manual_seed(0))["w"]
    assert (cold - 0.5).abs().mean() > (z - 0.5).abs().mean()


def test_reverse_kl_by_hand_and_zero_for_identical_outputs():
    g = torch.Generator().manual_seed(1)
    sparse, dense = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)
    p, q = sparse.softmax(-1), dense.softmax(-1)
    reverse = (p * (p / q).log()).sum(-1).mean()
    forward = (q * (q / p).log()).sum(-1).mean()
    torch.testing.assert_close(cts.divergence(sparse, dense), reverse)
    torch.testing.assert_close(cts.divergence(sparse, dense, objective="kl"), forward)
    torch.testing.assert_close(  # the reference's call: F.kl_div(dense, sparse) with log targets
        cts.divergence(sparse, dense),
        F.kl_div(dense.log_softmax(-1), sparse.log_softmax(-1), reduction="batchmean", log_target=True),
    )
    assert reverse > 0 and not torch.isclose(reverse, forward)
    assert cts.divergence(dense, dense) == 0.0
    assert cts.divergence(dense, dense + 3.0) == pytest.approx(0.0, abs=1e-6)  # softmax ignores a shift
    with pytest.raises(ValueError, match="objective"):
        cts.divergence(sparse, dense, objective="js")


def test_grad_balance_matches_the_task_gradient_above_the_budget():
    g = torch.Generator().manual_seed(2)
    logits = {"a": torch.randn(6, 4, generator=g), "b": torch.randn(3, generator=g)}
    task = {f: torch.randn(a.shape, generator=g) for f, a in logits.items()}
    s = {f: torch.sigmoid(a) for f, a in logits.items()}
    expected = sum(float(p.sum()) for p in s.values())
    h = {f: 100 / (0.5 * expected) * p * (1 - p) for f, p in s.items()}

    def norm(d):
        return math.sqrt(sum(float(v.square().sum()) for v in d.values()))

    # Over budget (budget = half the expected count): lambda makes the penalty as large as the task.
    grads, lam = cts.grad_balance(task, logits, budget=0.5 * expected, lam=None, smoothing=0.01)
    assert lam == pytest.approx(norm(task) / norm(h), rel=1e-5)
    assert norm({f: lam * v for f, v in h.items()}) == pytest.approx(norm(task), rel=1e-5)
    for f in task:
        torch.testing.assert_close(grads[f], task[f] + lam * h[f])
    # The running lambda is an exponential average of the targets.
    _, lam2 = cts.grad_balance(task, logits, budget=0.5 * expected, lam=2 * lam, smoothing=0.25)
    assert lam2 == pytest.approx(0.75 * 2 * lam + 0.25 * lam, rel=1e-5)
    # Under budget the target is 0: the first step leaves the task gradient alone, later ones decay.
    grads, lam = cts.grad_balance(task, logits, budget=2 * expected, lam=None, smoothing=0.01)
    assert lam == 0.0 and all(torch.equal(grads[f], task[f]) for f in task)
    _, lam = cts.grad_balance(task, logits, budget=2 * expected, lam=1.0, smoothing=0.01)
    assert lam == pytest.approx(0.99)


def test_grad_balance_steers_the_expected_density_to_the_budget():
    # A task that always wants every gate on (gradient -1): alone it drives the density to 1;
    # with GradBalance the density stays near the budget.
    n, budget = 1000, 100.0
    runs = {}
    for balanced in (False, True):
        alpha = torch.full((n,), math.log(0.1 / 0.9), requires_grad=True)
        opt = torch.optim.Adam([alpha], lr=0.1)
        lam, densities = None, []
        for _ in range(300):
            task = {"w": -torch.ones(n)}
            grads, lam = cts.grad_balance(task, {"w": alpha.detach()}, budget=budget, lam=lam, smoothing=0.01)
            alpha.grad = grads["w"] if balanced else task["w"]
            opt.step()
            densities.append(float(torch.sigmoid(alpha.detach()).mean()))
        runs[balanced] = densities
    assert runs[False][-1] > 0.99
    assert max(runs[True]) > 0.1  # the task pushes it over the budget first ...
    assert abs(runs[True][-1] - budget / n) < 0.05  # ... and GradBalance brings it back


def test_exact_global_sparsity_and_the_search_history():
    _model, m = run(iterations=40)
    total = sum(mask.numel() for mask in m.masks.values())
    zeros = {f: int((~mask).sum()) for f, mask in m.masks.items()}
    assert set(zeros) == set(TARGETS) and sum(zeros.values()) == n_pruned(total, 0.75)
    assert m.sparsity == 0.75 and m.stats["updates"] == 0
    h = m.history
    assert all(len(v) == 40 for v in h.values())
    assert all(math.isfinite(v) and v >= 0 for k in h for v in h[k])
    assert 0 < min(h["expected_density"]) <= max(h["expected_density"]) < 1


def test_weights_with_no_effect_on_the_output_are_pruned_first():
    # Half of the inputs are always zero: their first-layer weights never change the output, so
    # their logits get no task gradient, only GradBalance's push towards the budget.
    g = torch.Generator().manual_seed(3)
    x = torch.randn(64, 12, generator=g)
    x[:, 6:] = 0
    model = net(0)
    m = TRAINERS.get("cts")(sparsity=0.5, iterations=200, batch_size=16)
    m.prepare(model, sgd(model), targets="0.weight", data=x)
    mask = m.masks["0.weight"]
    assert not mask[:, 6:].any() and mask[:, :6].all()
    assert max(m.history["lambda"]) > 0  # the density went over the budget and was pushed back


def test_search_leaves_the_model_and_rng_alone():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 3))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    m = TRAINERS.get("cts")(sparsity=0.5, **FAST)
    m.prepare(model, sgd(model), data=calibration())
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(model[1].running_mean, state["1.running_mean"]) and model.training
    kept = m.masks["0.weight"]
    original = model[0].parametrizations.weight.original
    assert torch.equal(original[kept], state["0.weight"][kept]) and (original[~kept] == 0).all()
    assert torch.equal(model[4].weight, state["4.weight"])


def test_same_seed_same_masks_other_seed_other_search():
    a, b = run()[1], run()[1]
    assert all(torch.equal(a.masks[f], b.masks[f]) for f in TARGETS) and a.history == b.history
    c = run(seed=1)[1]
    assert c.history["loss"] != a.history["loss"]  # other Concrete noise and batch order
    d = run(objective="kl")[1]
    assert d.history["loss"] != a.history["loss"] and d.sparsity == 0.75


def test_inputs_alone_suffice_and_fit_runs():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 12, generator=g), torch.randint(0, 3, (64,), generator=g)
    model = net()
    m = TRAINERS.get("cts")(sparsity=0.75, **FAST).calibrate(x[:32])
    metrics = fit(model, m, (x, y), epochs=1, batch_size=16, progress=False)
    assert metrics["sparsity"] == pytest.approx(0.75) and metrics["mask_updates"] == 0


def test_zero_sparsity_keeps_everything_without_a_search():
    _model, m = run(sparsity=0.0)
    assert all(mask.all() for mask in m.masks.values()) and m.history["loss"] == []


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("iterations", 0),
        ("iterations", 2.5),
        ("batch_size", True),
        ("lr", 0.0),
        ("temperature", -1.0),
        ("temperature", math.inf),
        ("slack", 0.9),
        ("smoothing", 0.0),
        ("smoothing", 1.5),
        ("decay_at", 0.0),
        ("objective", "mse"),
    ],
)
def test_bad_config_is_refused(option, value):
    with pytest.raises(ValueError, match=option):
        TRAINERS.get("cts")(**{option: value})


def test_bad_calibration_data_is_refused_and_the_model_unchanged():
    model = net()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="needs calibration data"):
        TRAINERS.get("cts")(**FAST).prepare(model, sgd(model))
    with pytest.raises(ValueError, match="no examples"):
        TRAINERS.get("cts")(**FAST).calibrate(torch.randn(0, 12))
    bad = torch.randn(8, 12)
    bad[3, 2] = math.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        TRAINERS.get("cts")(**FAST).prepare(model, sgd(model), data=bad)
    with pytest.raises(ValueError, match="do not fit the model"):
        TRAINERS.get("cts")(**FAST).prepare(model, sgd(model), data=torch.randn(8, 5))
    assert attached(model) == {}
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
