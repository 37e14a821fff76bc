"""Monte Carlo estimates of the `sdr-dendrites` error probabilities, to check `sdr.theory`.

Each simulator draws the random objects the corresponding equation is about, with the SDR
operations of `sdr.sdr` and the neuron of `sdr.dendrite`, and counts events:

- `simulate_false_match` (Eq. 4): a random segment of s synapses (the same law as s bits subsampled
  from a random stored pattern) against a random a-of-n probe; a hit is overlap >= theta.
- `simulate_false_negative` (Eq. 5/6): a stored pattern, a segment subsampling s of its bits, and the
  pattern again with v of its bits moved by `SDR.add_noise`; a hit is overlap < theta.
- `simulate_segments_false_match` (Eq. 8): a `DendriticNeuron` with M random segments against random
  probes; a hit is any segment spiking. The segments are redrawn for every chunk of trials.
- `simulate_union_false_match` (union property): a segment holding the union of m random s-subsets
  against a random probe.

An `Estimate` compares itself with a predicted probability by a binomial z-score. Trials run in
chunks of at most about 4M drawn keys, so memory stays flat whatever `trials` is.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from sparsetorch.sdr.dendrite import DendriticNeuron
from sparsetorch.sdr.sdr import check_count, random_sdr
from sparsetorch.sdr.theory import check_segment

__all__ = [
    "Estimate",
    "simulate_false_match",
    "simulate_false_negative",
    "simulate_segments_false_match",
    "simulate_union_false_match",
]

_CHUNK_ELEMENTS = 1 << 22


@dataclass(frozen=True)
class Estimate:
    """`hits` events in `trials` independent trials."""

    hits: int
    trials: int

    @property
    def probability(self) -> float:
        return self.hits / self.trials

    def z_score(self, expected: float) -> float:
        """(hits - trials p) / sqrt(trials p (1 - p)) for the predicted probability p."""
        if not 0.0 <= expected <= 1.0:
            raise ValueError(f"expected must be a probability in [0, 1], got {expected}")
        variance = self.trials * expected * (1.0 - expected)
        gap = self.hits - self.trials * expected
        if variance == 0.0:
            return 0.0 if gap == 0 else math.inf
        return gap / math.sqrt(variance)

    def agrees(self, expected: float, *, z: float = 4.0) -> bool:
        """Whether `expected` lies within `z` binomial standard deviations of the estimate."""
        return abs(self.z_score(expected)) <= z


def _chunks(trials: int, per_trial: int) -> Iterator[int]:
    rows = max(1, _CHUNK_ELEMENTS // max(per_trial, 1))
    for start in range(0, trials, rows):
        yield min(rows, trials - start)


def simulate_false_match(
    n: int, a: int, s: int, theta: int, *, trials: int, generator: torch.Generator
) -> Estimate:
    """How often a random s-synapse segment reaches theta on a random a-of-n SDR (checks Eq. 4)."""
    n, a, s, theta = check_segment(n, a, s, theta)
    trials = check_count("trials", trials, low=1)
    hits = 0
    for rows in _chunks(trials, 2 * n):
        segment = random_sdr(n, s, batch=(rows,), generator=generator)
        probe = random_sdr(n, a, batch=(rows,), generator=generator)
        hits += int((segment.overlap(probe) >= theta).sum())
    return Estimate(hits, trials)


def simulate_false_negative(
    n: int, a: int, s: int, theta: int, noise_bits: int, *, trials: int, generator: torch.Generator
) -> Estimate:
    """How often a segment misses its own pattern after `noise_bits` bits moved (checks Eq. 5/6).

    Raises:
        ValueError: s > a, or n < a + noise_bits (the moved bits need somewhere to go).
    """
    n, a, s, theta = check_segment(n, a, s, theta)
    check_count("s", s, low=1, high=a, high_name=f"a={a}: a segment subsamples at most the pattern's a bits")
    v = check_count("noise_bits", noise_bits, low=0, high=n - a, high_name=f"n - a = {n - a} inactive bits")
    trials = check_count("trials", trials, low=1)
    hits = 0
    for rows in _chunks(trials, 3 * n):
        stored = random_sdr(n, a, batch=(rows,), generator=generator)
        segment = stored.subsample(s, generator=generator)
        noisy = stored.add_noise(v, generator=generator)
        hits += int((segment.overlap(noisy) < theta).sum())
    return Estimate(hits, trials)


def simulate_segments_false_match(
    n: int, a: int, s: int, theta: int, segments: int, *, trials: int, generator: torch.Generator
) -> Estimate:
    """How often any of a neuron's M random segments spikes on a random SDR (checks Eq. 8)."""
    n, a, s, theta = check_segment(n, a, s, theta)
    m = check_count("segments", segments, low=1)
    trials = check_count("trials", trials, low=1)
    hits = 0
    for rows in _chunks(trials, n + m):
        neuron = DendriticNeuron(random_sdr(n, s, batch=(m,), generator=generator).dense, theta)
        probe = random_sdr(n, a, batch=(rows,), generator=generator)
        hits += int(neuron(probe).sum())
    return Estimate(hits, trials)


def simulate_union_false_match(
    n: int, a: int, s: int, theta: int, m: int, *, trials: int, generator: torch.Generator
) -> Estimate:
    """How often a segment holding the union of m random s-subsets matches a random SDR."""
    n, a, s, theta = check_segment(n, a, s, theta)
    m = check_count("m", m, low=1)
    trials = check_count("trials", trials, low=1)
    hits = 0
    for rows in _chunks(trials, (m + 1) * n):
        segment = random_sdr(n, s, batch=(rows, m), generator=generator).union_along(1)
        probe = random_sdr(n, a, batch=(rows,), generator=generator)
        hits += int((segment.overlap(probe) >= theta).sum())
    return Estimate(hits, trials)
