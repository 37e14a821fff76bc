"""Verdicts over seeds (`sparsetorch.papers.stats`): means, the paired-margin interval, and the rule
that it must clear 0 (strictly for ``>`` and ``<``)."""

from __future__ import annotations

import math
import statistics

import pytest

from sparsetorch.papers import Result
from sparsetorch.papers.stats import RULE, Z, aggregate, interval


def _run(acc: float, base: float, loss: float = 0.2, *, extra: dict[str, float] | None = None) -> Result:
    return Result.from_comparisons(
        {"acc": acc, "base": base, "loss": loss, **(extra or {})},
        checks={
            "beats_base": ("acc", ">", "base"),
            "no_worse": ("acc", ">=", base - 0.01),
            "low_loss": ("loss", "<", 0.3),
        },
        sanity={"finite": ("loss", "<=", 1.0)},
        paper={"beats_base": "+2 points"},
        note="tiny: a test",
    )


def _by_hand(margins: list[float]) -> tuple[float, float]:
    mean = sum(margins) / len(margins)
    sd = math.sqrt(sum((m - mean) ** 2 for m in margins) / (len(margins) - 1))
    return mean - 2 * sd / math.sqrt(len(margins)), mean + 2 * sd / math.sqrt(len(margins))


def test_one_result_is_returned_unchanged() -> None:
    run = _run(0.9, 0.8)
    assert aggregate([run], seeds=[7]) is run
    assert all(c.interval is None and c.seeds == 1 for c in run.checks)


def test_three_seeds_mean_and_interval_by_hand() -> None:
    accs, bases, losses = [0.90, 0.93, 0.89], [0.85, 0.86, 0.87], [0.20, 0.25, 0.15]
    runs = [_run(a, b, loss) for a, b, loss in zip(accs, bases, losses, strict=True)]
    out = aggregate(runs, seeds=[0, 1, 2])

    assert out.metrics == pytest.approx(
        {"acc": statistics.fmean(accs), "base": statistics.fmean(bases), "loss": statistics.fmean(losses)}
    )
    assert [c.name for c in out.checks] == ["beats_base", "no_worse", "low_loss", "finite"]
    assert [c.kind for c in out.checks] == ["claim", "claim", "claim", "sanity"]
    assert all(c.seeds == 3 for c in out.checks)
    beats, no_worse, low_loss, finite = out.checks
    assert beats.paper == "+2 points" and no_worse.paper == ""

    # beats_base: d_i = acc_i - base_i = .05 .07 .02; mean .0467, sd .0252, SE .0145
    assert beats.measured == pytest.approx(statistics.fmean(accs))
    assert beats.threshold == pytest.approx(statistics.fmean(bases))
    assert beats.margin == pytest.approx(0.14 / 3)
    assert beats.interval == pytest.approx(_by_hand([0.05, 0.07, 0.02]))
    assert beats.interval[0] > 0 and beats.passed

    # low_loss (a "<" claim): d_i = 0.3 - loss_i
    assert low_loss.interval == pytest.approx(_by_hand([0.10, 0.05, 0.15]))
    assert low_loss.passed
    assert finite.interval == pytest.approx(_by_hand([0.80, 0.75, 0.85])) and finite.passed
    assert out.holds
    assert out.note == f"tiny: a test; means over seeds [0, 1, 2], {RULE}"


def test_interval_helper() -> None:
    assert Z == 2.0
    assert interval([0.05, 0.07, 0.02]) == pytest.approx(_by_hand([0.05, 0.07, 0.02]))
    assert interval([0.1, 0.1]) == (pytest.approx(0.1), pytest.approx(0.1))
    low, high = interval([0.1, math.nan, 0.2])
    assert math.isnan(low) and math.isnan(high)
    with pytest.raises(ValueError, match="at least 2 runs"):
        interval([0.1])


def test_equal_means_are_not_enough_when_the_margin_varies() -> None:
    # the mean margin is positive but its interval straddles 0: the claim does not hold
    runs = [_run(a, b) for a, b in [(0.90, 0.80), (0.80, 0.85), (0.86, 0.84)]]
    beats = aggregate(runs, seeds=[0, 1, 2]).checks[0]
    assert beats.margin > 0 and beats.interval[0] < 0 < beats.interval[1]
    assert not beats.passed


