"""Bad input: clear errors before anything is changed."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import sparsetorch.training as T
from sparsetorch.masks import get_masks as attached
from tests.training.training_testutil import TOTAL, method, net, prepared


def sgd(model):
    return torch.optim.SGD(model.parameters(), lr=0.1)


def test_step_and_finish_before_prepare():
    m = method("rigl")
    with pytest.raises(RuntimeError, match=r"step\(\) called before prepare"):
        m.step()
    with pytest.raises(RuntimeError, match="before prepare"):
        m.finish()
    with pytest.raises(RuntimeError, match="needs prepare"):
        m.load_state_dict({})


def test_prepare_twice():
    model, opt, m = prepared("set")
    with pytest.raises(RuntimeError, match="already called"):
        m.prepare(model, opt)


@pytest.mark.parametrize(
    ("name", "options", "total", "match"),
    [
        ("rigl", {"end": 100}, 50, "after the end of training"),
        ("gmp", {"start": 10, "end": 60}, 50, "after the end of training"),
        ("rigl", {}, None, "total_steps"),  # end=0.75 of an unknown training
        ("gmp", {}, None, "total_steps"),
        ("granet", {"end": 10}, None, "total_steps"),  # the regeneration decay spans training
        ("set", {"drop_fraction_anneal": "cosine"}, None, "needs an end"),
        ("set", {}, 0, "positive integer"),
        ("gmp", {"start": 0.8, "end": 50}, 100, "before it starts"),
    ],
)
def test_schedule_errors(name, options, total, match):
    model = net()
    with pytest.raises(ValueError, match=match):
        T.TRAINERS.get(name)(**options).prepare(model, sgd(model), total_steps=total)
    assert attached(model) == {}  # nothing attached


@pytest.mark.parametrize("name", ["rigl", "set", "gmp", "granet"])
def test_incompatible_pattern(name):
    model = net()
    with pytest.raises(ValueError, match="incompatible"):
        T.TRAINERS.get(name)(pattern="2:4", update_every=1, end=5).prepare(
            model, sgd(model), total_steps=TOTAL
        )


def test_random_pruning_pattern_errors():
    with pytest.raises(ValueError, match=r"sparsity=0\.5"):
        T.TRAINERS.get("random-pruning")(pattern="2:4", sparsity=0.9, distribution="uniform")
    with pytest.raises(ValueError, match="distribution='uniform'"):
        T.TRAINERS.get("random-pruning")(pattern="2:4", sparsity=0.5)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 2))  # 6 inputs: no groups of 4
    m = T.TRAINERS.get("random-pruning")(pattern="2:4", sparsity=0.5, distribution="uniform")
    with pytest.raises(ValueError, match="not divisible"):
        m.prepare(model, sgd(model))


def test_optimizer_must_cover_the_targets():
    model = net()
    head_only = torch.optim.SGD(model[4].parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"do not hold the target weights \['0.weight', '2.weight'\]"):
        method("set").prepare(model, head_only)
    partial = torch.optim.SGD(
        [{"params": [model[0].weight]}, {"params": [model[4].weight], "lr": 0.01}], lr=0.1
    )
    with pytest.raises(ValueError, match=r"\['2.weight'\]"):
        method("set").prepare(model, partial)
    assert attached(model) == {}
    method("set").prepare(model, partial, targets="0")  # a target set the optimizer covers


@pytest.mark.parametrize(
    ("name", "options", "error", "match"),
    [
        ("rigl", {"sparsity": 1.0}, ValueError, "sparsity"),
        ("rigl", {"drop_fraction": 0.0}, ValueError, "drop_fraction"),
        ("rigl", {"update_every": 0}, ValueError, "update_every"),
        ("rigl", {"distribution": "global"}, ValueError, "not supported"),
        ("rigl", {"distribution": "er"}, ValueError, "distribution"),
        ("rigl", {"drop_fraction_anneal": "linear"}, ValueError, "anneal"),
        ("rigl", {"pattern": "3:2"}, ValueError, "0 < n < m"),
        ("rigl", {"lr": 0.1}, TypeError, "unknown option"),
        ("rigl", {"start": 10, "end": 5}, ValueError, "after start"),
        ("rigl", {"end": 1.5}, ValueError, r"\[0, 1\]"),
        ("gmp", {"end": None}, ValueError, "needs an end"),
        ("gmp", {"initial_sparsity": 0.95}, ValueError, "initial_sparsity"),
        ("granet", {"regeneration_rate": 1.0}, ValueError, "regeneration_rate"),
        ("granet", {"regeneration_floor": 0.6}, ValueError, "exceeds"),
        ("granet", {"init_distribution": "global"}, ValueError, "init_distribution"),
    ],
)
def test_config_errors(name, options, error, match):
    with pytest.raises(error, match=match):
        T.TRAINERS.get(name)(**options)


def test_explicit_targets_that_match_nothing():
    model = net()
    with pytest.raises(ValueError, match="match no parameter"):
        method("set").prepare(model, sgd(model), targets="encoder.*")


def test_a_mask_update_that_misses_its_target_raises():
    class Broken(T.TRAINERS.get("set")):
        name = "broken-set"  # not registered

        def update_masks(self, step, weights, masks, grads):
            update = super().update_masks(step, weights, masks, grads)
            update.masks["0.weight"][0] = True  # one row fully dense: more weights than the target
            return update

    model = net()
    opt = sgd(model)
    m = Broken(sparsity=0.75, update_every=1)
    m.prepare(model, opt)
    torch.nn.functional.cross_entropy(model(torch.randn(4, 12)), torch.tensor([0, 1, 2, 0])).backward()
    opt.step()
    with pytest.raises(RuntimeError, match=r"after the mask update at step 1, 0.weight has \d+ zeros"):
        m.step()
