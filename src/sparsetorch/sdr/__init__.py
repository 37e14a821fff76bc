"""Sparse distributed representations: the algebra, the exact theory and the dendritic neuron.

- `sdr`: the `SDR` type (overlap, union, subsample, noise) and `random_sdr`;
- `theory`: Ahmad & Hawkins (2016) error probabilities in exact or log-space arithmetic, and the
  optimal-threshold analysis;
- `simulate`: Monte Carlo estimates of the same probabilities;
- `dendrite`: the paper's `DendriticNeuron` and the context-gated `ActiveDendrites` layer;
- `sparsey`: Sparsey's single-trial associative memory (one winner per competitive module,
  familiarity-contingent code selection);
- `coding` / `dictionary`: sparse coding by proximal iteration (l1, l0, CEL0) and dictionary
  learning on natural-image patches (`beyond-l1`).
"""

from __future__ import annotations

from sparsetorch.sdr.coding import (
    PENALTIES,
    calibrate_lambda,
    cel0_penalty,
    cel0_prox,
    density_at_error,
    error_at_density,
    hard_threshold,
    prox,
    soft_threshold,
    sparse_code,
    sparsity_curve,
)
from sparsetorch.sdr.dendrite import (
    ActiveDendrites,
    DendriteOutput,
    DendriticNeuron,
    absolute_max_gate,
    max_bias,
    max_gate,
)
from sparsetorch.sdr.dictionary import (
    dictionary_grid,
    learn_dictionary,
    normalize_atoms,
    orientation_selectivity,
    random_dictionary,
    render_dictionary,
    whiten,
)
from sparsetorch.sdr.sdr import SDR, random_sdr
from sparsetorch.sdr.simulate import (
    Estimate,
    simulate_false_match,
    simulate_false_negative,
    simulate_segments_false_match,
    simulate_union_false_match,
)
from sparsetorch.sdr.sparsey import (
    Familiarity,
    SparseyConfig,
    SparseyMac,
    binarize_edges,
    code_distribution,
    expansivity,
    global_familiarity,
    similarity_preservation,
    v_to_mu,
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
    "PENALTIES",
    "SDR",
    "ActiveDendrites",
    "DendriteOutput",
    "DendriticNeuron",
    "Estimate",
    "Familiarity",
    "SparseyConfig",
    "SparseyMac",
    "ThresholdAnalysis",
    "absolute_max_gate",
    "binarize_edges",
    "calibrate_lambda",
    "cel0_penalty",
    "cel0_prox",
    "code_distribution",
    "density_at_error",
    "dictionary_grid",
    "error_at_density",
    "expansivity",
    "false_match_probability",
    "false_negative_probability",
    "global_familiarity",
    "hard_threshold",
    "learn_dictionary",
    "max_bias",
    "max_gate",
    "median_false_match",
    "normalize_atoms",
    "optimal_threshold",
    "orientation_selectivity",
    "prox",
    "random_dictionary",
    "random_sdr",
    "render_dictionary",
    "segments_false_match_probability",
    "similarity_preservation",
    "simulate_false_match",
    "simulate_false_negative",
    "simulate_segments_false_match",
    "simulate_union_false_match",
    "soft_threshold",
    "sparse_code",
    "sparsity_curve",
    "threshold_analysis",
    "union_expected_active",
    "union_false_match_probability",
    "v_to_mu",
    "whiten",
]
