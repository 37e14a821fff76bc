"""Reproduction of `dsnot`: does DSnoT improve on its Wanda starting point at 60-70% sparsity?

Claim (abstract): DSnoT, a training-free prune-and-grow pass on top of a sparse mask, improves the
sparse model, "especially at high sparsity levels": it outperforms Wanda by 26.79 perplexity at 70%
sparsity on LLaMA-7B.

Setup, measured on real weights and real text (`sparsetorch.papers.pruning_experiments`), Wanda
and DSnoT-on-Wanda (defaults: max_cycle_time=50, update_threshold=0.1) at 60% and 70%:

- all-MiniLM-L6-v2, calibrated on windows of stdlib docstrings (train split), judged on HELD-OUT
  data: the cosine fidelity of sentence embeddings to the dense model's on test-split sentences
  (higher is better), and the mean layer-wise reconstruction error ||WX - W'X|| / ||WX|| on
  test-split windows (inputs X from the dense model; the quantity DSnoT reduces, out of sample);
- at `small` and `full` scale also the Shakespeare tiny GPT (`gpt-tiny`), held-out test perplexity.

`seed` picks the calibration windows, the held-out windows and sentences; both arms use the same seed.

Scales: `tiny` (seconds; the first encoder layer only, 8 calibration and 8 held-out windows of 32
tokens, 64 sentences), `small` (all layers, 128 + 128 windows of 128 tokens, 512 sentences, plus
the GPT on 128 windows of 128 bytes), `full` (256 + 256 windows, all test sentences). Costs as before
this revision plus one dense forward pass over the held-out windows.

Claim checks (strict: equal arms fail), at pct in {60, 70}:
- `minilm_dsnot_beats_wanda_<pct>`: held-out embedding cosine DSnoT > Wanda;
- `minilm_dsnot_heldout_error_<pct>`: held-out reconstruction error DSnoT < Wanda;
- `gpt_dsnot_beats_wanda_<pct>` (`small`, `full`): held-out perplexity DSnoT < Wanda.
Paper numbers beside each: LLaMA-7B WikiText-2 perplexity, DSnoT 26.79 below Wanda at 70%
(abstract), and below Wanda at 60% on LLaMA/Vicuna/OPT (the paper's main 60% table).

Sanity checks: achieved sparsity of each arm within 0.005 of its target (DSnoT keeps the count).

Broken arm: `wanda-twice` (Wanda in place of DSnoT, same seed: every claim check compares equal
arms and fails).

Deviations: a 22M-parameter sentence encoder and a tiny byte-level GPT instead of LLaMA/OPT;
embedding fidelity and reconstruction error stand in for downstream perplexity on MiniLM.
"""

from __future__ import annotations

from sparsetorch.papers.base import BrokenArm, Result, check_scale

LEVELS = (0.6, 0.7)
SPARSITY_TOLERANCE = 0.005
SCALES = {
    "tiny": {"samples": 8, "seq_len": 32, "sentences": 64, "gpt": False, "targets": "encoder.layer.0.*"},
    "small": {"samples": 128, "seq_len": 128, "sentences": 512, "gpt": True, "targets": None},
    "full": {"samples": 256, "seq_len": 128, "sentences": 100_000, "gpt": True, "targets": None},
}

_CLAIMS = ("minilm_dsnot_beats_wanda", "minilm_dsnot_heldout_error", "gpt_dsnot_beats_wanda")
BROKEN_ARMS = {
    "wanda-twice": BrokenArm(
        "Wanda in place of DSnoT, same seed: every comparison is Wanda against itself",
        # the gpt_* checks exist from `small` on only: the tiny test runs the MiniLM ones, and
        # tests/papers/test_stored_results.py checks that the small result has no other claim check
        fails=tuple(f"{c}_{round(lv * 100)}" for c in _CLAIMS for lv in LEVELS),
    ),
}

PAPER = {
    60: "WikiText-2 perplexity: DSnoT below Wanda at 60% on LLaMA-1/2, Vicuna, OPT (main 60% table)",
    70: "LLaMA-7B WikiText-2 perplexity: DSnoT 26.79 below Wanda at 70% (abstract)",
}


