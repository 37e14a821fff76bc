"""Reproduction of `icbs`: lower reconstruction error than Wanda at equal density, better with iterations.

Measured on all-MiniLM-L6-v2 (real weights) calibrated on stdlib docstrings: the mean relative
reconstruction error ||WX - W'X|| / ||WX|| over its 36 pruned layers, and the embedding cosine
fidelity on held-out sentences, for Wanda and iCBS (1 and 5 iterations) at 50% and 2:4. The claim
holds when iCBS with 5 iterations has a lower error than Wanda at both densities, and 5
iterations are no worse than 1. Scales: `tiny` (the first attention block only, 8 windows of 32
tokens), `small` (all layers, 128 windows of 128 tokens, 512 sentences), `full` (256 windows).
"""

from __future__ import annotations

from sparsetorch.papers.base import Result

SCALES = {
    "tiny": {"samples": 8, "seq_len": 32, "sentences": 64, "targets": "encoder.layer.0.attention.*"},
    "small": {"samples": 128, "seq_len": 128, "sentences": 512, "targets": None},
    "full": {"samples": 256, "seq_len": 128, "sentences": 100_000, "targets": None},
}


def reproduce(scale: str) -> Result:
    from sparsetorch.papers.pruning_experiments import Setting, minilm_runs

    cfg = SCALES[scale]
    extra = {"targets": cfg["targets"]} if cfg["targets"] else {}
    settings = [
        Setting(method, sparsity, pattern, {**config, **extra})
        for sparsity, pattern in ((0.5, "unstructured"), (None, "2:4"))
        for method, config in (("wanda", {}), ("icbs", {"iterations": 1}), ("icbs", {"iterations": 5}))
    ]
    rows = minilm_runs(settings, samples=cfg["samples"], seq_len=cfg["seq_len"], sentences=cfg["sentences"])
    metrics: dict[str, float] = {}
    for row in rows[1:]:
        level = "2of4" if row["pattern"] == "2:4" else "50"
        its = row["config"].get("iterations")
        tag = f"{row['method']}{its or ''}_{level}"
        metrics[f"error_{tag}"] = row["mean_error"]
        metrics[f"cosine_{tag}"] = row["cosine"]
        metrics[f"seconds_{tag}"] = row["seconds"]
    checks = {}
    for level in ("50", "2of4"):
        checks[f"icbs_beats_wanda_{level}"] = (f"error_icbs5_{level}", "<", f"error_wanda_{level}")
        checks[f"more_iterations_help_{level}"] = (f"error_icbs5_{level}", "<=", f"error_icbs1_{level}")
    note = f"{scale}: MiniLM mean layer reconstruction error, wanda vs icbs (1 and 5 iterations)"
    return Result.from_comparisons(metrics, checks=checks, note=note)
