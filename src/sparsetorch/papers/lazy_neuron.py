"""Reproduction of `lazy-neuron`: do post-ReLU MLP activations of a Transformer become sparse in training?

Li et al. (2022), "The Lazy Neuron Phenomenon: On Emergence of Activation Sparsity in Transformers".
The paper trains T5 / ViT with ReLU MLPs and finds that only a few percent of the MLP activations of
each token are nonzero (3.0% T5-Base, 6.3% ViT-B/16), in every layer, emerging during training.

Here: the byte-level tiny GPT of `sparsetorch.models.gpt`, with its MLP activation GELU replaced by
ReLU, is trained from scratch on Shakespeare (train works; AdamW, warmup + cosine, weight decay 0.1
on matrices, as the `gpt-tiny` recipe). At evenly spaced steps we measure, with
`sparsetorch.activations.stats`, the percentage of nonzero MLP activations per token in every layer
on fixed held-out windows (val works), and the held-out loss. `seed` draws the initialization and
the batch order (of this GPT and of the label-noise ViTs below).

Claim checks (paper numbers in `paper=`):
- `sparsity_emerges_L<i>`, one per layer: the nonzero percentage at the end is strictly below its
  value at initialisation (~50% for a ReLU on symmetric pre-activations): sparsity *emerges* in
  training, in every layer (paper: "at layers of all depth levels");
- `few_nonzero_at_end`: the mean final nonzero percentage is at most 10%: "very few" nonzero
  entries, the paper's 3.0% (T5-Base) / 6.3% (ViT-B/16) with a margin for a model 100x smaller trained
  for minutes. It is checked at every scale and fails at `tiny` (60 steps are too few);
- `topk_more_robust_to_label_noise` (`lazy_neuron_noise`): with 40% noisy training labels a Top-k
  tiny ViT reaches strictly higher clean-test accuracy than the same ViT with ReLU (paper: Top-k
  Transformers are more robust to noisy training labels).

Sanity check: `model_learns` (final held-out loss at least 1 nat below the initial ln(256)-like loss).

Broken arms (`BROKEN_ARMS`): `gelu-in-place` (GELU in place of the GPT's ReLU: GELU is almost never
exactly zero, so the nonzero percentage stays ~100% from start to end) and `relu-twice` (the Top-k
ViT is the ReLU ViT, the same run twice: equal accuracies).

Deviations: a 0.2M-0.9M parameter decoder on bytes instead of T5 / ViT; training runs minutes, not
days. Of the paper's Top-k robustness claims, label noise is measured (ReLU vs Top-k tiny ViTs on
Fashion-MNIST with 40% noisy labels); input corruption and calibration are not.
Scales: `tiny` (seconds; 2 layers x 64 d, 60 steps), `small` (4 layers x 128 d, 800 steps of 16 x 128,
about 2.5 CPU minutes), `full` (the `gpt-tiny` recipe's 1500 steps of 32 x 128 tokens).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from sparsetorch.papers.base import BrokenArm, Result, check_scale
from sparsetorch.papers.lazy_neuron_noise import label_noise_metrics

SCALES: dict[str, dict[str, int]] = {
    "tiny": {
        "n_layer": 2,
        "d_model": 64,
        "block": 64,
        "batch": 8,
        "steps": 60,
        "warmup": 10,
        "evals": 4,
        "windows": 8,
    },
    "small": {
        "n_layer": 4,
        "d_model": 128,
        "block": 128,
        "batch": 16,
        "steps": 800,
        "warmup": 100,
        "evals": 5,
        "windows": 32,
    },
    "full": {
        "n_layer": 4,
        "d_model": 128,
        "block": 128,
        "batch": 32,
        "steps": 1500,
        "warmup": 100,
        "evals": 11,
        "windows": 128,
    },
}
SEED = 2022
LR, MIN_LR, WEIGHT_DECAY, GRAD_CLIP = 1e-3, 1e-4, 0.1, 1.0
FINAL_NONZERO_MAX_PCT = 10.0
BROKEN_ARMS = {
    "gelu-in-place": BrokenArm(
        "GELU in place of the GPT's ReLU: almost never exactly zero, so ~100% nonzero at start and end",
        # one emergence check per layer: tiny has 2 layers, small and full 4
        fails=(*(f"sparsity_emerges_L{i}" for i in range(4)), "few_nonzero_at_end"),
    ),
    "relu-twice": BrokenArm(
        "the Top-k ViT of the label-noise comparison is the ReLU ViT (same seed): the same run twice",
        fails=("topk_more_robust_to_label_noise",),
    ),
}


class ActMLP(nn.Module):
    """The tiny GPT's MLP (`fc1`, `fc2`, dropout reused) with a replaceable activation module `act`."""

    def __init__(self, mlp: nn.Module, act: nn.Module) -> None:
        super().__init__()
        self.fc1, self.fc2, self.drop = mlp.fc1, mlp.fc2, mlp.drop
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.act(self.fc1(x))))