def reproduce(scale: str, *, seed: int = 0, broken: str | None = None) -> Result:
    from sparsetorch.papers.pruning_experiments import Setting, gpt_runs, minilm_runs

    cfg = SCALES[check_scale(scale)]
    extra = {"targets": cfg["targets"]} if cfg["targets"] else {}
    method = "wanda" if broken == "wanda-twice" else "dsnot"
    tags = [(arm, level) for arm in ("wanda", "dsnot") for level in LEVELS]
    settings = [Setting("wanda" if arm == "wanda" else method, level, config=extra) for arm, level in tags]
    metrics: dict[str, float] = {}
    checks: dict[str, tuple[str | float, str, str | float]] = {}
    sanity: dict[str, tuple[str | float, str, str | float]] = {}
    paper: dict[str, str] = {}
    rows = minilm_runs(
        settings,
        samples=cfg["samples"],
        seq_len=cfg["seq_len"],
        sentences=cfg["sentences"],
        seed=seed,
        sample_sentences=True,
        heldout=cfg["samples"],
    )
    for (arm, level), row in zip(tags, rows[1:], strict=True):
        tag = f"{arm}_{round(level * 100)}"
        metrics[f"minilm_cosine_{tag}"] = row["cosine"]
        metrics[f"minilm_heldout_error_{tag}"] = row["heldout_error"]
        metrics[f"minilm_calibration_error_{tag}"] = row["mean_error"]
        metrics[f"minilm_sparsity_{tag}"] = row["achieved_sparsity"]
        sanity[f"minilm_sparsity_{tag}_low"] = (f"minilm_sparsity_{tag}", ">=", level - SPARSITY_TOLERANCE)
        sanity[f"minilm_sparsity_{tag}_high"] = (f"minilm_sparsity_{tag}", "<=", level + SPARSITY_TOLERANCE)
    for level in LEVELS:
        pct = round(level * 100)
        checks[f"minilm_dsnot_beats_wanda_{pct}"] = (
            f"minilm_cosine_dsnot_{pct}",
            ">",
            f"minilm_cosine_wanda_{pct}",
        )
        checks[f"minilm_dsnot_heldout_error_{pct}"] = (
            f"minilm_heldout_error_dsnot_{pct}",
            "<",
            f"minilm_heldout_error_wanda_{pct}",
        )
        paper[f"minilm_dsnot_beats_wanda_{pct}"] = PAPER[pct]
        paper[f"minilm_dsnot_heldout_error_{pct}"] = PAPER[pct]
    if cfg["gpt"]:
        rows = gpt_runs(settings, samples=cfg["samples"], seq_len=cfg["seq_len"], seed=seed)
        metrics["gpt_perplexity_dense"] = rows[0]["perplexity"]
        for (arm, level), row in zip(tags, rows[1:], strict=True):
            tag = f"{arm}_{round(level * 100)}"
            metrics[f"gpt_perplexity_{tag}"] = row["perplexity"]
            metrics[f"gpt_sparsity_{tag}"] = row["achieved_sparsity"]
            sanity[f"gpt_sparsity_{tag}_low"] = (f"gpt_sparsity_{tag}", ">=", level - SPARSITY_TOLERANCE)
            sanity[f"gpt_sparsity_{tag}_high"] = (f"gpt_sparsity_{tag}", "<=", level + SPARSITY_TOLERANCE)
        for level in LEVELS:
            pct = round(level * 100)
            checks[f"gpt_dsnot_beats_wanda_{pct}"] = (
                f"gpt_perplexity_dsnot_{pct}",
                "<",
                f"gpt_perplexity_wanda_{pct}",
            )
            paper[f"gpt_dsnot_beats_wanda_{pct}"] = PAPER[pct]
    note = (
        f"{scale}, seed {seed}: wanda vs dsnot (defaults: max_cycle_time=50, update_threshold=0.1) at 60/70%; "
        "MiniLM embedding cosine to dense on sampled held-out docstring sentences and layer-wise "
        "reconstruction error on held-out test-split windows"
        + ("; GPT perplexity on held-out Shakespeare works" if cfg["gpt"] else "")
        + (f"; broken arm {broken!r}" if broken else "")
    )
    return Result.from_comparisons(metrics, checks=checks, sanity=sanity, paper=paper, note=note)
