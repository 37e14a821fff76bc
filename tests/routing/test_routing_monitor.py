"""Routing monitors: dead experts, entropy, fluctuation between checkpoints, load histogram."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from sparsetorch.routing import (
    MoE,
    RoutingMonitor,
    capture_routing,
    dead_experts,
    load_entropy,
    load_histogram,
    routing_fluctuation,
)


def test_histogram_dead_experts_and_load_entropy():
    idx = torch.tensor([[0, 1], [0, -1], [1, 0], [3, 0]])
    load = load_histogram(idx, 5)
    assert load.tolist() == [4, 2, 0, 1, 0]
    assert dead_experts(load).tolist() == [False, False, True, False, True]
    assert dead_experts(load, threshold=0.15).tolist() == [False, False, True, True, True]  # 1/7 <= 0.15
    assert load_entropy(torch.full((8,), 3)).item() == pytest.approx(math.log(8))
    assert load_entropy(torch.tensor([5, 0, 0])).item() == 0.0
    with pytest.raises(ValueError, match="threshold"):
        dead_experts(load, threshold=1.0)


def test_routing_fluctuation_compares_expert_sets():
    before = torch.tensor([[0, 1], [2, 3], [1, 0], [0, 2]])
    after = torch.tensor([[1, 0], [2, 3], [1, 2], [2, 0]])
    assert routing_fluctuation(before, after).item() == pytest.approx(0.25)  # only token 2's set changed
    assert routing_fluctuation(before, after, top1=True).item() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="same"):
        routing_fluctuation(before, after[:3])


def test_capture_routing_between_two_checkpoints():
    model = torch.nn.Sequential()
    model.add_module("moe0", _Wrap(MoE(8, 4, 2, seed=0)))
    model.add_module("moe1", _Wrap(MoE(8, 4, 2, seed=1)))
    x = torch.randn(3, 10, 8, generator=torch.Generator().manual_seed(0))
    before = capture_routing(model, x)
    assert set(before) == {"moe0.moe.gate", "moe1.moe.gate"}
    assert before["moe0.moe.gate"].shape == (30, 2)
    same = capture_routing(copy.deepcopy(model), x)
    assert all(routing_fluctuation(before[n], same[n]).item() == 0.0 for n in before)
    with torch.no_grad():
        model.moe0.moe.gate.weight.add_(torch.randn(4, 8, generator=torch.Generator().manual_seed(1)))
    after = capture_routing(model, x)
    assert routing_fluctuation(before["moe0.moe.gate"], after["moe0.moe.gate"]).item() > 0
    assert not any(m._forward_hooks for m in model.modules())  # hooks removed


class _Wrap(torch.nn.Module):
    def __init__(self, moe: MoE) -> None:
        super().__init__()
        self.moe = moe

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.moe(x)[0]


def test_monitor_accumulates_aux_per_layer():
    moe = MoE(8, 4, 2, capacity_factor=0.5, seed=0)
    mon = RoutingMonitor(4)
    total = torch.zeros(4, dtype=torch.long)
    dropped = 0
    for step in range(3):
        _, aux = moe(torch.randn(16, 8, generator=torch.Generator().manual_seed(step)))
        mon.update(aux, layer="blocks.0.moe")
        total += aux["load"]
        dropped += aux["dropped_slots"].item()
    assert torch.equal(mon.histogram("blocks.0.moe"), total)
    row = mon.summary()["blocks.0.moe"]
    assert row["steps"] == 3
    assert row["dead_experts"] == float((total == 0).sum())
    assert row["max_load_ratio"] == pytest.approx(total.max().item() * 4 / total.sum().item())
    assert row["dropped_fraction"] == pytest.approx(dropped / total.sum().item())
    assert 0 < row["router_entropy"] <= math.log(4)
    text = mon.format()
    assert "blocks.0.moe" in text and "e3" in text
    mon.reset()
    assert mon.summary() == {}
    with pytest.raises(KeyError, match="no routing recorded"):
        mon.histogram("blocks.0.moe")
    with pytest.raises(ValueError, match=r"\(3,\)"):
        RoutingMonitor(3).update(aux)