def relu_gpt(
    *, n_layer: int, d_model: int, block: int, seed: int, act: Callable[[], nn.Module] = nn.ReLU
) -> nn.Module:
    """A tiny GPT whose MLPs use `act()` (one module per block, default ReLU); its activations are
    `blocks.*.mlp.act`."""
    from sparsetorch.models import create_model

    model = create_model(
        "gpt-tiny", seed=seed, n_layer=n_layer, d_model=d_model, n_head=4, block_size=block, dropout=0.0
    )
    for blk in model.blocks:
        blk.mlp = ActMLP(blk.mlp, act())
    return model


def train_and_measure(
    cfg: dict[str, int], *, seed: int = SEED, act: Callable[[], nn.Module] = nn.ReLU
) -> dict[str, list[float]]:
    """Train the ReLU GPT (or one with `act`) by `cfg`; return the eval steps, the loss and per-layer
    nonzero % at each."""
    from sparsetorch.activations.stats import ActivationSparsity
    from sparsetorch.data.shakespeare import shakespeare_windows
    from sparsetorch.training.lm import fit_lm, spaced_windows

    train, val = shakespeare_windows(cfg["block"])  # (N, block + 1) windows
    val_batch = spaced_windows(val, cfg["windows"])  # fixed held-out windows (windows, block + 1)
    model = relu_gpt(n_layer=cfg["n_layer"], d_model=cfg["d_model"], block=cfg["block"], seed=seed, act=act)
    steps = cfg["steps"]
    eval_at = sorted({round(i * steps / (cfg["evals"] - 1)) for i in range(cfg["evals"])})

    def evaluate(step: int, model: nn.Module) -> dict[str, float]:  # eval mode, no grad
        with ActivationSparsity(model, targets="blocks.*.mlp.act", keep_tokens=False) as rec:
            loss = model.loss(val_batch[:, :-1], val_batch[:, 1:])
        row = {"val_loss": float(loss)}
        for i, r in enumerate(rec.results().values()):
            row[f"nonzero_pct_L{i}"] = r.nonzero_percent
        return row

    log = fit_lm(
        model, train, steps=steps, batch_size=cfg["batch"], lr=LR, min_lr=MIN_LR, warmup_steps=cfg["warmup"],
        weight_decay=WEIGHT_DECAY, grad_clip=GRAD_CLIP, seed=seed, on_eval=evaluate, eval_at=eval_at,
    )  # fmt: skip
    return {key: [row[key] for row in log.evals] for key in log.evals[0]}  # the rows' `step` included


def reproduce(scale: str, *, seed: int = 0, broken: str | None = None) -> Result:
    """Train the ReLU GPT and the label-noise ViTs at `scale` and `seed` (see the module docstring)."""
    check_scale(scale)
    cfg = SCALES[scale]
    hist = train_and_measure(cfg, seed=SEED + seed, act=nn.GELU if broken == "gelu-in-place" else nn.ReLU)
    layers = [k for k in hist if k.startswith("nonzero_pct_L")]
    metrics: dict[str, float] = {
        "val_loss_init": hist["val_loss"][0],
        "val_loss_final": hist["val_loss"][-1],
    }
    for key in layers:
        for step, value in zip(hist["step"], hist[key], strict=True):
            metrics[f"{key}_step{int(step)}"] = value
        metrics[f"{key}_init"] = hist[key][0]
        metrics[f"{key}_final"] = hist[key][-1]
    metrics["nonzero_pct_final_mean"] = sum(hist[k][-1] for k in layers) / len(layers)
    metrics["nonzero_pct_init_mean"] = sum(hist[k][0] for k in layers) / len(layers)
    checks: dict[str, tuple[str | float, str, str | float]] = {}
    paper: dict[str, str] = {}
    for key in layers:
        name = f"sparsity_emerges_{key.removeprefix('nonzero_pct_')}"
        checks[name] = (f"{key}_final", "<", f"{key}_init")
        paper[name] = 'sparsity emerges in training "at layers of all depth levels" (abstract)'
    checks["few_nonzero_at_end"] = ("nonzero_pct_final_mean", "<=", FINAL_NONZERO_MAX_PCT)
    paper["few_nonzero_at_end"] = "3.0% nonzero for T5-Base, 6.3% for ViT-B/16 (abstract)"
    noise_metrics, noise_checks, noise_note = label_noise_metrics(
        scale, seed=seed, topk=broken != "relu-twice"
    )
    metrics.update(noise_metrics)
    checks.update(noise_checks)
    paper["topk_more_robust_to_label_noise"] = (
        "Top-k Transformers (small k) are more robust to noisy training labels (ViT experiments)"
    )
    sanity = {"model_learns": ("val_loss_final", "<=", metrics["val_loss_init"] - 1.0)}
    note = (
        f"{scale}, seed {seed}: ReLU tiny GPT ({cfg['n_layer']} layers x {cfg['d_model']} d, MLP 4x) trained "
        f"{cfg['steps']} steps of {cfg['batch']} x {cfg['block']} Shakespeare bytes; % nonzero MLP "
        f"activations per token and layer on {cfg['windows']} held-out windows at steps "
        f"{[int(s) for s in hist['step']]}." + noise_note + (f" BROKEN ARM {broken}." if broken else "")
    )
    return Result.from_comparisons(metrics, checks=checks, sanity=sanity, paper=paper, note=note)
