"""Ahmad & Hawkins (2016) probabilities: brute force, exact fractions, published values, Monte Carlo."""

from __future__ import annotations

import itertools
import math
from decimal import Decimal, localcontext
from fractions import Fraction

import pytest
import torch

from sparsetorch.sdr import (
    false_match_probability,
    false_negative_probability,
    median_false_match,
    optimal_threshold,
    random_sdr,
    segments_false_match_probability,
    simulate_false_match,
    simulate_false_negative,
    simulate_segments_false_match,
    simulate_union_false_match,
    threshold_analysis,
    union_expected_active,
    union_false_match_probability,
)


def exact_false_match(n: int, a: int, s: int, theta: int) -> Fraction:
    """Eq. 4 written out literally, in fractions."""
    top = sum(math.comb(s, b) * math.comb(n - s, a - b) for b in range(theta, s + 1) if a - b >= 0)
    return Fraction(top, math.comb(n, a))


def exact_false_negative(a: int, s: int, theta: int, v: int) -> Fraction:
    top = sum(math.comb(s, b) * math.comb(a - s, v - b) for b in range(s - theta + 1, min(s, v) + 1))
    return Fraction(top, math.comb(a, v))


def rel(x: float, y: float) -> float:
    return abs(x - y) / abs(y)


# -- brute-force enumeration at tiny n --------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "a", "s", "theta"), [(10, 4, 3, 1), (10, 4, 3, 2), (12, 5, 4, 3), (9, 3, 5, 2)]
)
def test_false_match_equals_enumeration(n, a, s, theta):
    segment = set(range(s))  # any fixed segment: the probability is the same by symmetry
    patterns = list(itertools.combinations(range(n), a))
    hits = sum(len(segment.intersection(p)) >= theta for p in patterns)
    assert false_match_probability(n, a, s, theta) == float(Fraction(hits, len(patterns)))
    assert false_match_probability(n, a, s, theta, method="log") == pytest.approx(
        hits / len(patterns), rel=1e-13
    )


@pytest.mark.parametrize(("a", "s", "theta", "v"), [(8, 4, 2, 3), (8, 4, 4, 1), (10, 6, 3, 5), (7, 3, 1, 7)])
def test_false_negative_equals_enumeration(a, s, theta, v):
    segment = set(range(s))  # the segment's synapses among the pattern's a bits
    removals = list(itertools.combinations(range(a), v))
    misses = sum(s - len(segment.intersection(r)) < theta for r in removals)
    assert false_negative_probability(a, s, theta, v) == float(Fraction(misses, len(removals)))


def test_union_exact_size_equals_enumeration():
    n, a, s, theta, m = 8, 3, 2, 2, 2
    subsets = list(itertools.combinations(range(n), s))
    probes = list(itertools.combinations(range(n), a))
    hits = 0
    for parts in itertools.product(subsets, repeat=m):
        union = set().union(*parts)
        hits += sum(len(union.intersection(p)) >= theta for p in probes)
    exact = Fraction(hits, len(subsets) ** m * len(probes))
    got = union_false_match_probability(n, a, s, theta, m, union_size="exact")
    assert got == pytest.approx(float(exact), rel=1e-14)


def test_union_expected_size_is_the_mean_of_the_exact_law():
    # E|X| = sum_u u P(|X| = u); brute force over all pairs of 3-subsets of 9 bits
    subsets = list(itertools.combinations(range(9), 3))
    sizes = [len(set(x) | set(y)) for x in subsets for y in subsets]
    assert union_expected_active(9, 3, 2) == pytest.approx(sum(sizes) / len(sizes), rel=1e-14)


# -- exact arithmetic, the 1e-30 region and n = 10^6 --------------------------------------------


@pytest.mark.parametrize(
    ("n", "a", "s", "theta"),
    [
        (10_000, 300, 30, 24),  # 5.7e-32
        (10_000, 300, 30, 20),  # 4.3e-24
        (2048, 40, 40, 20),  # 2.5e-26
        (200_000, 2000, 10, 10),  # 9.8e-21 (Hawkins & Ahmad 2016, Frontiers)
        (20_000, 200, 25, 25),
        (4000, 128, 24, 12),
    ],
)
def test_exact_and_log_space_agree_with_fractions_in_the_tiny_tail(n, a, s, theta):
    truth = exact_false_match(n, a, s, theta)
    assert false_match_probability(n, a, s, theta) == float(truth)  # correctly rounded
    assert rel(false_match_probability(n, a, s, theta, method="log"), float(truth)) < 1e-12


def test_the_1e_30_region_is_resolved():
    p = false_match_probability(10_000, 300, 30, 24)
    assert 1e-33 < p < 1e-30
    assert p == float(exact_false_match(10_000, 300, 30, 24))


