"""Reproduction of `icbs`: iCBS prunes to higher quality than Wanda at equal density, more so with iterations.

Claim (abstract): on Mistral and DeiT, iCBS "achieves higher performance metrics at the same density
levels compared to existing pruning methods such as Wanda", and it offers a quality-time tradeoff
(more block-coordinate-descent iterations, better quality).

Setup: all-MiniLM-L6-v2 (real weights) calibrated on windows of stdlib docstrings (train split),
pruned by Wanda and by iCBS (1 and 5 iterations; iCBS starts from Wanda's mask) at 50% and 2:4.
Everything that judges the claim is measured on HELD-OUT data, never calibrated on:

- the mean layer-wise reconstruction error ||WX - W'X|| / ||WX|| on windows of the test split
  (inputs X from the dense model), the quantity iCBS minimizes, out of sample;
- the cosine fidelity of the sentence embeddings to the dense model's on test-split sentences,
  the stand-in for the paper's task metrics.

The calibration-set error (what iCBS minimizes starting from Wanda's mask, so it cannot lose) is a
metric and a sanity check only.

`seed` picks the calibration windows, the held-out windows and sentences, and iCBS's randomness;
both arms of every comparison use the same seed.

Scales: `tiny` (the first attention block only, 8 calibration and 8 held-out windows of 32 tokens,
64 sentences), `small` (all 36 layers, 128 + 128 windows of 128 tokens, 512 sentences), `full`
(256 + 256 windows, all test sentences). Costs as before this revision plus one dense forward pass
over the held-out windows.

Claim checks (strict: "better" means better, equal arms fail), at level in {50, 2of4}:
- `icbs_beats_wanda_heldout_error_<level>`: held-out error iCBS(5) < Wanda (paper: higher accuracy
  than Wanda at equal density on Mistral-7B and DeiT, Figs. 2-3).
- `icbs_beats_wanda_cosine_<level>`: held-out embedding cosine iCBS(5) > Wanda (same paper claim).
- `more_iterations_help_<level>`: held-out error iCBS(5) < iCBS(1) (paper: the quality-time tradeoff,
  quality improving with more iterations).

Sanity checks: achieved sparsity of each arm within 0.005 of 50% (construction); iCBS(5)
calibration-set error <= Wanda's (iCBS starts from Wanda's mask and minimizes exactly this).

Broken arms: `wanda-twice` (Wanda in place of both iCBS arms: every claim check compares equal
arms and fails); `one-iteration` (iCBS(1) in place of iCBS(5): `more_iterations_help_*` fail).

Deviations: a 22M-parameter sentence encoder instead of Mistral-7B/DeiT, embedding fidelity and
reconstruction error instead of zero-shot accuracy/perplexity; our own iCBS solver
(`sparsetorch.pruning.icbs`, written from the paper's description) solves each small block exactly
by enumeration instead of the paper's simulated annealer, and by default re-adjusts the kept weights.

At tiny scale (seed 0) every claim check fails and is reported as such: 8 x 32 = 256 calibration
tokens are fewer than the 384 inputs of each layer, so X^T X is rank-deficient and iCBS overfits it
(calibration error Wanda 0.213 -> iCBS 0.050 at 50%, but held-out error 0.214 -> 0.245 and cosine
0.9971 -> 0.9953). `small` calibrates on 16k tokens.
"""

from __future__ import annotations

from sparsetorch.papers.base import BrokenArm, Result, check_scale

SCALES = {
    "tiny": {"samples": 8, "seq_len": 32, "sentences": 64, "targets": "encoder.layer.0.attention.*"},
    "small": {"samples": 128, "seq_len": 128, "sentences": 512, "targets": None},
    "full": {"samples": 256, "seq_len": 128, "sentences": 100_000, "targets": None},
}
LEVELS = {"50": (0.5, "unstructured"), "2of4": (None, "2:4")}
SPARSITY_TOLERANCE = 0.005

BROKEN_ARMS = {
    "wanda-twice": BrokenArm(
        "Wanda in place of iCBS (1 and 5 iterations), same seed: every comparison is Wanda against itself",
        fails=tuple(
            f"{c}_{level}"
            for level in LEVELS
            for c in ("icbs_beats_wanda_heldout_error", "icbs_beats_wanda_cosine", "more_iterations_help")
        ),
    ),
    "one-iteration": BrokenArm(
        "iCBS with 1 iteration in place of 5 iterations: more iterations cannot help",
        fails=tuple(f"more_iterations_help_{level}" for level in LEVELS),
    ),
}

