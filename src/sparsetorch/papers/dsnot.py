"""Reproduction of `dsnot`: does DSnoT improve on its Wanda starting point at 60-70% sparsity?

Measured on real weights and real text (`sparsetorch.papers.pruning_experiments`):
- all-MiniLM-L6-v2, calibrated on stdlib docstrings, scored by the cosine fidelity of sentence
  embeddings on held-out sentences (higher is better);
- at `small` and `full` scale also the Shakespeare tiny GPT, scored by held-out perplexity.

The claim holds when DSnoT beats Wanda on every measured model at both 60% and 70%.
Scales: `tiny` (seconds; the first encoder layer only, 8 windows of 32 tokens, 64 sentences), `small` (128 windows of 128
tokens, 512 sentences, plus the GPT), `full` (256 windows, all held-out sentences).
"""

from __future__ import annotations

from sparsetorch.papers.base import Result

LEVELS = (0.6, 0.7)
SCALES = {
    "tiny": {"samples": 8, "seq_len": 32, "sentences": 64, "gpt": False, "targets": "encoder.layer.0.*"},
    "small": {"samples": 128, "seq_len": 128, "sentences": 512, "gpt": True, "targets": None},
    "full": {"samples": 256, "seq_len": 128, "sentences": 100_000, "gpt": True, "targets": None},
}


def reproduce(scale: str) -> Result:
    from sparsetorch.papers.pruning_experiments import Setting, gpt_runs, minilm_runs

    cfg = SCALES[scale]
    extra = {"targets": cfg["targets"]} if cfg["targets"] else {}
    settings = [Setting(method, level, config=extra) for method in ("wanda", "dsnot") for level in LEVELS]
    metrics: dict[str, float] = {}
    checks: dict[str, tuple[str, str, str]] = {}
    rows = minilm_runs(settings, samples=cfg["samples"], seq_len=cfg["seq_len"], sentences=cfg["sentences"])
    for row in rows[1:]:
        tag = f"{row['method']}_{round(row['sparsity'] * 100)}"
        metrics[f"minilm_cosine_{tag}"] = row["cosine"]
        metrics[f"minilm_error_{tag}"] = row["mean_error"]
    for level in LEVELS:
        pct = round(level * 100)
        checks[f"minilm_dsnot_beats_wanda_{pct}"] = (
            f"minilm_cosine_dsnot_{pct}",
            ">",
            f"minilm_cosine_wanda_{pct}",
        )
    if cfg["gpt"]:
        rows = gpt_runs(settings, samples=cfg["samples"], seq_len=cfg["seq_len"])
        metrics["gpt_perplexity_dense"] = rows[0]["perplexity"]
        for row in rows[1:]:
            metrics[f"gpt_perplexity_{row['method']}_{round(row['sparsity'] * 100)}"] = row["perplexity"]
        for level in LEVELS:
            pct = round(level * 100)
            checks[f"gpt_dsnot_beats_wanda_{pct}"] = (
                f"gpt_perplexity_dsnot_{pct}",
                "<",
                f"gpt_perplexity_wanda_{pct}",
            )
    note = (
        f"{scale}: wanda vs dsnot (defaults: max_cycle_time=50, update_threshold=0.1 per token) at 60/70%; "
        "MiniLM embedding cosine to dense on held-out docstring sentences"
        + ("; GPT perplexity on held-out Shakespeare works" if cfg["gpt"] else "")
    )
    return Result.from_comparisons(metrics, checks=checks, note=note)
