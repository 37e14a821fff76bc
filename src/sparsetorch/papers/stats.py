"""Verdicts over seeds: one `Result` per seed in, one `Result` whose checks carry intervals out.

The rule, for every check (claim or sanity) of a reproduction run at seeds s_1 .. s_n:

- the paired margin of seed i is d_i = measured_i - threshold_i (for ``>=`` and ``>``; the other
  way round for ``<=`` and ``<``), so both arms of a comparison come from the same seed;
- its mean is d̄ and its standard error SE = sd(d) / sqrt(n), with the sample standard deviation;
- the check passes when the interval d̄ ± 2·SE lies at or above 0, strictly for ``>`` and ``<``.

"Better than" claims are strict (``>``): equal arms, e.g. the baseline run twice, fail. "No worse"
claims are stated as ``>=`` against the baseline minus a stated margin, and the interval shows how
close they came. With 3 seeds, ±2·SE is roughly an 82% two-sided t interval (2 degrees of freedom),
a lenient rule that the report states beside every interval; with one seed (tiny scale, tests)
the check is the plain comparison of that run.

The aggregate's metrics are the means over seeds; each run's own numbers stay in the stored result
(`sparsetorch.papers.results`).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from sparsetorch.papers.base import Check, Result

__all__ = ["RULE", "aggregate", "interval"]

RULE = "mean paired margin ± 2 standard errors over seeds must clear 0"
Z = 2.0  # how many standard errors the interval spans on each side


def interval(margins: Sequence[float]) -> tuple[float, float]:
    """`mean ± Z·SE` of `margins` (at least two); NaN in, NaN out."""
    if len(margins) < 2:
        raise ValueError(f"an interval needs at least 2 runs, got {len(margins)}")
    mean = statistics.fmean(margins)
    if any(math.isnan(m) for m in margins):
        return (math.nan, math.nan)
    se = statistics.stdev(margins) / math.sqrt(len(margins))
    return (mean - Z * se, mean + Z * se)


def aggregate(results: Sequence[Result], *, seeds: Sequence[int]) -> Result:
    """Combine the `results` of one reproduction run at `seeds` (same order) into one `Result`.

    One result is returned as it is. Metrics present in every run are averaged.

    Raises:
        ValueError: no results, a seed count that differs from the results, repeated seeds, or
            runs whose checks differ in name, kind or op (not the same reproduction).
    """
    if not results:
        raise ValueError("no results to aggregate")
    if len(results) != len(seeds) or len(set(seeds)) != len(seeds):
        raise ValueError(f"{len(results)} results need as many distinct seeds, got {list(seeds)}")
    if len(results) == 1:
        return results[0]
    shape = [(c.name, c.kind, c.op) for c in results[0].checks]
    for seed, result in zip(seeds, results, strict=True):
        if [(c.name, c.kind, c.op) for c in result.checks] != shape:
            raise ValueError(f"the run at seed {seed} has other checks than the run at seed {seeds[0]}")
    checks = []
    for i, first in enumerate(results[0].checks):
        runs = [r.checks[i] for r in results]
        checks.append(
            Check(
                first.name,
                statistics.fmean(c.measured for c in runs),
                first.op,
                statistics.fmean(c.threshold for c in runs),
                kind=first.kind,
                paper=first.paper,
                interval=interval([c.margin for c in runs]),
                seeds=len(runs),
            )
        )
    shared = [k for k in results[0].metrics if all(k in r.metrics for r in results)]
    metrics = {k: statistics.fmean(r.metrics[k] for r in results) for k in shared}
    note = f"{results[0].note}; means over seeds {list(seeds)}, {RULE}"
    return Result(metrics=metrics, checks=tuple(checks), note=note)
