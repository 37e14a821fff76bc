"""Reproduction of `graph-of-tokens-moe`: similarity- and attention-aware routing vs softmax top-k.

Claim: routing a token with the routing of similar tokens (a similarity graph, or the attention
matrix) lowers the entropy of expert selection and the routing fluctuation late in training, without
hurting accuracy. Measured on the tiny byte-level MoE GPT (8 experts, top-2, MoE in every layer,
dropless) trained on Shakespeare, three runs from the same seed and batches:

- `topk`: top-k (softmax over the chosen logits) + balance loss 1e-2 + z-loss 1e-3;
- `similarity`: the `similarity-aware` gate (cosine graph, tau = 0.1) with the same aux losses;
- `attention`: the `attention-aware` gate (the block's own causal attention, heads averaged).

All models are built by `graph_moe_gpt`, so each MoE gets its sequence layout and attention matrix.
Routing fluctuation: the share of (held-out token, layer) pairs whose set of k experts differs
between the checkpoint at 80% of training and the final one (`routing_fluctuation`), in eval mode.
Entropy: the mean per-token entropy (nats) of the routing distribution each gate ranks experts by
(`p` for top-k, the smoothed `q` for the graph gates), on the same held-out windows at the end.

Checks: each graph gate fluctuates less than top-k, has lower routing entropy than top-k, and its
held-out perplexity is within 5% of top-k's. Scales as the `ssr` reproduction: `tiny` (d=32, 2 layers,
40 steps), `small` (d=64, 4 layers, 300 steps of 16 x 64), `full` (d=128, 4 layers, 1500 steps).
"""

from __future__ import annotations

import math
import statistics
from typing import Any

import torch

from sparsetorch.papers.base import Result, check_scale

__all__ = ["RUNS", "SCALES", "reproduce"]

SCALES: dict[str, dict[str, Any]] = {
    "tiny": {"d_model": 32, "n_layer": 2, "n_head": 2, "block_size": 32, "batch": 8, "steps": 40, "windows": 32},
    "small": {"d_model": 64, "n_layer": 4, "n_head": 4, "block_size": 64, "batch": 16, "steps": 300, "windows": 128},
    "full": {"d_model": 128, "n_layer": 4, "n_head": 4, "block_size": 128, "batch": 32, "steps": 1500, "windows": 256},
}  # fmt: skip

RUNS: dict[str, tuple[str, dict[str, Any]]] = {
    "topk": ("top-k", {}),
    "similarity": ("similarity-aware", {"temperature": 0.1}),
    "attention": ("attention-aware", {}),
}

CHECKPOINT = 0.8  # the earlier checkpoint, as a fraction of training


def _run(name: str, cfg: dict[str, Any], text: tuple[str, str] | None) -> dict[str, float]:
    from sparsetorch.data.shakespeare import shakespeare_windows
    from sparsetorch.models.gpt import GPTConfig
    from sparsetorch.models.moe_gpt import MoEGPTConfig
    from sparsetorch.models.moe_variants import graph_moe_gpt
    from sparsetorch.routing.monitor import capture_routing, routing_fluctuation
    from sparsetorch.training.lm import evaluate_lm, fit_lm, spaced_windows

    gate, gate_kwargs = RUNS[name]
    gpt = GPTConfig(
        d_model=cfg["d_model"], n_layer=cfg["n_layer"], n_head=cfg["n_head"], block_size=cfg["block_size"]
    )
    model = graph_moe_gpt(
        MoEGPTConfig(gpt=gpt, num_experts=8, k=2, gate=gate, gate_kwargs=gate_kwargs, seed=0)
    )
    train, val = shakespeare_windows(cfg["block_size"], text=text)
    probe = spaced_windows(val, cfg["windows"])[:, :-1]  # held-out inputs (n, T) for routing probes
    at = max(1, round(CHECKPOINT * cfg["steps"]))  # steps done at the earlier checkpoint
    early: dict[str, torch.Tensor] = {}

    def checkpoint(steps_done: int, model: torch.nn.Module) -> None:  # in eval mode
        early.update(capture_routing(model, probe))

    fit_lm(
        model, train, steps=cfg["steps"], batch_size=cfg["batch"], seed=0, on_eval=checkpoint, eval_at=[at]
    )
    model.eval()  # routing is read as at inference (fit_lm leaves the model in the mode it found)
    late = capture_routing(model, probe)
    fluct = [float(routing_fluctuation(early[layer], late[layer])) for layer in late]
    with torch.no_grad():
        aux = model(probe).aux
    entropy = statistics.fmean(float(v["entropy"]) for v in aux.values())
    val_loss = evaluate_lm(model, val, num_windows=cfg["windows"], batch_size=cfg["batch"])["loss"]
    return {
        f"{name}_fluctuation": statistics.fmean(fluct),
        f"{name}_entropy": entropy,
        f"{name}_val_perplexity": math.exp(val_loss),
    }


def reproduce(scale: str, *, text: tuple[str, str] | None = None) -> Result:
    """Train the three runs at `scale` and compare them (see the module docstring).

    `text` = (train, val) replaces the Shakespeare corpus (tests without the data).
    """
    check_scale(scale)
    cfg = SCALES[scale]
    m: dict[str, float] = {}
    with torch.random.fork_rng(devices=[]):
        for name in RUNS:
            m.update(_run(name, cfg, text))
    checks: dict[str, tuple[str, str, float | str]] = {}
    for name in ("similarity", "attention"):
        checks[f"{name}_fluctuates_less"] = (f"{name}_fluctuation", "<", "topk_fluctuation")
        checks[f"{name}_lower_entropy"] = (f"{name}_entropy", "<", "topk_entropy")
        checks[f"{name}_perplexity_within_5pct"] = (
            f"{name}_val_perplexity",
            "<=",
            1.05 * m["topk_val_perplexity"],
        )
    note = (
        f"{scale}: MoE GPT d={cfg['d_model']}, {cfg['n_layer']} layers, 8 experts top-2 in every layer "
        f"(dropless, balance 1e-2, z 1e-3), {cfg['steps']} steps of {cfg['batch']} x {cfg['block_size']} "
        f"Shakespeare bytes; fluctuation between the checkpoints at {CHECKPOINT:.0%} and 100% of training "
        f"on {cfg['windows']} held-out windows (eval mode). Similarity graph: causal cosine softmax, tau=0.1 "
        "(our parameter-free reading); attention graph: the block's causal attention, heads averaged."
    )
    if text is not None:
        note += " Text: caller-supplied, not the Shakespeare corpus."
    return Result.from_comparisons(m, checks=checks, note=note)
