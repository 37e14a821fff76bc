"""Reproduction of `graph-of-tokens-moe`: similarity- and attention-aware routing vs softmax top-k.

Claim: routing a token with the routing of similar tokens (a similarity graph, or the attention
matrix) lowers the entropy of expert selection, reduces routing fluctuation late in training and
enhances accuracy over the softmax-gated MoE. Measured on the tiny byte-level MoE GPT (8 experts,
top-2, MoE in every layer, dropless) trained on Shakespeare, three runs from the same `seed` (model
initialisation and batch order):

- `topk`: top-k (softmax over the chosen logits) + balance loss 1e-2 + z-loss 1e-3;
- `similarity`: the `similarity-aware` gate (cosine graph, tau = 0.1) with the same aux losses;
- `attention`: the `attention-aware` gate (the block's own causal attention, heads averaged).

All models are built by `graph_moe_gpt`, so each MoE gets its sequence layout and attention matrix.
Routing fluctuation: the share of (held-out token, layer) pairs whose set of k experts differs
between the checkpoint at 80% of training and the final one (`routing_fluctuation`), in eval mode.
Entropy: the mean per-token entropy (nats) of the routing distribution each gate ranks experts by
(`p` for top-k, the smoothed `q` for the graph gates), on the same held-out windows at the end.
Accuracy: held-out perplexity (lower is better), the language-model counterpart of the paper's accuracy.

Scales as the `ssr` reproduction: `tiny` (d=32, 2 layers, 40 steps of 8 x 32), `small` (d=64, 4 layers,
300 steps of 16 x 64), `full` (d=128, 4 layers, 1500 steps of 32 x 128).

Claim checks, for each graph gate G in (similarity, attention), all strict against top-k:

- `G_fluctuates_less`: G's fluctuation < top-k's (paper: "significant improvements in reducing
  routing fluctuations");
- `G_lower_entropy`: G's routing entropy < top-k's (paper: proven to reduce the entropy of expert
  selection);
- `G_lower_perplexity`: G's held-out perplexity < top-k's (paper: "enhancing accuracy" over the
  softmax-gated MoE-Transformer; no margin: better, as stated).

No sanity checks: every comparison is a claim. Broken arm: `topk-twice` (the top-k gate in place of
both graph gates, same seed: identical numbers, so every strict check fails).

Deviations: the paper's similarity graph is our parameter-free reading (causal cosine softmax,
tau = 0.1); robustness to corrupted inputs is not measured; the paper's models and benchmarks
(vision and language at scale) are replaced by the tiny byte-level model.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

import torch

from sparsetorch.papers.base import BrokenArm, Result, check_scale

__all__ = ["BROKEN_ARMS", "RUNS", "SCALES", "reproduce"]

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

BROKEN_ARMS = {
    "topk-twice": BrokenArm(
        "the top-k gate in place of both graph gates, same seed (identical numbers)",
        fails=tuple(
            f"{g}_{c}"
            for g in ("similarity", "attention")
            for c in ("fluctuates_less", "lower_entropy", "lower_perplexity")
        ),
    ),
}

CHECKPOINT = 0.8  # the earlier checkpoint, as a fraction of training


def _run(
    name: str, cfg: dict[str, Any], text: tuple[str, str] | None, seed: int, broken: str | None
) -> dict[str, float]:
    from sparsetorch.data.shakespeare import shakespeare_windows
    from sparsetorch.models.gpt import GPTConfig
    from sparsetorch.models.moe_gpt import MoEGPTConfig
    from sparsetorch.models.moe_variants import graph_moe_gpt
    from sparsetorch.routing.monitor import capture_routing, routing_fluctuation
    from sparsetorch.training.lm import evaluate_lm, fit_lm, spaced_windows

    gate, gate_kwargs = RUNS["topk" if broken == "topk-twice" else name]
    gpt = GPTConfig(
        d_model=cfg["d_model"], n_layer=cfg["n_layer"], n_head=cfg["n_head"], block_size=cfg["block_size"]
    )
    model = graph_moe_gpt(
        MoEGPTConfig(gpt=gpt, num_experts=8, k=2, gate=gate, gate_kwargs=gate_kwargs, seed=seed)
    )
    train, val = shakespeare_windows(cfg["block_size"], text=text)
    probe = spaced_windows(val, cfg["windows"])[:, :-1]  # held-out inputs (n, T) for routing probes
    at = max(1, round(CHECKPOINT * cfg["steps"]))  # steps done at the earlier checkpoint
    early: dict[str, torch.Tensor] = {}

    def checkpoint(steps_done: int, model: torch.nn.Module) -> None:  # in eval mode
        early.update(capture_routing(model, probe))

    fit_lm(
        model, train, steps=cfg["steps"], batch_size=cfg["batch"], seed=seed, on_eval=checkpoint, eval_at=[at]
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


def reproduce(
    scale: str, *, seed: int = 0, broken: str | None = None, text: tuple[str, str] | None = None
) -> Result:
    """Train the three runs at `scale` from `seed` and compare them (see the module docstring).

    `broken` names one of `BROKEN_ARMS`; `text` = (train, val) replaces the Shakespeare corpus.
    """
    check_scale(scale)
    cfg = SCALES[scale]
    m: dict[str, float] = {}
    with torch.random.fork_rng(devices=[]):
        for name in RUNS:
            m.update(_run(name, cfg, text, seed, broken))
    checks: dict[str, tuple[str, str, float | str]] = {}
    for name in ("similarity", "attention"):
        checks[f"{name}_fluctuates_less"] = (f"{name}_fluctuation", "<", "topk_fluctuation")
        checks[f"{name}_lower_entropy"] = (f"{name}_entropy", "<", "topk_entropy")
        checks[f"{name}_lower_perplexity"] = (f"{name}_val_perplexity", "<", "topk_val_perplexity")
    paper = {}
    for name in ("similarity", "attention"):
        paper[f"{name}_fluctuates_less"] = (
            "significant reductions in routing fluctuation over softmax-gated SMoE (abstract)"
        )
        paper[f"{name}_lower_entropy"] = (
            "proven to reduce the entropy of expert selection (abstract, theorem)"
        )
        paper[f"{name}_lower_perplexity"] = (
            "enhancing accuracy over the softmax-gated MoE-Transformer (abstract)"
        )
    note = (
        f"{scale}, seed {seed}: MoE GPT d={cfg['d_model']}, {cfg['n_layer']} layers, 8 experts top-2 in every layer "
        f"(dropless, balance 1e-2, z 1e-3), {cfg['steps']} steps of {cfg['batch']} x {cfg['block_size']} "
        f"Shakespeare bytes; fluctuation between the checkpoints at {CHECKPOINT:.0%} and 100% of training "
        f"on {cfg['windows']} held-out windows (eval mode). Similarity graph: causal cosine softmax, tau=0.1 "
        "(our parameter-free reading); attention graph: the block's causal attention, heads averaged."
    )
    if broken is not None:
        note += f" BROKEN ARM {broken!r}: {BROKEN_ARMS[broken].description}."
    if text is not None:
        note += " Text: caller-supplied, not the Shakespeare corpus."
    return Result.from_comparisons(m, checks=checks, paper=paper, note=note)
