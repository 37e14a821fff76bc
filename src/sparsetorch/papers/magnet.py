"""Reproduction of `magnet` (its routing regime only): entropy-triggered two-stage routing vs a fixed one.

Claim (routing part of the abstract): monitoring routing entropy and moving training from a
coverage-oriented regime to a specialization-oriented one balances expert utilization early and
raises routing confidence later. The paper's multimodal recommendation model (dual-view graphs,
modality-role experts) is out of scope; the schedule is tested on the tiny byte-level MoE GPT
(8 experts, top-2, MoE in every layer, dropless) trained on Shakespeare, two runs from the same seed
and batches:

- `fixed`: top-k, temperature 1, balance loss 1e-2, z-loss 1e-3, throughout;
- `magnet`: the same model under `EntropyTriggeredSchedule` (coverage: tau 2, balance 5e-2, entropy
  bonus 1e-2; specialization: tau 1, balance 1e-3, entropy penalty 1e-2; trigger: EMA utilization
  entropy >= 0.95 for 10 steps, at the latest after half of training).

Utilization = `H(load shares) / log E` (1 = balanced); confidence = `1 - H(p) / log E` (mean per-token
router entropy, 0 = uniform routing), both per step averaged over layers; "early" = the first 30% of
steps, "late" = the last 20%. Checks: magnet's early utilization >= fixed's; the trigger fired; magnet's
late confidence > fixed's; magnet's late utilization >= 0.9 (no collapse); held-out perplexity within 5%.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

import torch

from sparsetorch.papers.base import Result, check_scale

__all__ = ["SCALES", "reproduce"]

SCALES: dict[str, dict[str, Any]] = {
    "tiny": {"d_model": 32, "n_layer": 2, "n_head": 2, "block_size": 32, "batch": 8, "steps": 40, "windows": 32},
    "small": {"d_model": 64, "n_layer": 4, "n_head": 4, "block_size": 64, "batch": 16, "steps": 300, "windows": 128},
    "full": {"d_model": 128, "n_layer": 4, "n_head": 4, "block_size": 128, "batch": 32, "steps": 1500, "windows": 256},
}  # fmt: skip


def _run(name: str, cfg: dict[str, Any], text: tuple[str, str] | None) -> dict[str, float]:
    from sparsetorch.data.shakespeare import shakespeare_windows
    from sparsetorch.models.gpt import GPTConfig
    from sparsetorch.models.moe_gpt import MoEGPT, MoEGPTConfig
    from sparsetorch.routing.magnet import EntropyTriggeredSchedule, MagnetConfig, RouterPhase
    from sparsetorch.training.lm import evaluate_lm, fit_lm

    gpt = GPTConfig(
        d_model=cfg["d_model"], n_layer=cfg["n_layer"], n_head=cfg["n_head"], block_size=cfg["block_size"]
    )
    model = MoEGPT(MoEGPTConfig(gpt=gpt, num_experts=8, k=2, seed=0))
    steps = cfg["steps"]
    if name == "magnet":
        config = MagnetConfig(max_coverage_steps=steps // 2)
    else:  # the fixed regime, monitored by the same object
        phase = RouterPhase(1.0, 1e-2, 0.0)
        config = MagnetConfig(coverage=phase, specialization=phase, max_coverage_steps=0)
    schedule = EntropyTriggeredSchedule(8, config).attach(model)
    train, val = shakespeare_windows(cfg["block_size"], text=text)
    fit_lm(
        model,
        train,
        steps=steps,
        batch_size=cfg["batch"],
        seed=0,
        extra_loss=lambda step, out: schedule.extra_loss(out.aux),  # the phase's aux terms
        on_step=lambda step: schedule.step(step.output.aux),  # the entropy trigger
    )
    val_loss = evaluate_lm(model, val, num_windows=cfg["windows"], batch_size=cfg["batch"])["loss"]
    hist = schedule.history
    early, late = hist[: max(1, round(0.3 * steps))], hist[-max(1, round(0.2 * steps)) :]

    def mean(rows: list[dict[str, float]], key: str) -> float:
        return statistics.fmean(r[key] for r in rows)

    m = {
        f"{name}_early_utilization": mean(early, "utilization"),
        f"{name}_late_utilization": mean(late, "utilization"),
        f"{name}_early_confidence": mean(early, "confidence"),
        f"{name}_late_confidence": mean(late, "confidence"),
        f"{name}_val_perplexity": math.exp(val_loss),
    }
    if name == "magnet":
        m["magnet_switch_step"] = float(steps if schedule.switched_at is None else schedule.switched_at)
    return m


def reproduce(scale: str, *, text: tuple[str, str] | None = None) -> Result:
    """Train the fixed and the scheduled run at `scale` and compare them (see the module docstring)."""
    check_scale(scale)
    cfg = SCALES[scale]
    m: dict[str, float] = {"steps": float(cfg["steps"])}
    with torch.random.fork_rng(devices=[]):
        for name in ("fixed", "magnet"):
            m.update(_run(name, cfg, text))
    checks = {
        "coverage_phase_spreads_load": ("magnet_early_utilization", ">=", "fixed_early_utilization"),
        "trigger_fired": ("magnet_switch_step", "<", "steps"),
        "specialization_more_confident": ("magnet_late_confidence", ">", "fixed_late_confidence"),
        "no_collapse_late": ("magnet_late_utilization", ">=", 0.9),
        "perplexity_within_5pct": ("magnet_val_perplexity", "<=", 1.05 * m["fixed_val_perplexity"]),
    }
    note = (
        f"{scale}: MoE GPT d={cfg['d_model']}, {cfg['n_layer']} layers, 8 experts top-2 in every layer "
        f"(dropless), {cfg['steps']} steps of {cfg['batch']} x {cfg['block_size']} Shakespeare bytes. Only the "
        "entropy-triggered routing regime of MAGNET is reproduced (our reading: temperature / balance / "
        "entropy-bonus phases, utilization-entropy trigger); its multimodal recommendation graph is out of scope."
    )
    if text is not None:
        note += " Text: caller-supplied, not the Shakespeare corpus."
    return Result.from_comparisons(m, checks=checks, note=note)
