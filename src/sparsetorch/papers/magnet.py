"""Reproduction of `magnet` (its routing regime only): entropy-triggered two-stage routing vs a fixed one.

Claim (routing part of the abstract): a two-stage entropy-weighting mechanism that monitors routing
entropy "automatically transitions training from an early coverage-oriented regime to a later
specialization-oriented regime, progressively balancing expert utilization and routing confidence",
and prevents expert collapse. The paper's multimodal recommendation model (dual-view graphs,
modality-role experts) and its recommendation metrics are out of scope; the schedule is tested on the
tiny byte-level MoE GPT (8 experts, top-2, MoE in every layer, dropless) trained on Shakespeare, two
runs from the same `seed` (model initialisation and batch order):

- `fixed`: top-k, temperature 1, balance loss 1e-2, z-loss 1e-3, throughout;
- `magnet`: the same model under `EntropyTriggeredSchedule` (coverage: tau 2, balance 5e-2, entropy
  bonus 1e-2; specialization: tau 1, balance 1e-3, entropy penalty 1e-2; trigger: EMA utilization
  entropy >= 0.95 for 10 consecutive steps). There is no forced timeout: the switch happens only when
  the entropy trigger fires (`magnet_switched_by_trigger` = 1), else the run stays in coverage.

Utilization = `H(load shares) / log E` (1 = balanced); confidence = `1 - H(p) / log E` (mean per-token
router entropy, 0 = uniform routing), both per step averaged over layers; "early" = the first 30% of
steps, "late" = the last 20%.

Scales: `tiny` (d=32, 2 layers, 40 steps of 8 x 32 bytes; seconds), `small` (d=64, 4 layers, 300 steps
of 16 x 64), `full` (d=128, 4 layers, 1500 steps of 32 x 128).

Claim checks (the paper reports no number for the routing regime alone; its claims are qualitative):

- `coverage_phase_spreads_load`: magnet's early utilization > fixed's (strict: "balancing expert
  utilization" early);
- `trigger_fired`: the entropy trigger switched magnet to specialization within the run
  (`magnet_switch_step < steps`; "automatically transitions training");
- `specialization_more_confident`: magnet's late confidence > fixed's ("routing confidence" later);
- `no_collapse_late`: magnet's late utilization >= 0.9 ("prevent expert collapse"; 0.9 is our bar
  for "not collapsed": about 2 of 8 experts idle would give ~0.67).

Sanity check: `perplexity_within_5pct`, magnet's held-out perplexity <= 1.05 x fixed's (a guard that
the schedule does not wreck the language model; the paper's quality claim is about recommendation,
out of scope here).

Broken arms: `fixed-twice` (the fixed regime in magnet's place, same seed: identical numbers, so the
strict `>` checks fail); `trigger-never` (patience beyond the run length, so the trigger cannot fire);
`collapse` (a specialization phase that rewards confident routing 100x harder, with no balance loss,
switched on from the first step: the late load collapses).

Deviations: the paper's exact entropy weighting and trigger were not available (only its abstract);
the phases and the utilization-entropy trigger are our reading (see `sparsetorch.routing.magnet`).
"""

from __future__ import annotations

import math
import statistics
from typing import Any

import torch

from sparsetorch.papers.base import BrokenArm, Result, check_scale

__all__ = ["BROKEN_ARMS", "SCALES", "reproduce"]

SCALES: dict[str, dict[str, Any]] = {
    "tiny": {"d_model": 32, "n_layer": 2, "n_head": 2, "block_size": 32, "batch": 8, "steps": 40, "windows": 32},
    "small": {"d_model": 64, "n_layer": 4, "n_head": 4, "block_size": 64, "batch": 16, "steps": 300, "windows": 128},
    "full": {"d_model": 128, "n_layer": 4, "n_head": 4, "block_size": 128, "batch": 32, "steps": 1500, "windows": 256},
}  # fmt: skip

BROKEN_ARMS = {
    "fixed-twice": BrokenArm(
        "the fixed regime run in magnet's place with the same seed (identical numbers)",
        fails=("coverage_phase_spreads_load", "specialization_more_confident"),
    ),
    "trigger-never": BrokenArm(
        "the trigger's patience set beyond the run length, so the entropy trigger cannot fire",
        fails=("trigger_fired",),
    ),
    "collapse": BrokenArm(
        "specialization from the first step with no balance loss and an entropy penalty of 1 (100x)",
        fails=("no_collapse_late",),
    ),
}