@pytest.mark.timeout(30)
@pytest.mark.parametrize(("a", "s", "theta"), [(20_000, 40, 20), (10_000, 1000, 30), (1000, 500, 5)])
def test_a_million_cells(a, s, theta):
    exact = false_match_probability(10**6, a, s, theta)
    log = false_match_probability(10**6, a, s, theta, method="log")
    assert 0.0 < exact < 1.0
    assert rel(log, exact) < 1e-10
    assert union_expected_active(10**6, a, 10) < 10 * a


def test_segments_avoid_cancellation():
    # M = 10^6 segments of the paper's theta = 15 example; 50-digit decimal reference
    p = exact_false_match(10_000, 300, 30, 15)
    with localcontext() as ctx:
        ctx.prec = 60
        q = Decimal(p.numerator) / Decimal(p.denominator)
        reference = float(1 - (1 - q) ** 10**6)
    got = segments_false_match_probability(10_000, 300, 30, 15, 10**6)
    assert rel(got, reference) < 1e-13
    assert got <= 10**6 * float(p)  # Eq. 9 is an upper bound
    naive = 1.0 - (1.0 - float(p)) ** 10**6
    assert rel(naive, reference) > 0.04  # what the cancellation costs in float


def test_segments_small_m_matches_fraction():
    p = exact_false_match(100, 7, 7, 5)
    assert segments_false_match_probability(100, 7, 7, 5, 3) == pytest.approx(
        float(1 - (1 - p) ** 3), rel=1e-14
    )
    assert segments_false_match_probability(100, 7, 7, 5, 1) == float(p)


# -- published numbers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected", "tol"),
    [
        ((10_000, 300, 30, 12), 2.279e-11, 1e-3),  # the paper's first example
        ((4000, 128, 24, 12), 1.343e-12, 1e-3),  # Fig. 5A
        ((10_000, 300, 2, 1), 0.0591, 1e-3),  # Fig. 5B, theta = s/2
        ((10_000, 300, 10, 5), 5.235e-6, 1e-3),
        ((10_000, 300, 24, 12), 8.376e-13, 1e-3),
        ((10_000, 300, 30, 15), 1.049e-15, 1e-3),
        ((500, 64, 64, 12), 0.0961, 1e-3),  # effect of n, a = 64
        ((19_900, 64, 64, 12), 1.19e-18, 5e-3),
        ((400, 8, 4, 2), 2.06e-3, 5e-3),
        ((100, 7, 7, 5), 5.653e-6, 1e-3),  # htmresearch README, per segment
    ],
)
def test_published_false_match_values(args, expected, tol):
    assert rel(false_match_probability(*args), expected) < tol


@pytest.mark.parametrize(
    ("theta", "v", "expected"),
    [
        (8, 64, 7.35e-4),
        (8, 96, 0.509),
        (12, 32, 2.16e-7),
        (12, 64, 0.0717),
        (16, 32, 5.90e-4),
        (16, 64, 0.5825),
    ],
)
def test_published_false_negative_values(theta, v, expected):
    # Numenta's Fig. 4B: a = 128, s = 30 (n = 6000 does not enter)
    assert rel(false_negative_probability(128, 30, theta, v), expected) < 5e-3


def test_paper_false_negative_example():
    assert false_negative_probability(300, 30, 12, 60) == pytest.approx(3.947e-8, rel=1e-3)


@pytest.mark.parametrize(
    ("n", "m", "expected"),
    [(1000, 1, 1.00140315240769e-5), (1000, 3, 0.501650232353378), (20_000, 10, 3.32242567600452e-08)],
)
def test_union_matches_numenta_sympy_values(n, m, expected):
    # sympy's evalf of the sum is good to about 10 digits
    assert rel(union_false_match_probability(n, 200, 25, 15, m), expected) < 1e-9


def test_union_paper_example():
    assert union_expected_active(20_000, 25, 10) == pytest.approx(248.598, abs=1e-3)
    assert union_false_match_probability(20_000, 100, 25, 15, 10) == pytest.approx(1.735e-12, rel=1e-3)


def test_fig6_medians():
    sizes, densities, synapses = (
        range(10_000, 200_000, 20_000),
        (0.005, 0.01, 0.015, 0.02, 0.025, 0.03),
        range(20, 51, 5),
    )
    medians = median_false_match([3, 9, 20, 24], sizes=sizes, densities=densities, synapses=synapses)
    for theta, ref in {3: 0.018156949, 9: 2.04e-9, 20: 4.11e-28, 24: 2.60e-36}.items():
        assert rel(medians[theta], ref) < 5e-3


# -- the optimal threshold ------------------------------------------------------------------


