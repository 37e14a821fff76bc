"""The contract of every registered activation (`ACTIVATIONS`), generated from the registry.

Each entry must: keep exactly the asked density where it promises one (k-WTA and top-k keep exactly
k), give finite outputs and finite gradients, survive a `state_dict` round trip, and refuse a bad
configuration with a ValueError / TypeError that names the problem. A new entry needs a `Case`
below; `test_every_registered_activation_has_a_case` fails until it has one. The last test runs
each check on a deliberately broken module, so none of them passes vacuously.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from sparsetorch.activations import (
    ACTIVATIONS,
    BlockFFN,
    BlockFFNConfig,
    DeltaActivation,
    DeltaConfig,
    KWinners,
    KWinners2d,
    ThresholdActivation,
    TopK,
    kwinners,
)
from sparsetorch.papers import get_paper


@dataclass(frozen=True)
class Case:
    """How to build one entry, feed it, read its output, and misconfigure it.

    Args:
        make: a fresh module (random parameters are fine: the round trip copies them).
        shape: the input shape.
        output: the tensor to check from the module's return value.
        density: the exact fraction of nonzero outputs in training mode, or None if data-dependent.
        bad: (constructor that must fail, exception type, regex the message must match).
    """

    make: Callable[[], nn.Module]
    shape: tuple[int, ...]
    output: Callable[[Any], Tensor] = lambda out: out
    density: float | None = None
    bad: tuple[tuple[Callable[[], Any], type[Exception], str], ...] = field(default=())


CASES: dict[str, Case] = {
    "kwta": Case(
        make=lambda: KWinners(16, k=4),
        shape=(6, 16),
        density=4 / 16,
        bad=(
            (lambda: KWinners(16, k=17), ValueError, r"k must be in \[1, n\]"),
            (lambda: KWinners(16), ValueError, "exactly one of k"),
            (lambda: KWinners(16, k=4, boost_strength=-1.0), ValueError, "boost_strength"),
        ),
    ),
    "kwta-2d": Case(
        make=lambda: KWinners2d(4, k=2, local=True),
        shape=(2, 4, 3, 3),
        density=2 / 4,
        bad=(
            (lambda: KWinners2d(0, k=1), ValueError, "channels"),
            (lambda: KWinners2d(4, k=5, local=True), ValueError, r"k must be in \[1, n\]"),
        ),
    ),
    "topk": Case(
        make=lambda: TopK(3, relu=False),
        shape=(2, 5, 12),
        density=3 / 12,
        bad=((lambda: TopK(0), ValueError, "k must be"),),
    ),
    "chess": Case(
        make=lambda: ThresholdActivation(nn.GELU(), torch.full((12,), 0.1)),
        shape=(4, 12),
        bad=(
            (lambda: ThresholdActivation("gelu", torch.tensor(0.1)), TypeError, "act must be an nn.Module"),
            (lambda: ThresholdActivation(nn.GELU(), [0.1]), TypeError, "thresholds must be a tensor"),
            (lambda: ThresholdActivation(nn.GELU(), torch.tensor(float("nan"))), ValueError, "not be NaN"),
        ),
    ),
    "delta": Case(
        make=lambda: DeltaActivation(DeltaConfig(step=0.25, l1=0.1)),
        shape=(2, 5, 6),
        output=lambda out: out.value + out.penalty,
        bad=(
            (lambda: DeltaActivation(DeltaConfig(step=0.0)), ValueError, "step must be positive"),
            (lambda: DeltaActivation({"step": 0.25}), TypeError, "config must be a DeltaConfig"),
        ),
    ),
    "blockffn": Case(
        make=lambda: BlockFFN(8, BlockFFNConfig(num_experts=4, expert_hidden=8, chunk_size=2)),
        shape=(2, 4, 8),
        output=lambda out: out[0] + out[1].balance + out[1].chunk,
        bad=(
            (lambda: BlockFFN(0), ValueError, "dim must be a positive integer"),
            (lambda: BlockFFN(8, BlockFFNConfig(num_experts=0)), ValueError, "num_experts"),
            (lambda: BlockFFN(8, {"num_experts": 4}), TypeError, "config must be a BlockFFNConfig"),
        ),
    ),
}


def _input(case: Case, seed: int = 0, *, grad: bool = False) -> Tensor:
    x = torch.randn(case.shape, generator=torch.Generator().manual_seed(seed))
    return x.requires_grad_(grad)


# --- the checks, each a plain function so the last test can run it on a broken module -------------


def check_density(case: Case) -> None:
    module = case.make().train()
    y = case.output(module(_input(case)))
    assert (y != 0).float().mean().item() == pytest.approx(case.density, abs=1e-9)


def check_finite(case: Case) -> None:
    module = case.make().train()
    x = _input(case, grad=True)
    y = case.output(module(x))
    assert torch.isfinite(y).all(), "non-finite output"
    weights = torch.randn(y.shape, generator=torch.Generator().manual_seed(1))
    (y * weights).sum().backward()
    grads = [x.grad] + [p.grad for p in module.parameters() if p.grad is not None]
    assert all(torch.isfinite(g).all() for g in grads), "non-finite gradient"


def check_round_trip(case: Case) -> None:
    a, b = case.make().train(), case.make()
    for seed in range(3):  # training forwards move the state (duty cycles, boost)
        a(_input(case, seed))
    b.load_state_dict(a.state_dict())
    x = _input(case, seed=7)
    with torch.no_grad():
        assert torch.equal(case.output(a.eval()(x)), case.output(b.eval()(x)))


def check_bad_configs(case: Case) -> None:
    assert case.bad, "give at least one bad configuration"
    for make, error, message in case.bad:
        with pytest.raises(error, match=message):
            make()


# --- generated from the registry --------------------------------------------------------------------

NAMES = ACTIVATIONS.list()


def _case(name: str) -> Case:
    if name not in CASES:
        pytest.fail(f"activation {name!r} is registered but has no Case in this file")
    return CASES[name]


def test_every_registered_activation_has_a_case():
    assert set(NAMES) == set(CASES), "add a Case for each new activation (and drop removed ones)"


@pytest.mark.parametrize("name", [n for n in NAMES if n not in CASES or CASES[n].density is not None])
def test_exact_density(name):
    check_density(_case(name))


@pytest.mark.parametrize("name", NAMES)
def test_finite_outputs_and_gradients(name):
    check_finite(_case(name))


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip(name):
    check_round_trip(_case(name))


@pytest.mark.parametrize("name", NAMES)
def test_bad_configs_raise_clear_errors(name):
    check_bad_configs(_case(name))


@pytest.mark.parametrize("name", NAMES)
def test_paper_key_names_a_paper(name):
    paper = ACTIVATIONS.get(name).paper
    assert paper == "" or get_paper(paper).key == paper


# --- the checks can fail ----------------------------------------------------------------------------


class KeepsOneTooMany(nn.Module):
    def __init__(self, k: int = 3) -> None:
        super().__init__()
        self.k = k  # accepts any k: no validation

    def forward(self, x: Tensor) -> Tensor:
        return kwinners(x, self.k + 1)


class DividesByZero(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x / 0.0


class ForgetsItsState(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.rand(12)  # a plain attribute: not saved in state_dict

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale


@pytest.mark.parametrize(
    ("check", "case"),
    [
        (check_density, Case(make=KeepsOneTooMany, shape=(2, 12), density=3 / 12)),
        (check_finite, Case(make=DividesByZero, shape=(2, 12))),
        (check_round_trip, Case(make=ForgetsItsState, shape=(2, 12))),
        (
            check_bad_configs,
            Case(make=KeepsOneTooMany, shape=(2, 12), bad=((lambda: KeepsOneTooMany(-1), ValueError, "k"),)),
        ),
        (check_bad_configs, Case(make=TopK, shape=(2, 12), bad=((lambda: TopK(0), ValueError, "density"),))),
    ],
    ids=["density", "finite", "round-trip", "no-error", "vague-error"],
)
def test_each_check_fails_on_a_broken_entry(check, case):
    with pytest.raises((AssertionError, pytest.fail.Exception)):
        check(case)
