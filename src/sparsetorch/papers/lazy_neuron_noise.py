"""The label-noise part of `lazy-neuron`: is a Top-k Transformer more robust to noisy training labels?

Li et al. (2022) report that enforcing activation sparsity with a Top-k MLP activation makes a
ViT more robust to noisy training labels (and to input corruption, and better calibrated). Here,
at small scale, on Fashion-MNIST:

- a tiny ViT (7x7 patches -> 16 tokens, pre-LayerNorm blocks, mean-pooled head) whose MLP
  activation is either ReLU or Top-k of ReLU (`sparsetorch.activations.TopK`, k = hidden / 16,
  the paper's ViT ratio of k = 128 or 256 of 3072 rounded to the nearest power of two);
- symmetric label noise: a seeded `NOISE` fraction of the training labels is replaced by a class
  drawn uniformly from the other nine (so exactly that fraction is wrong);
- the same seeds, batches, optimizer (AdamW 1e-3, weight decay 0.05, cosine) and epochs for both.

Measured, for one `seed` (the bench repeats seeds): clean-test accuracy, and memorization: the share
of the noisy training examples whose *wrong* label the model predicts at the end (lower = more
robust). The seed draws the noisy labels, the initialization (identical for both arms) and the batch
order; the training and test images are the first `train` / `test` of their splits.

Deviations: a 0.1M-parameter ViT on Fashion-MNIST for minutes instead of ViT-B/16 on ImageNet /
CIFAR for days; a fixed `NOISE` = 40% only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["NOISE", "SCALES", "TinyViT", "label_noise_metrics", "noisy_labels"]

NOISE = 0.4
SCALES: dict[str, dict[str, Any]] = {
    "tiny": {"train": 1024, "test": 1000, "epochs": 2, "d": 32, "layers": 1},
    "small": {"train": 5000, "test": 10000, "epochs": 15, "d": 64, "layers": 2},
    "full": {"train": 20000, "test": 10000, "epochs": 40, "d": 64, "layers": 4},
}  # fmt: skip
BATCH, LR, WEIGHT_DECAY, HEADS, PATCH = 128, 1e-3, 0.05, 4, 7


class _Block(nn.Module):
    def __init__(self, d: int, act: nn.Module) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, HEADS, batch_first=True)
        self.fc1, self.act, self.fc2 = nn.Linear(d, 4 * d), act, nn.Linear(4 * d, d)

    def forward(self, x: Tensor) -> Tensor:
        h = self.ln1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.fc2(self.act(self.fc1(self.ln2(x))))


class TinyViT(nn.Module):
    """A ViT for 28x28 images: 16 patch tokens of 7x7, `layers` blocks with MLP activation `act()`."""

    def __init__(self, *, d: int, layers: int, act: Callable[[], nn.Module], classes: int = 10) -> None:
        super().__init__()
        self.embed = nn.Linear(PATCH * PATCH, d)
        self.pos = nn.Parameter(torch.zeros(1, (28 // PATCH) ** 2, d))
        self.blocks = nn.Sequential(*(_Block(d, act()) for _ in range(layers)))
        self.norm, self.head = nn.LayerNorm(d), nn.Linear(d, classes)

    def forward(self, x: Tensor) -> Tensor:
        b = x.shape[0]
        patches = x.unfold(2, PATCH, PATCH).unfold(3, PATCH, PATCH)  # (B, 1, 4, 4, 7, 7)
        tokens = patches.reshape(b, -1, PATCH * PATCH)  # (B, 16, 49)
        h = self.blocks(self.embed(tokens) + self.pos)
        return self.head(self.norm(h).mean(dim=1))


def noisy_labels(y: Tensor, fraction: float, *, generator: torch.Generator, classes: int = 10) -> Tensor:
    """A copy of `y` in which exactly `round(fraction * len(y))` labels are changed to another class."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"label-noise fraction must be in [0, 1], got {fraction}")
    flip = torch.randperm(len(y), generator=generator)[: round(fraction * len(y))]
    shift = torch.randint(1, classes, (len(flip),), generator=generator)  # never the true class
    out = y.clone()
    out[flip] = (y[flip] + shift) % classes
    return out


def _train(model: nn.Module, x: Tensor, y: Tensor, *, epochs: int, seed: int) -> None:
    """`training.fit`: AdamW, cosine to 0 per step, batches of `BATCH` in seeded epochs."""
    from sparsetorch.training.fit import fit

    def adamw(params: Any) -> torch.optim.Optimizer:
        return torch.optim.AdamW(params, lr=LR, weight_decay=WEIGHT_DECAY)

    fit(model, None, (x, y), epochs=epochs, optimizer=adamw, batch_size=BATCH, seed=seed, progress=False)


@torch.no_grad()
def _predict(model: nn.Module, x: Tensor) -> Tensor:
    model.eval()
    return torch.cat([model(chunk).argmax(dim=1) for chunk in x.split(1000)])


def label_noise_metrics(
    scale: str, *, seed: int = 0, topk: bool = True
) -> tuple[dict[str, float], dict[str, tuple[str, str, str]], str]:
    """Train ReLU and Top-k tiny ViTs on noisy labels at `scale` and `seed`; metrics, checks and a note.

    `topk=False` is a broken arm: the Top-k arm uses ReLU too, so the two arms are the same run.
    """
    from sparsetorch.activations.topk import TopK
    from sparsetorch.data import load_fashion_mnist

    cfg = SCALES[scale]
    train_x, train_y = (t[: cfg["train"]] for t in load_fashion_mnist("train").tensors)
    test_x, test_y = (t[: cfg["test"]] for t in load_fashion_mnist("test").tensors)
    k = 4 * cfg["d"] // 16
    arms = {"relu": nn.ReLU, "topk": (lambda: TopK(k, relu=True)) if topk else nn.ReLU}
    metrics: dict[str, float] = {"label_noise": NOISE, "noise_epochs": cfg["epochs"], "topk_k": k}
    noisy = noisy_labels(train_y, NOISE, generator=torch.Generator().manual_seed(1000 + seed))
    wrong = noisy != train_y
    for name, act in arms.items():
        with torch.random.fork_rng(devices=[]):  # the initialisation, identical for both arms
            torch.manual_seed(seed)
            model = TinyViT(d=cfg["d"], layers=cfg["layers"], act=act)
        _train(model, train_x, noisy, epochs=cfg["epochs"], seed=seed)
        metrics[f"noisy_{name}_test_accuracy"] = float((_predict(model, test_x) == test_y).float().mean())
        metrics[f"noisy_{name}_memorized"] = float(
            (_predict(model, train_x[wrong]) == noisy[wrong]).float().mean()
        )
    checks = {
        "topk_more_robust_to_label_noise": ("noisy_topk_test_accuracy", ">", "noisy_relu_test_accuracy")
    }
    note = (
        f" Label noise: tiny ViT (d={cfg['d']}, {cfg['layers']} block(s), MLP {4 * cfg['d']}, Top-{k}) on "
        f"{cfg['train']} Fashion-MNIST training images with {NOISE:.0%} symmetric noise, {cfg['epochs']} "
        f"epochs, seed {seed}; clean test accuracy on {cfg['test']} images."
    )
    return metrics, checks, note