def test_identical_arms_fail_a_strict_claim_but_pass_an_inclusive_one() -> None:
    # the baseline run twice: the margin is exactly 0 on every seed, so the interval is (0, 0)
    def twice(acc: float) -> Result:
        return Result.from_comparisons(
            {"acc": acc, "base": acc},
            checks={"better": ("acc", ">", "base"), "as_good": ("acc", ">=", "base")},
        )

    out = aggregate([twice(a) for a in (0.81, 0.84, 0.79)], seeds=[0, 1, 2])
    better, as_good = out.checks
    assert better.interval == (0.0, 0.0) and as_good.interval == (0.0, 0.0)
    assert not better.passed and as_good.passed
    assert not out.holds


def test_no_worse_margin() -> None:
    # "no worse than the baseline, within 0.01": acc >= base - 0.01, margins .005 .008 .006
    runs = [_run(a, b) for a, b in [(0.895, 0.9), (0.898, 0.9), (0.896, 0.9)]]
    out = aggregate(runs, seeds=[0, 1, 2])
    beats, no_worse = out.checks[:2]
    assert no_worse.interval == pytest.approx(_by_hand([0.005, 0.008, 0.006]))
    assert no_worse.passed and not beats.passed  # no worse, yet not better
    assert out.claims[0].interval[1] < 0
    # a run falling further behind than the stated margin breaks it
    worse = [_run(a, b) for a, b in [(0.895, 0.9), (0.880, 0.9), (0.896, 0.9)]]
    assert not aggregate(worse, seeds=[0, 1, 2]).checks[1].passed


def _renamed(run: Result, **changes: str) -> Result:
    return Result.from_comparisons(
        run.metrics,
        checks={changes.get(c.name, c.name): (c.measured, c.op, c.threshold) for c in run.claims},
        sanity={c.name: (c.measured, c.op, c.threshold) for c in run.sanity},
    )


def test_runs_with_other_checks_raise_naming_the_seed() -> None:
    good = [_run(0.9, 0.8), _run(0.91, 0.8)]
    renamed = _renamed(_run(0.92, 0.8), beats_base="beats")
    with pytest.raises(ValueError, match="the run at seed 5 has other checks than the run at seed 3"):
        aggregate([*good, renamed], seeds=[3, 4, 5])

    # the same names, but a claim became a sanity check
    run = _run(0.92, 0.8)
    kinds = Result.from_comparisons(
        run.metrics,
        checks={c.name: (c.measured, c.op, c.threshold) for c in run.claims[1:]},
        sanity={c.name: (c.measured, c.op, c.threshold) for c in (run.claims[0], *run.sanity)},
    )
    with pytest.raises(ValueError, match="seed 4 has other checks"):
        aggregate([good[0], kinds, good[1]], seeds=[3, 4, 5])

    # a check missing
    fewer = Result.from_comparisons({"acc": 0.9}, checks={"beats_base": ("acc", ">", 0.8)})
    with pytest.raises(ValueError, match="seed 4 has other checks"):
        aggregate([good[0], fewer], seeds=[3, 4])


def test_repeated_seeds_or_a_count_mismatch_raise() -> None:
    runs = [_run(0.9, 0.8), _run(0.91, 0.8)]
    with pytest.raises(ValueError, match="distinct seeds"):
        aggregate(runs, seeds=[1, 1])
    with pytest.raises(ValueError, match="distinct seeds"):
        aggregate(runs, seeds=[0, 1, 2])
    with pytest.raises(ValueError, match="distinct seeds"):
        aggregate(runs, seeds=[0])
    with pytest.raises(ValueError, match="distinct seeds"):
        aggregate(runs[:1], seeds=[0, 1])
    with pytest.raises(ValueError, match="no results"):
        aggregate([], seeds=[])


def test_nan_in_one_run_fails_the_check() -> None:
    runs = [_run(0.9, 0.8), _run(math.nan, 0.8), _run(0.92, 0.8)]
    out = aggregate(runs, seeds=[0, 1, 2])
    beats, no_worse, low_loss, finite = out.checks
    for check in (beats, no_worse):
        assert math.isnan(check.measured) and all(math.isnan(v) for v in check.interval)
        assert not check.passed
    assert low_loss.passed and finite.passed  # the checks that did not read the NaN still pass
    assert not out.holds and math.isnan(out.metrics["acc"])


def test_metrics_missing_from_some_runs_are_dropped() -> None:
    runs = [
        _run(0.9, 0.8, extra={"speedup": 1.5, "everywhere": 1.0}),
        _run(0.91, 0.8, extra={"everywhere": 2.0}),
        _run(0.92, 0.8, extra={"speedup": 1.7, "everywhere": 3.0}),
    ]
    out = aggregate(runs, seeds=[0, 1, 2])
    assert set(out.metrics) == {"acc", "base", "loss", "everywhere"}
    assert out.metrics["everywhere"] == pytest.approx(2.0)
