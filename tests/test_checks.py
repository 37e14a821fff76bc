"""The shared config validators: booleans are not numbers, bounds open or closed as asked."""

from __future__ import annotations

import math

import pytest
import torch

from sparsetorch._checks import check_int, check_number


def test_check_int_bounds_and_types():
    assert check_int("n", 3) == 3
    assert check_int("n", 0, minimum=0) == 0
    assert check_int("n", 5, maximum=5) == 5
    for bad in (0, True, 2.0, "3", None):
        with pytest.raises(ValueError, match=r"n must be an integer >= 1"):
            check_int("n", bad)
    with pytest.raises(ValueError, match=r"in \[1, 4\], got 5"):
        check_int("n", 5, maximum=4)


def test_check_number_open_and_closed_bounds():
    assert check_number("lr", 1) == 1.0 and isinstance(check_number("lr", 1), float)
    assert check_number("p", 0.0, low=0, low_closed=True) == 0.0
    assert check_number("p", 1.0, low=0, high=1) == 1.0
    for bad in (0.0, -1.0, math.nan, math.inf, True, "0.1"):
        with pytest.raises(ValueError, match=r"lr must be a finite number in \(0, inf\)"):
            check_number("lr", bad, low=0)
    with pytest.raises(ValueError, match=r"in \(0, 1\), got 1.0"):
        check_number("d", 1.0, low=0, high=1, high_closed=False)
    with pytest.raises(ValueError, match=r"in \[1, inf\), got 0.5"):
        check_number("run", 0.5, low=1, low_closed=True)


def test_build_checked_treats_only_a_meta_device_refusal_as_cannot_build_on_meta():
    # Review item 8: any exception (a plain bug included) read as "does not build on meta".
    from sparsetorch._checks import build_checked

    def pretrained(name, **config):
        if torch.empty(0).is_meta:
            raise RuntimeError("from_pretrained with a meta device context manager")
        return torch.nn.Linear(2, 2)

    with pytest.raises(ValueError, match="does not build on the meta device: from_pretrained with a meta"):
        build_checked(pretrained, "m", '{"x": 1}', shapes={}, where="f")
    shapes = {"weight": (2, 2), "bias": (2,)}
    assert isinstance(build_checked(pretrained, "m", "{}", shapes=shapes, where="f"), torch.nn.Linear)

    def buggy(name, **config):
        raise TypeError("a bug in the factory")

    with pytest.raises(TypeError, match="a bug in the factory"):
        build_checked(buggy, "m", "{}", shapes=shapes, where="f")
