"""Schedules by hand: Zhu & Gupta's cubic, RigL's / GraNet's cosine decay, step resolution."""

from __future__ import annotations

import math

import pytest

from sparsetorch.training.schedules import check_boundary, cosine_decay, cubic, resolve_step


def test_cubic_by_hand():
    kw = {"initial": 0.0, "final": 0.9, "start": 0, "end": 10}
    assert cubic(0, **kw) == 0.0
    assert cubic(5, **kw) == pytest.approx(0.9 - 0.9 * 0.5**3)  # 0.7875
    assert cubic(1, **kw) == pytest.approx(0.9 - 0.9 * 0.9**3)
    assert cubic(10, **kw) == cubic(99, **kw) == 0.9
    assert cubic(3, initial=0.5, final=0.9, start=5, end=15) == 0.5  # before start: initial
    assert cubic(10, initial=0.5, final=0.9, start=5, end=15) == pytest.approx(0.9 - 0.4 * 0.125)
    values = [cubic(t, **kw) for t in range(12)]
    assert values == sorted(values)


def test_cosine_decay_by_hand():
    assert cosine_decay(0, initial=0.3, end=100) == pytest.approx(0.3)
    assert cosine_decay(50, initial=0.3, end=100) == pytest.approx(0.15)
    assert cosine_decay(25, initial=0.3, end=100) == pytest.approx(0.15 * (1 + math.cos(math.pi / 4)))
    assert cosine_decay(100, initial=0.3, end=100) == pytest.approx(0.0)
    assert cosine_decay(500, initial=0.3, end=100) == pytest.approx(0.0)
    assert cosine_decay(50, initial=0.5, end=100, minimum=0.005) == pytest.approx(0.005 + 0.495 / 2)
    assert cosine_decay(10, initial=0.3, start=20, end=120) == pytest.approx(0.3)


@pytest.mark.parametrize(
    ("fn", "kw", "match"),
    [
        (cubic, {"step": 1, "initial": 0.0, "final": 0.9, "start": 10, "end": 10}, "after start"),
        (cubic, {"step": -1, "initial": 0.0, "final": 0.9, "start": 0, "end": 10}, "non-negative"),
        (cubic, {"step": 1, "initial": 0.9, "final": 0.5, "start": 0, "end": 10}, "initial <= final"),
        (cubic, {"step": 1, "initial": 0.0, "final": 1.0, "start": 0, "end": 10}, "final < 1"),
        (cubic, {"step": True, "initial": 0.0, "final": 0.5, "start": 0, "end": 10}, "integer"),
        (cosine_decay, {"step": 1, "initial": 0.3, "end": 0}, "after start"),
        (cosine_decay, {"step": 1, "initial": 0.3, "end": 10, "minimum": 0.5}, "exceeds"),
        (cosine_decay, {"step": 1, "initial": 1.5, "end": 10}, "initial"),
    ],
)
def test_schedules_validate(fn, kw, match):
    with pytest.raises(ValueError, match=match):
        fn(**kw)


def test_resolve_step():
    assert resolve_step(0.75, 100, name="m") == 75
    assert resolve_step(30, 100, name="m") == 30
    assert resolve_step(30, None, name="m") == 30
    assert resolve_step(None, None, name="m") is None
    with pytest.raises(ValueError, match="after the end of training"):
        resolve_step(200, 100, name="m")
    with pytest.raises(ValueError, match="total_steps=N"):
        resolve_step(0.5, None, name="m")
    with pytest.raises(ValueError, match="positive integer"):
        resolve_step(0.5, 0, name="m")


@pytest.mark.parametrize("value", [1.5, -1, "end", True])
def test_check_boundary_rejects(value):
    with pytest.raises(ValueError):
        check_boundary(value, "end", name="m")
