"""The training substrate `train_steps`: step order, callbacks, accumulation, seeding, clear errors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sparsetorch.training import fit
from sparsetorch.training.loop import (
    Loss,
    Microbatches,
    Step,
    check_finite,
    epoch_batches,
    random_batches,
    train_steps,
)
from tests.training.training_testutil import tiny_classification

N, D, C = 64, 5, 3


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    return tiny_classification(N, D, C)


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(D, 8), nn.ReLU(), nn.Linear(8, C))


def _loss(x: torch.Tensor, y: torch.Tensor):
    def loss_fn(model: nn.Module, index: torch.Tensor) -> Loss:
        out = model(x[index])
        task = F.cross_entropy(out, y[index])
        return Loss(task, out, {"task": task.detach()})

    return loss_fn


def test_callbacks_see_each_step_and_each_evaluation_in_order():
    x, y = _data()
    model = _net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    seen, evals, grads = [], [], []

    def on_step(step: Step) -> dict[str, float]:
        assert step.model is model and step.optimizer is opt and step.steps == 5
        assert all(p.grad is not None for p in model.parameters())  # gradients still there
        assert step.output.shape == (16, C) and step.parts["task"] == pytest.approx(step.loss)
        seen.append(step.index)
        return {"double": 2 * step.loss}

    def on_eval(done: int, m: nn.Module) -> dict[str, float]:
        assert m is model and not m.training and not torch.is_grad_enabled()
        evals.append(done)
        return {"acc": 0.5}

    model.train()
    log = train_steps(
        model,
        opt,
        epoch_batches(N, 16, torch.Generator().manual_seed(0)),
        _loss(x, y),
        steps=5,
        on_grads=lambda m: grads.append(len(seen)),
        on_step=on_step,
        on_eval=on_eval,
        eval_at=[0, 2, 5],
    )
    assert seen == [0, 1, 2, 3, 4] and grads == [0, 1, 2, 3, 4] and evals == [0, 2, 5]
    assert model.training  # the mode is restored after each evaluation
    assert [r["step"] for r in log.steps] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert all(r["double"] == pytest.approx(2 * r["loss"]) for r in log.steps)
    assert [r["step"] for r in log.evals] == [0.0, 2.0, 5.0] and log.evals[0]["acc"] == 0.5
    assert all(p.grad is None for p in model.parameters())  # cleared at the end


def test_on_grads_runs_between_backward_and_the_optimizer_step():
    x, y = _data()
    model = _net()
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def zero(m: nn.Module) -> None:
        for p in m.parameters():
            p.grad.zero_()

    train_steps(model, opt, random_batches(N, 8, torch.Generator()), _loss(x, y), steps=3, on_grads=zero)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_lr_at_and_grad_clip():
    x, y = _data()
    model = _net()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    lrs = []
    train_steps(
        model,
        opt,
        random_batches(N, 8, torch.Generator()),
        _loss(x, y),
        steps=3,
        lr_at=lambda i: 0.1 * (i + 1),
        grad_clip=1e-3,
        on_step=lambda s: lrs.append(s.optimizer.param_groups[0]["lr"]),
    )
    assert lrs == pytest.approx([0.1, 0.2, 0.3])


def test_microbatches_accumulate_to_the_full_batch_step():
    x, y = _data()
    index = torch.arange(32)

    def summed(model: nn.Module, idx: torch.Tensor) -> Loss:  # mean over the whole step
        return Loss(F.cross_entropy(model(x[idx]), y[idx], reduction="sum") / 32)

    one, two = _net(), _net()
    for model, batch in ((one, index), (two, Microbatches(index.split(8)))):
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        log = train_steps(model, opt, [batch], summed, steps=1)
        assert math.isfinite(log.steps[0]["loss"])
    for a, b in zip(one.parameters(), two.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_seed_makes_runs_repeatable_and_restores_the_global_rng():
    x, y = _data()
    finals = []
    for _ in range(2):
        model = _net()
        model[1] = nn.Dropout(0.5)  # the global RNG draws the dropout masks
        state = torch.get_rng_state()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        train_steps(
            model, opt, epoch_batches(N, 16, torch.Generator().manual_seed(1)), _loss(x, y), steps=4, seed=3
        )
        assert torch.equal(state, torch.get_rng_state())
        finals.append([p.detach().clone() for p in model.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*finals, strict=True))


def test_epoch_batches_cover_each_epoch_once():
    gen = torch.Generator().manual_seed(0)
    it = epoch_batches(10, 4, gen)
    first = [next(it) for _ in range(3)]
    assert [len(b) for b in first] == [4, 4, 2]
    assert sorted(torch.cat(first).tolist()) == list(range(10))
    groups = epoch_batches(10, 4, torch.Generator(), accumulate=2)
    assert [len(g) for g in (next(groups), next(groups))] == [2, 1]
    assert next(random_batches(5, 7, torch.Generator())).shape == (7,)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"on_step": 3}, TypeError, "on_step must be a callable"),
        ({"on_eval": [print, "x"]}, TypeError, "on_eval must be a callable"),
        ({"eval_at": [7]}, ValueError, r"eval_at must hold step counts in \[0, 2\]"),
        ({"eval_at": [1]}, ValueError, "eval_at needs an on_eval callback"),
        ({"steps": -1}, ValueError, "steps must be a non-negative integer"),
        ({"grad_clip": 0.0}, ValueError, "grad_clip must be positive"),
        ({"on_step": lambda s: 1.0}, TypeError, "on_step must return a mapping"),
    ],
)
def test_bad_configuration_is_refused_clearly(kwargs, error, match):
    x, y = _data()
    model = _net()
    options = {"steps": 2, **kwargs}
    with pytest.raises(error, match=match):
        train_steps(model, torch.optim.SGD(model.parameters(), lr=0.1), random_batches(N, 4, torch.Generator()),
                    _loss(x, y), **options)  # fmt: skip


def test_a_loss_fn_must_return_a_loss():
    model = _net()
    with pytest.raises(TypeError, match=r"loss_fn must return a Loss"):
        train_steps(
            model, torch.optim.SGD(model.parameters(), lr=0.1), [0], lambda m, b: torch.zeros(()), steps=1
        )


def test_check_finite_stops_a_diverged_run():
    model = _net()

    def nan_loss(m: nn.Module, b: object) -> Loss:
        return Loss(m(torch.zeros(1, D)).sum() * float("nan"))

    with pytest.raises(RuntimeError, match="diverged at step 1"):
        train_steps(
            model, torch.optim.SGD(model.parameters(), lr=0.1), [0], nan_loss, steps=1, on_step=check_finite
        )


def test_fit_passes_its_callbacks_to_the_substrate():
    x, y = _data()
    steps, evals = [], []
    fit(
        _net(),
        None,
        (x, y),
        epochs=2,
        batch_size=16,
        progress=False,
        on_step=lambda s: steps.append(s.index),
        on_eval=lambda done, m: evals.append(done),
        eval_at=[4, 8],
    )
    assert steps == list(range(8)) and evals == [4, 8]
