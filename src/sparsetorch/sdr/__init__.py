"""Sparse distributed representations: the algebra, the exact theory and the dendritic neuron.

- `sdr`: the `SDR` type (overlap, union, subsample, noise) and `random_sdr`;
- `theory`: Ahmad & Hawkins (2016) error probabilities in exact or log-space arithmetic, and the
  optimal-threshold analysis;
- `simulate`: Monte Carlo estimates of the same probabilities;
- `dendrite`: the paper's `DendriticNeuron` and the context-gated `ActiveDendrites` layer.
"""

from __future__ import annotations

from sparsetorch.sdr.dendrite import (
    ActiveDendrites,
    DendriteOutput,
    DendriticNeuron,
    absolute_max_gate,
    max_bias,
    max_gate,
)
from sparsetorch.sdr.sdr import SDR, random_sdr
from sparsetorch.sdr.simulate import (
    Estimate,
    simulate_false_match,
    simulate_false_negative,
    simulate_segments_false_match,
    simulate_union_false_match,
)
from sparsetorch.sdr.theory import (
    ThresholdAnalysis,
    false_match_probability,
    false_negative_probability,
    median_false_match,
    optimal_threshold,
    segments_false_match_probability,
    threshold_analysis,
    union_expected_active,
    union_false_match_probability,
)

__all__ = [
    "SDR",
    "ActiveDendrites",
    "DendriteOutput",
    "DendriticNeuron",
    "Estimate",
    "ThresholdAnalysis",
    "absolute_max_gate",
    "false_match_probability",
    "false_negative_probability",
    "max_bias",
    "max_gate",
    "median_false_match",
    "optimal_threshold",
    "random_sdr",
    "segments_false_match_probability",
    "simulate_false_match",
    "simulate_false_negative",
    "simulate_segments_false_match",
    "simulate_union_false_match",
    "threshold_analysis",
    "union_expected_active",
    "union_false_match_probability",
]
