"""Validation of config values: one place for "an integer >= m" and "a finite number in a range".

Booleans are refused as numbers (`True` is an `int` in Python, but `batch_size=True` is a mistake).
The messages name the field, so a config's `__post_init__` reads as a list of its constraints.
"""

from __future__ import annotations

import math

__all__ = ["check_int", "check_number"]


def check_int(label: str, value: object, *, minimum: int = 1, maximum: int | None = None) -> int:
    """`value` if it is an int (not a bool) in [minimum, maximum], else a ValueError naming `label`."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < minimum
        or (maximum is not None and value > maximum)
    ):
        bounds = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ValueError(f"{label} must be an integer {bounds}, got {value!r}")
    return value


def check_number(
    label: str,
    value: object,
    *,
    low: float | None = None,
    high: float | None = None,
    low_closed: bool = False,
    high_closed: bool = True,
) -> float:
    """`value` as a float if it is a finite real (not a bool) within the bounds, else a ValueError.

    `low` is excluded unless `low_closed`, `high` included unless `high_closed=False`; None means
    unbounded on that side. `check_number("lr", lr, low=0)` accepts exactly the positive numbers.
    """
    ok = not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)
    if ok and low is not None:
        ok = value >= low if low_closed else value > low
    if ok and high is not None:
        ok = value <= high if high_closed else value < high
    if not ok:
        left = "(-inf" if low is None else f"{'[' if low_closed else '('}{low:g}"
        right = "inf)" if high is None else f"{high:g}{']' if high_closed else ')'}"
        raise ValueError(f"{label} must be a finite number in {left}, {right}, got {value!r}")
    return float(value)
