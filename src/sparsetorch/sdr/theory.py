"""Exact error probabilities of dendritic pattern detection on SDRs (Ahmad & Hawkins 2016).

Paper `sdr-dendrites`: "How do neurons operate on sparse distributed representations? A
mathematical theory of sparsity, neurons and active dendrites". Notation: n cells, a of them active
in a random pattern A; a dendritic segment D has s synapses and spikes when D . A >= theta.

- False match (Eq. 4): the overlap b of a random a-of-n pattern with s fixed synapses is
  hypergeometric, |Omega(n, a, b)| = C(s, b) C(n - s, a - b), so
  P(match) = sum_{b=theta}^{s} C(s, b) C(n - s, a - b) / C(n, a).
- False negative (Eq. 5/6): the segment subsamples s bits of a stored pattern of a bits; noise moves
  v of the a bits elsewhere. The segment fails when at least s - theta + 1 of its synapses are among
  the v removed bits: P(FN) = sum_{b=s-theta+1}^{min(s, v)} C(s, b) C(a - s, v - b) / C(a, v).
  It does not depend on n.
- Many segments (Eq. 8): P(match any of M) = 1 - (1 - P(match))^M; Eq. 9 bounds it by M P(match).
- Unions (Eq. 11, 13): after M random sets of s bits each, a bit is still 0 with probability
  p0 = (1 - s/n)^M, so E|X| = n (1 - p0). The paper substitutes round(E|X|) for s in Eq. 4; the
  exact alternative averages Eq. 4 over the exact distribution of |X|.

Arithmetic: ``method="exact"`` sums the hypergeometric weights as Python integers and divides once,
so every probability is the correctly rounded float of the exact rational (accurate at 1e-30 and far
below, down to float64's 1e-308). The integers have about min(a, s) log10(n) digits because the
distribution is symmetric in a and s, so n = 10^6 is fast. ``method="log"`` sums lgamma terms with
logsumexp instead: the first weight as a sum of log1p terms, the others by the
same ratio recurrence, so its relative error stays near 1e-13 even at n = 10^6. Over M segments the
result is -expm1(M log1p(-p)), which stays accurate where the naive 1 - (1 - p)^M cancels.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from sparsetorch.sdr.sdr import check_count

__all__ = [
    "Method",
    "ThresholdAnalysis",
    "false_match_probability",
    "false_negative_probability",
    "median_false_match",
    "optimal_threshold",
    "segments_false_match_probability",
    "threshold_analysis",
    "union_expected_active",
    "union_false_match_probability",
]

Method = Literal["exact", "log"]
UnionSize = Literal["expected", "exact"]


# -- the hypergeometric upper tail, exact or in log space --------------------------------------


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def _upper_tails(population: int, successes: int, draws: int, method: Method) -> list[float]:
    """P(X >= t) for t = 0 .. min(successes, draws), X ~ Hypergeometric(population, successes, draws).

    X counts the successes among `draws` items drawn without replacement. The law is symmetric in
    `successes` and `draws`, so the smaller one plays the role of `draws`: every integer below has at
    most about draws * log10(population) digits.
    """
    if method not in ("exact", "log"):
        raise ValueError(f"method must be 'exact' or 'log', got {method!r}")
    big, small = max(successes, draws), min(successes, draws)
    rest = population - big
    lo = max(0, small - rest)  # below lo the weights are 0
    if method == "exact":
        # w_b = C(big, b) C(rest, small - b), by the exact integer recurrence
        # w_{b+1} = w_b (big - b)(small - b) / ((b + 1)(rest - small + b + 1))
        w = math.comb(big, lo) * math.comb(rest, small - lo)
        weights = [w]
        for b in range(lo, small):
            w = w * (big - b) * (small - b) // ((b + 1) * (rest - small + b + 1))
            weights.append(w)
        total = math.comb(population, small)
        tails, acc = [], 0
        for w in reversed(weights):  # suffix sums, then one correctly rounded division each
            acc += w
            tails.append(acc / total)
        tails.reverse()
    else:
        if lo == 0:
            # log C(rest, small) / C(population, small) as a sum of small logs, not a difference of
            # huge lgammas: keeps the relative error near machine precision even at n = 10^6
            log_w = math.fsum(math.log1p(-big / (population - i)) for i in range(small))
        else:
            log_w = _log_comb(big, lo) + _log_comb(rest, small - lo) - _log_comb(population, small)
        logs = [log_w]
        for b in range(lo, small):  # the same recurrence as the exact branch, in logs
            log_w += math.log((big - b) * (small - b) / ((b + 1) * (rest - small + b + 1)))
            logs.append(log_w)
        tails, acc = [], -math.inf
        for lw in reversed(logs):
            hi_, lo_ = max(acc, lw), min(acc, lw)
            acc = hi_ + math.log1p(math.exp(lo_ - hi_)) if lo_ > -math.inf else hi_
            tails.append(min(1.0, math.exp(acc)))
        tails.reverse()
    return [1.0] * lo + tails


def _tail_at(tails: list[float], t: int) -> float:
    return tails[t] if t < len(tails) else 0.0


def _at_least_one_of(p: float, m: int) -> float:
    """1 - (1 - p)^m without cancellation."""
    return 1.0 if p >= 1.0 else -math.expm1(m * math.log1p(-p))


def check_segment(n: int, a: int, s: int, theta: int) -> tuple[int, int, int, int]:
    """(n, a, s, theta) as ints if they describe a segment (1 <= a, s <= n; 1 <= theta <= s), else an error."""
    n = check_count("n", n, low=1)
    a = check_count(
        "a", a, low=1, high=n, high_name=f"n={n}: a pattern cannot have more active bits (a) than cells (n)"
    )
    s = check_count(
        "s", s, low=1, high=n, high_name=f"n={n}: a segment cannot have more synapses (s) than cells (n)"
    )
    theta = check_count(
        "theta", theta, low=1, high=s, high_name=f"s={s} synapses: such a segment could never spike"
    )
    return n, a, s, theta


# -- the paper's equations ---------------------------------------------------------------------


def false_match_probability(n: int, a: int, s: int, theta: int, *, method: Method = "exact") -> float:
    """P(a segment of s synapses with threshold theta matches a random a-of-n SDR) (Eq. 4).

    sum_{b=theta}^{s} C(s, b) C(n - s, a - b) / C(n, a); 0 when theta > a.

    Raises:
        ValueError: a or s outside [1, n], or theta outside [1, s].
    """
    n, a, s, theta = check_segment(n, a, s, theta)
    return _tail_at(_upper_tails(n, s, a, method), theta)


def false_negative_probability(
    a: int, s: int, theta: int, noise_bits: int, *, method: Method = "exact"
) -> float:
    """P(a segment subsampling s of a stored pattern's a bits misses it after noise) (Eq. 5/6).

    Noise moves `noise_bits` = v of the a active bits elsewhere; the segment misses when fewer than
    theta synapses remain active: sum_{b=s-theta+1}^{min(s, v)} C(s, b) C(a - s, v - b) / C(a, v).

    Raises:
        ValueError: s outside [1, a], theta outside [1, s] or noise_bits outside [0, a].
    """
    a = check_count("a", a, low=1)
    s = check_count(
        "s", s, low=1, high=a, high_name=f"a={a}: a segment subsamples at most the pattern's a bits"
    )
    theta = check_count(
        "theta", theta, low=1, high=s, high_name=f"s={s} synapses: such a segment could never spike"
    )
    v = check_count("noise_bits", noise_bits, low=0, high=a, high_name=f"a={a} active bits")
    return _tail_at(_upper_tails(a, s, v, method), s - theta + 1)


def segments_false_match_probability(
    n: int, a: int, s: int, theta: int, segments: int, *, method: Method = "exact"
) -> float:
    """P(at least one of `segments` independent segments matches a random SDR) (Eq. 8).

    1 - (1 - P(match))^M, evaluated as -expm1(M log1p(-P)); Eq. 9's M P(match) bounds it from above.

    Raises:
        ValueError: as `false_match_probability`, or segments < 1.
    """
    m = check_count("segments", segments, low=1)
    return _at_least_one_of(false_match_probability(n, a, s, theta, method=method), m)


def union_expected_active(n: int, a: int, m: int) -> float:
    """E|X| for X the union of m independent random a-of-n SDRs: n (1 - (1 - a/n)^m) (Eq. 11, 13).

    Raises:
        ValueError: a outside [1, n] or m < 1.
    """
    n = check_count("n", n, low=1)
    a = check_count("a", a, low=1, high=n, high_name=f"n={n}: an SDR cannot have more active bits (a) than n")
    m = check_count("m", m, low=1)
    return n * _at_least_one_of(a / n, m)


def union_false_match_probability(
    n: int,
    a: int,
    s: int,
    theta: int,
    m: int,
    *,
    union_size: UnionSize = "expected",
    method: Method = "exact",
) -> float:
    """P(a segment holding the synapses of m patterns, s each, matches a random a-of-n SDR).

    The segment's synapses X are the union of m independent random s-subsets (the union property).
    ``union_size="expected"`` is the paper's computation: Eq. 4 with s replaced by round(E|X|),
    E|X| = n (1 - (1 - s/n)^m), rounding halves up as Numenta's code does. ``"exact"`` averages Eq. 4
    over the exact law of |X| (a dynamic program over the union size, in integers).

    Raises:
        ValueError: as `false_match_probability`, or m < 1, or an unknown `union_size`.
    """
    n, a, s, theta = check_segment(n, a, s, theta)
    m = check_count("m", m, low=1)
    if union_size == "expected":
        size = math.floor(union_expected_active(n, s, m) + 0.5)
        return false_match_probability(n, a, size, theta, method=method)
    if union_size != "exact":
        raise ValueError(f"union_size must be 'expected' or 'exact', got {union_size!r}")
    counts = _union_size_counts(n, s, m)
    total = math.comb(n, s) ** m
    terms = [c / total * false_match_probability(n, a, u, theta, method=method) for u, c in counts.items()]
    return math.fsum(terms)


def _union_size_counts(n: int, s: int, m: int) -> dict[int, int]:
    """Number of ordered m-tuples of s-subsets of n whose union has u bits, for each u."""
    counts = {s: math.comb(n, s)}
    for _ in range(m - 1):
        step: dict[int, int] = defaultdict(int)
        for u, c in counts.items():
            for new in range(max(0, s - u), min(s, n - u) + 1):  # bits the next subset adds
                step[u + new] += c * math.comb(n - u, new) * math.comb(u, s - new)
        counts = step
    return dict(counts)


# -- the optimal threshold ---------------------------------------------------------------------


@dataclass(frozen=True)
class ThresholdAnalysis:
    """Errors of one dendritic setting for every threshold theta = 1 .. s.

    `false_match[i]` is Eq. 8 over `segments` segments and `false_negative[i]` is Eq. 5/6, both at
    `thetas[i]`. The error is false_match + false_negative_weight * false_negative, and `optimal` is
    its smallest minimizer: raising theta trades false matches for noise-induced misses.
    """

    thetas: tuple[int, ...]
    false_match: tuple[float, ...]
    false_negative: tuple[float, ...]
    false_negative_weight: float = 1.0

    @property
    def error(self) -> tuple[float, ...]:
        w = self.false_negative_weight
        return tuple(fp + w * fn for fp, fn in zip(self.false_match, self.false_negative, strict=True))

    @property
    def optimal(self) -> int:
        error = self.error
        return self.thetas[error.index(min(error))]


def threshold_analysis(
    n: int,
    a: int,
    s: int,
    *,
    noise_bits: int,
    segments: int = 1,
    false_negative_weight: float = 1.0,
    method: Method = "exact",
) -> ThresholdAnalysis:
    """False match and false negative rates of an s-synapse segment for every theta in [1, s].

    Args:
        n, a, s: cells, active cells per pattern, synapses per segment (s <= a).
        noise_bits: v, the active bits moved by noise when the stored pattern recurs.
        segments: M, the segments (stored patterns) per neuron, each a chance of a false match.
        false_negative_weight: the cost of a miss relative to a false match.

    Raises:
        ValueError: bad sizes as in `false_match_probability` / `false_negative_probability`, or a
            negative or non-finite weight.
    """
    n, a, s, _ = check_segment(n, a, s, 1)
    s = check_count(
        "s", s, low=1, high=a, high_name=f"a={a}: a segment subsamples at most the pattern's a bits"
    )
    v = check_count("noise_bits", noise_bits, low=0, high=a, high_name=f"a={a} active bits")
    m = check_count("segments", segments, low=1)
    if not (math.isfinite(false_negative_weight) and false_negative_weight >= 0):
        raise ValueError(f"false_negative_weight must be finite and >= 0, got {false_negative_weight}")
    match_tails = _upper_tails(n, s, a, method)  # P(overlap >= theta)
    miss_tails = _upper_tails(a, s, v, method)  # P(removed synapses >= s - theta + 1)
    thetas = tuple(range(1, s + 1))
    return ThresholdAnalysis(
        thetas=thetas,
        false_match=tuple(_at_least_one_of(_tail_at(match_tails, t), m) for t in thetas),
        false_negative=tuple(_tail_at(miss_tails, s - t + 1) for t in thetas),
        false_negative_weight=float(false_negative_weight),
    )


def optimal_threshold(
    n: int,
    a: int,
    s: int,
    *,
    noise_bits: int,
    segments: int = 1,
    false_negative_weight: float = 1.0,
    method: Method = "exact",
) -> int:
    """The theta in [1, s] minimizing false matches + weight * false negatives (see `threshold_analysis`)."""
    return threshold_analysis(
        n,
        a,
        s,
        noise_bits=noise_bits,
        segments=segments,
        false_negative_weight=false_negative_weight,
        method=method,
    ).optimal


def median_false_match(
    thetas: Iterable[int],
    *,
    sizes: Sequence[int],
    densities: Sequence[float],
    synapses: Sequence[int],
    method: Method = "exact",
) -> dict[int, float]:
    """The median of Eq. 4 over a grid of settings, for each theta (the paper's Fig. 6).

    The grid is every (n, density, s) in sizes x densities x synapses with a = round(density * n)
    (halves up). A segment with fewer synapses than theta never spikes and counts as 0, as in
    Numenta's script.

    Raises:
        ValueError: an empty grid or a setting with a outside [1, n].
    """
    grid = [(n, math.floor(d * n + 0.5), s) for n in sizes for d in densities for s in synapses]
    if not grid:
        raise ValueError("median_false_match needs a non-empty grid of sizes, densities and synapses")
    thetas = [check_count("theta", t, low=1) for t in thetas]
    tails = []
    for n, a, s in grid:
        check_segment(n, a, s, 1)
        tails.append(_upper_tails(n, s, a, method))
    return {
        t: statistics.median(
            _tail_at(tail, t) if t <= s else 0.0 for tail, (_, _, s) in zip(tails, grid, strict=True)
        )
        for t in thetas
    }