def _run(
    name: str, cfg: dict[str, Any], text: tuple[str, str] | None, seed: int, broken: str | None
) -> dict[str, float]:
    from sparsetorch.data.shakespeare import shakespeare_windows
    from sparsetorch.models.gpt import GPTConfig
    from sparsetorch.models.moe_gpt import MoEGPT, MoEGPTConfig
    from sparsetorch.routing.magnet import EntropyTriggeredSchedule, MagnetConfig, RouterPhase
    from sparsetorch.training.lm import evaluate_lm, fit_lm

    gpt = GPTConfig(
        d_model=cfg["d_model"], n_layer=cfg["n_layer"], n_head=cfg["n_head"], block_size=cfg["block_size"]
    )
    model = MoEGPT(MoEGPTConfig(gpt=gpt, num_experts=8, k=2, seed=seed))
    steps = cfg["steps"]
    fixed = RouterPhase(1.0, 1e-2, 0.0)
    if name == "fixed" or broken == "fixed-twice":  # the fixed regime, monitored by the same object
        config = MagnetConfig(coverage=fixed, specialization=fixed, patience=steps + 1)
    elif broken == "trigger-never":
        config = MagnetConfig(patience=steps + 1)
    elif broken == "collapse":
        config = MagnetConfig(specialization=RouterPhase(1.0, 0.0, 1.0), max_coverage_steps=0)
    else:  # magnet: no forced timeout, only the entropy trigger switches
        config = MagnetConfig()
    schedule = EntropyTriggeredSchedule(8, config).attach(model)
    train, val = shakespeare_windows(cfg["block_size"], text=text)
    fit_lm(
        model,
        train,
        steps=steps,
        batch_size=cfg["batch"],
        seed=seed,
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
        switched = schedule.switched_at
        m["magnet_switch_step"] = float(steps if switched is None else switched)
        # without max_coverage_steps, only the trigger can switch (the `collapse` arm forces step 1)
        m["magnet_switched_by_trigger"] = float(switched is not None and config.max_coverage_steps is None)
    return m


def reproduce(
    scale: str, *, seed: int = 0, broken: str | None = None, text: tuple[str, str] | None = None
) -> Result:
    """Train the fixed and the scheduled run at `scale` from `seed` and compare them (see the module
    docstring). `broken` names one of `BROKEN_ARMS`; `text` = (train, val) replaces the corpus."""
    check_scale(scale)
    cfg = SCALES[scale]
    m: dict[str, float] = {"steps": float(cfg["steps"])}
    with torch.random.fork_rng(devices=[]):
        for name in ("fixed", "magnet"):
            m.update(_run(name, cfg, text, seed, broken))
    checks = {
        "coverage_phase_spreads_load": ("magnet_early_utilization", ">", "fixed_early_utilization"),
        "trigger_fired": ("magnet_switch_step", "<", "steps"),
        "specialization_more_confident": ("magnet_late_confidence", ">", "fixed_late_confidence"),
        "no_collapse_late": ("magnet_late_utilization", ">=", 0.9),
    }
    paper = {
        "coverage_phase_spreads_load": "an early coverage-oriented regime balances expert utilization "
        "(abstract; no number for the routing regime alone)",
        "trigger_fired": "the mechanism monitors routing entropy and automatically transitions training to "
        "specialization (abstract)",
        "specialization_more_confident": "a later specialization-oriented regime raises routing confidence "
        "(abstract)",
        "no_collapse_late": "the two-stage routing prevents expert collapse (abstract)",
    }
    sanity = {"perplexity_within_5pct": ("magnet_val_perplexity", "<=", 1.05 * m["fixed_val_perplexity"])}
    note = (
        f"{scale}, seed {seed}: MoE GPT d={cfg['d_model']}, {cfg['n_layer']} layers, 8 experts top-2 in every "
        f"layer (dropless), {cfg['steps']} steps of {cfg['batch']} x {cfg['block_size']} Shakespeare bytes. "
        "Only the entropy-triggered routing regime of MAGNET is reproduced (our reading: temperature / "
        "balance / entropy-bonus phases, utilization-entropy trigger, no forced timeout: "
        f"switched by the trigger = {bool(m['magnet_switched_by_trigger'])}); its multimodal recommendation "
        "graph is out of scope."
    )
    if broken is not None:
        note += f" BROKEN ARM {broken!r}: {BROKEN_ARMS[broken].description}."
    if text is not None:
        note += " Text: caller-supplied, not the Shakespeare corpus."
    return Result.from_comparisons(m, checks=checks, sanity=sanity, paper=paper, note=note)
