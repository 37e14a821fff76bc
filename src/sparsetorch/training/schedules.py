"""Sparsity and drop-fraction schedules as pure functions of the optimizer step.

- `cubic`: Zhu & Gupta 2017 ("To prune, or not to prune"), the gradual-pruning schedule of GMP and
  GraNet: `s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (t1 - t0))**3` for `t0 <= t <= t1`, `s_i`
  before `t0` and `s_f` after `t1`.
- `cosine_decay`: RigL's drop-fraction anneal (`tf.train.cosine_decay`, Evci et al. 2020) and
  GraNet's regeneration-rate decay (`CosineDecay`, a cosine LR schedule with a floor):
  `a_t = m + (a_0 - m) * (1 + cos(pi * min(1, (t - t0) / (t1 - t0)))) / 2`.
- `resolve_step`: a schedule boundary given as an optimizer step (`int`) or as a fraction of
  training (`float`, as `torch.nn.utils.prune`'s `amount`), turned into a step.

Steps count optimizer steps (not micro-batches), from 0 before the first step.
"""

from __future__ import annotations

import math


def _check_steps(step: int, start: int, end: int, *, name: str) -> None:
    for label, value in (("step", step), ("start", start), ("end", end)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name}: {label} must be a non-negative integer step, got {value!r}")
    if end <= start:
        raise ValueError(f"{name}: end ({end}) must come after start ({start})")


def _check_fraction(value: float, label: str, *, name: str, upper: float = 1.0) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= upper:
        raise ValueError(f"{name}: {label} must be a number in [0, {upper:g}], got {value!r}")


def cubic(step: int, *, initial: float, final: float, start: int, end: int) -> float:
    """Zhu & Gupta's cubic sparsity schedule at optimizer step `step`.

    Args:
        step: the optimizer step (>= 0).
        initial: sparsity `s_i` until `start`.
        final: sparsity `s_f` from `end` on; `initial <= final < 1`.
        start: first step of the ramp `t0`.
        end: last step of the ramp `t1 > t0`.

    Returns:
        The target sparsity, non-decreasing in `step`.

    Raises:
        ValueError: sparsities outside [0, 1), `initial > final`, or steps out of order.
    """
    _check_steps(step, start, end, name="cubic")
    _check_fraction(initial, "initial", name="cubic")
    _check_fraction(final, "final", name="cubic")
    if final >= 1.0 or initial > final:
        raise ValueError(f"cubic: need 0 <= initial <= final < 1, got initial={initial}, final={final}")
    if step <= start:
        return float(initial)
    if step >= end:
        return float(final)
    progress = (step - start) / (end - start)
    return final + (initial - final) * (1.0 - progress) ** 3


def cosine_decay(step: int, *, initial: float, end: int, start: int = 0, minimum: float = 0.0) -> float:
    """A value decayed from `initial` to `minimum` on a half cosine between `start` and `end`.

    With `minimum=0` this is RigL's cosine drop-fraction anneal; GraNet decays its regeneration
    rate the same way with `minimum=0.005` over the whole training.

    Raises:
        ValueError: `initial` or `minimum` outside [0, 1], `minimum > initial`, or steps out of order.
    """
    _check_steps(step, start, end, name="cosine_decay")
    _check_fraction(initial, "initial", name="cosine_decay")
    _check_fraction(minimum, "minimum", name="cosine_decay")
    if minimum > initial:
        raise ValueError(f"cosine_decay: minimum ({minimum}) exceeds initial ({initial})")
    progress = min(1.0, max(0.0, (step - start) / (end - start)))
    return minimum + (initial - minimum) * 0.5 * (1.0 + math.cos(math.pi * progress))


def resolve_step(
    value: int | float | None, total_steps: int | None, *, name: str, label: str = "end"
) -> int | None:
    """A schedule boundary as an optimizer step.

    Args:
        value: an `int` is a step; a `float` in [0, 1] is a fraction of `total_steps` (rounded);
            `None` stays `None` (no boundary).
        total_steps: optimizer steps of the whole training, or None when unknown.
        name: the method, for error messages.
        label: the boundary's name, for error messages.

    Raises:
        ValueError: a fraction with unknown `total_steps`, or a boundary after the end of training.
    """
    if value is None:
        return None
    if total_steps is not None and (
        isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1
    ):
        raise ValueError(f"{name}: total_steps must be a positive integer, got {total_steps!r}")
    if isinstance(value, float):
        if total_steps is None:
            raise ValueError(
                f"{name}: {label}={value} is a fraction of training; pass prepare(..., total_steps=N) "
                f"or give {label} as an optimizer step (an int)"
            )
        return round(value * total_steps)
    if total_steps is not None and value > total_steps:
        raise ValueError(
            f"{name}: the schedule's {label} (step {value}) comes after the end of training "
            f"(total_steps={total_steps})"
        )
    return int(value)


def check_boundary(value: object, label: str, *, name: str, allow_none: bool = False) -> None:
    """Validate a config boundary: an int step >= 0, a float fraction in [0, 1] (or None if allowed).

    Raises:
        ValueError: anything else.
    """
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(
            f"{name}: {label} must be an int step or a float fraction of training, got {value!r}"
        )
    if isinstance(value, float) and not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}: {label}={value} as a fraction of training must be in [0, 1]")
    if isinstance(value, int) and value < 0:
        raise ValueError(f"{name}: {label}={value} as a step must be >= 0")