PAPER = {
    "icbs_beats_wanda_heldout_error": "iCBS higher accuracy than Wanda at equal density, Mistral-7B and DeiT "
    "(abstract; Figs. 2-3)",
    "icbs_beats_wanda_cosine": "iCBS 'higher performance metrics at the same density levels' than Wanda, "
    "Mistral-7B zero-shot tasks and DeiT top-1 (abstract; Figs. 2-3)",
    "more_iterations_help": "quality-time tradeoff: more iCBS iterations, better quality (abstract)",
}


def reproduce(scale: str, *, seed: int = 0, broken: str | None = None) -> Result:
    from sparsetorch.papers.pruning_experiments import Setting, minilm_runs

    cfg = SCALES[check_scale(scale)]
    extra = {"targets": cfg["targets"]} if cfg["targets"] else {}
    arms = {
        "wanda": ("wanda", {}),
        "icbs1": ("icbs", {"iterations": 1}),
        "icbs5": ("icbs", {"iterations": 5}),
    }
    if broken == "wanda-twice":
        arms["icbs1"] = arms["icbs5"] = arms["wanda"]
    elif broken == "one-iteration":
        arms["icbs5"] = arms["icbs1"]
    tags = [(arm, level) for level in LEVELS for arm in arms]
    settings = [
        Setting(arms[arm][0], LEVELS[level][0], LEVELS[level][1], {**arms[arm][1], **extra})
        for arm, level in tags
    ]
    rows = minilm_runs(
        settings,
        samples=cfg["samples"],
        seq_len=cfg["seq_len"],
        sentences=cfg["sentences"],
        seed=seed,
        sample_sentences=True,
        heldout=cfg["samples"],
    )
    metrics: dict[str, float] = {}
    for (arm, level), row in zip(tags, rows[1:], strict=True):
        metrics[f"heldout_error_{arm}_{level}"] = row["heldout_error"]
        metrics[f"cosine_{arm}_{level}"] = row["cosine"]
        metrics[f"calibration_error_{arm}_{level}"] = row["mean_error"]
        metrics[f"sparsity_{arm}_{level}"] = row["achieved_sparsity"]
        metrics[f"seconds_{arm}_{level}"] = row["seconds"]
    checks: dict[str, tuple[str | float, str, str | float]] = {}
    sanity: dict[str, tuple[str | float, str, str | float]] = {}
    paper: dict[str, str] = {}
    for level in LEVELS:
        checks[f"icbs_beats_wanda_heldout_error_{level}"] = (
            f"heldout_error_icbs5_{level}",
            "<",
            f"heldout_error_wanda_{level}",
        )
        checks[f"icbs_beats_wanda_cosine_{level}"] = (f"cosine_icbs5_{level}", ">", f"cosine_wanda_{level}")
        checks[f"more_iterations_help_{level}"] = (
            f"heldout_error_icbs5_{level}",
            "<",
            f"heldout_error_icbs1_{level}",
        )
        for name, text in PAPER.items():
            paper[f"{name}_{level}"] = f"{text}; here {'50% unstructured' if level == '50' else '2:4'}"
        sanity[f"icbs_lowers_calibration_error_{level}"] = (
            f"calibration_error_icbs5_{level}",
            "<=",
            f"calibration_error_wanda_{level}",
        )
        for arm in arms:
            sanity[f"sparsity_{arm}_{level}_low"] = (
                f"sparsity_{arm}_{level}",
                ">=",
                0.5 - SPARSITY_TOLERANCE,
            )
            sanity[f"sparsity_{arm}_{level}_high"] = (
                f"sparsity_{arm}_{level}",
                "<=",
                0.5 + SPARSITY_TOLERANCE,
            )
    note = (
        f"{scale}, seed {seed}: all-MiniLM-L6-v2, wanda vs icbs (1 and 5 iterations) at 50% and 2:4; "
        f"{cfg['samples']} x {cfg['seq_len']}-token calibration windows (train split); judged on held-out "
        f"data: layer-wise reconstruction error on {cfg['samples']} test-split windows and embedding cosine "
        f"on (up to) {cfg['sentences']} sampled test-split sentences"
        + (f"; broken arm {broken!r}" if broken else "")
    )
    return Result.from_comparisons(metrics, checks=checks, sanity=sanity, paper=paper, note=note)
