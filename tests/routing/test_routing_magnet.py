"""The entropy-triggered router schedule: temperature, balance and entropy knobs, the trigger."""

from __future__ import annotations

import math

import pytest
import torch

from sparsetorch.routing import MoE
from sparsetorch.routing.magnet import EntropyTriggeredSchedule, MagnetConfig, RouterPhase, utilization

D, E = 8, 4


def _x(seed: int = 0) -> torch.Tensor:
    return torch.randn(32, D, generator=torch.Generator().manual_seed(seed))


def test_utilization_entropy():
    assert utilization(torch.tensor([5, 5, 5, 5])) == pytest.approx(1.0)
    assert utilization(torch.tensor([20, 0, 0, 0])) == pytest.approx(0.0)


def test_temperature_scales_the_logits_and_balance_coef_is_set():
    moe = MoE(D, E, 2, seed=0)
    x = _x()
    logits = moe.gate.logits(x)
    cfg = MagnetConfig(coverage=RouterPhase(2.0, 0.5, -0.1), specialization=RouterPhase(1.0, 0.0, 0.1))
    schedule = EntropyTriggeredSchedule(E, cfg).attach(moe)
    assert moe.balance_coef == 0.5
    _, aux = moe(x)
    expected = torch.softmax(logits / 2.0, -1)
    h = -(expected * expected.log()).sum(-1).mean()
    torch.testing.assert_close(aux["entropy"], h)
    torch.testing.assert_close(schedule.extra_loss(aux), -0.1 * h)
    schedule.detach()
    _, aux = moe(x)
    assert not torch.allclose(aux["entropy"], h)


def test_trigger_fires_after_patience_and_switches_knobs():
    moe = MoE(D, E, 2, seed=0)
    cfg = MagnetConfig(trigger=0.9, patience=3, ema=0.0)
    schedule = EntropyTriggeredSchedule(E, cfg).attach(moe)
    balanced = {"load": torch.tensor([4, 4, 4, 4]), "entropy": torch.tensor(1.0)}
    skewed = {"load": torch.tensor([16, 0, 0, 0]), "entropy": torch.tensor(0.1)}
    for _ in range(5):
        schedule.step(skewed)
    assert schedule.phase == "coverage"
    schedule.step(balanced)
    schedule.step(balanced)
    assert schedule.phase == "coverage"
    schedule.step(balanced)
    assert schedule.phase == "specialization" and schedule.switched_at == 8
    assert moe.balance_coef == cfg.specialization.balance_coef
    assert [row["phase"] for row in schedule.history] == [0.0] * 8
    row = schedule.step({"layer": balanced})  # a {layer: aux} dict works too
    assert row["phase"] == 1.0 and row["confidence"] == pytest.approx(1 - 1.0 / math.log(E))


def test_max_coverage_steps_forces_the_switch():
    schedule = EntropyTriggeredSchedule(E, MagnetConfig(max_coverage_steps=2))
    skewed = {"load": torch.tensor([16, 0, 0, 0])}
    schedule.step(skewed)
    assert schedule.phase == "coverage"
    schedule.step(skewed)
    assert schedule.phase == "specialization" and schedule.switched_at == 2


def test_training_with_the_schedule_runs_and_gradients_flow():
    moe = MoE(D, E, 2, seed=0)
    schedule = EntropyTriggeredSchedule(E, MagnetConfig(patience=1, trigger=0.5)).attach(moe)
    opt = torch.optim.SGD(moe.parameters(), lr=0.1)
    for step in range(4):
        y, aux = moe(_x(step))
        loss = y.square().mean() + aux["loss"] + schedule.extra_loss(aux)
        opt.zero_grad()
        loss.backward()
        assert moe.gate.weight.grad is not None
        opt.step()
        schedule.step(aux)
    assert len(schedule.history) == 4 and schedule.phase == "specialization"


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: RouterPhase(0.0, 0.0, 0.0), "temperature"),
        (lambda: RouterPhase(1.0, -1.0, 0.0), "balance_coef"),
        (lambda: MagnetConfig(trigger=1.5), "trigger"),
        (lambda: MagnetConfig(ema=1.0), "ema"),
        (lambda: EntropyTriggeredSchedule(E).attach(torch.nn.Linear(2, 2)), "no MoE"),
        (lambda: EntropyTriggeredSchedule(3).attach(MoE(D, E, 2)), "experts"),
        (lambda: EntropyTriggeredSchedule(E).step({"x": 1}), "aux"),
    ],
)
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()