def test_threshold_analysis_is_consistent_with_the_formulas():
    analysis = threshold_analysis(6000, 128, 30, noise_bits=64, segments=3)
    assert analysis.thetas == tuple(range(1, 31))
    for theta in (1, 8, 12, 30):
        i = theta - 1
        assert analysis.false_match[i] == segments_false_match_probability(6000, 128, 30, theta, 3)
        assert analysis.false_negative[i] == false_negative_probability(128, 30, theta, 64)
    fm, fn = analysis.false_match, analysis.false_negative
    assert all(x >= y for x, y in itertools.pairwise(fm)) and all(x <= y for x, y in itertools.pairwise(fn))
    assert analysis.error[analysis.optimal - 1] == min(analysis.error)


def test_optimal_threshold_moves_with_the_trade_off():
    assert optimal_threshold(10_000, 300, 30, noise_bits=0) == 30  # no noise: the highest threshold
    quiet = optimal_threshold(10_000, 300, 30, noise_bits=30)
    noisy = optimal_threshold(10_000, 300, 30, noise_bits=120)
    assert noisy < quiet
    many = optimal_threshold(10_000, 300, 30, noise_bits=120, segments=10**6)
    assert many >= noisy  # more segments, more chances of a false match
    assert optimal_threshold(10_000, 300, 30, noise_bits=120, false_negative_weight=0.0) == 30


# -- Monte Carlo ----------------------------------------------------------------------------


def g(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_monte_carlo_false_match():
    est = simulate_false_match(200, 20, 10, 3, trials=20_000, generator=g(1))
    assert est.agrees(false_match_probability(200, 20, 10, 3))


def test_monte_carlo_false_negative():
    est = simulate_false_negative(400, 40, 20, 12, 16, trials=5000, generator=g(2))
    assert est.agrees(false_negative_probability(40, 20, 12, 16))


def test_monte_carlo_segments():
    est = simulate_segments_false_match(100, 7, 7, 4, 50, trials=10_000, generator=g(3))
    assert est.agrees(segments_false_match_probability(100, 7, 7, 4, 50))


def test_monte_carlo_union_exact_law():
    est = simulate_union_false_match(300, 60, 10, 6, 3, trials=10_000, generator=g(4))
    assert est.agrees(union_false_match_probability(300, 60, 10, 6, 3, union_size="exact"))


def test_monte_carlo_union_size():
    sizes = random_sdr(500, 20, batch=(4000, 6), generator=g(5)).union_along(1).active.double()
    expected = union_expected_active(500, 20, 6)
    assert abs(sizes.mean().item() - expected) < 4 * sizes.std().item() / math.sqrt(4000)


def test_monte_carlo_is_deterministic_and_z_scores_flag_disagreement():
    a = simulate_false_match(100, 10, 10, 2, trials=3000, generator=g(6))
    b = simulate_false_match(100, 10, 10, 2, trials=3000, generator=g(6))
    assert a == b
    p = false_match_probability(100, 10, 10, 2)
    assert a.agrees(p) and not a.agrees(min(1.0, 2 * p))
    assert a.z_score(0.0) == math.inf if a.hits else a.z_score(0.0) == 0.0


# -- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: false_match_probability(10, 11, 3, 2), "cannot have more active bits"),
        (lambda: false_match_probability(100, 10, 5, 6), "could never spike"),
        (lambda: false_match_probability(100, 10, 5, 0), "theta must be >= 1"),
        (lambda: false_match_probability(100, 10, 101, 1), "more synapses"),
        (lambda: false_match_probability(100, 10, 5, 2, method="fast"), "method"),
        (lambda: false_negative_probability(10, 11, 2, 1), "subsamples at most"),
        (lambda: false_negative_probability(10, 5, 6, 1), "could never spike"),
        (lambda: false_negative_probability(10, 5, 2, 11), "noise_bits"),
        (lambda: segments_false_match_probability(100, 10, 5, 2, 0), "segments must be >= 1"),
        (lambda: union_expected_active(10, 11, 2), "more active bits"),
        (lambda: union_false_match_probability(100, 10, 5, 2, 2, union_size="median"), "union_size"),
        (lambda: threshold_analysis(100, 10, 5, noise_bits=2, false_negative_weight=-1.0), "weight"),
        (lambda: median_false_match([3], sizes=[], densities=[0.1], synapses=[5]), "non-empty"),
        (lambda: simulate_false_negative(50, 40, 10, 5, 20, trials=10, generator=g(0)), "inactive bits"),
    ],
)
def test_bad_input_is_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("bad", [3.5, "10", True, None])
def test_non_integers_are_refused(bad):
    with pytest.raises(TypeError, match="integer"):
        false_match_probability(100, 10, bad, 2)
