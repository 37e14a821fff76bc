"""Sparse distributed representations: the algebra, the exact theory and the dendritic neuron.

- `sdr`: the `SDR` type (overlap, union, subsample, noise) and `random_sdr`;
- `theory`: Ahmad & Hawkins (2016) error probabilities in exact or log-space arithmetic, and the
  optimal-threshold analysis;
- `simulate`: Monte Carlo estimates of the same probabilities;
- `dendrite`: the paper's `DendriticNeuron` and the context-gated `ActiveDendrites` layer;
- `sparsey`: Sparsey's single-trial associative memory (one winner per competitive module,
  familiarity-contingent code selection);
- `coding` / `dictionary`: sparse coding by proximal iteration (l1, l0, CEL0) and dictionary
  learning on natural-image patches (`beyond-l1`);
- `transcoder` / `mlp_hooks`: transcoders (a wide sparse ReLU MLP imitating a dense MLP sublayer),
  training with dead-feature tracking, and hook-based collection / substitution of a model's MLP
  (`transcoders`).
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
from sparsetorch.sdr.transcoder import (
    DeadFeatureTracker,
    Transcoder,
    TranscoderConfig,
    TranscoderLoss,
    TranscoderTrainConfig,
    TranscoderTrainResult,
    collect_mlp_io,
    constant_output,
    minilm_mlp,
    substitute_mlp,
    train_transcoder,
    transcoder_loss,
    transcoder_metrics,
)

__all__ = [
    "PENALTIES",
    "SDR",
    "ActiveDendrites",
    "DeadFeatureTracker",
    "DendriteOutput",
    "DendriticNeuron",
    "Estimate",
    "Familiarity",
    "SparseyConfig",
    "SparseyMac",
    "ThresholdAnalysis",
    "Transcoder",
    "TranscoderConfig",
    "TranscoderLoss",
    "TranscoderTrainConfig",
    "TranscoderTrainResult",
    "absolute_max_gate",
    "binarize_edges",
    "calibrate_lambda",
    "cel0_penalty",
    "cel0_prox",
    "code_distribution",
    "collect_mlp_io",
    "constant_output",
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
    "minilm_mlp",
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
    "substitute_mlp",
    "threshold_analysis",
    "train_transcoder",
    "transcoder_loss",
    "transcoder_metrics",
    "union_expected_active",
    "union_false_match_probability",
    "v_to_mu",
    "whiten",
]
