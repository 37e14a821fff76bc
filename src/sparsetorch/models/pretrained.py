"""Reference models trained once by a seeded recipe and cached as safetensors.

Pruning a randomly initialised network says little, so `pretrained(name)` returns a trained reference
model: the first call trains it by the registered recipe (`RECIPES`), later calls load
`<cache_dir>/models/<name>-<recipe hash>.safetensors`. The hash covers every recipe field (and
`RECIPE_FORMAT`, bumped when the training code changes results), so a changed recipe never loads a
stale file. Files are written atomically (temporary file, then `os.replace`): an interrupted training
leaves no half-written entry. Weights load with `safetensors` only (never pickle); the recipe and
its measured metrics (test accuracy, val loss / bits per byte) travel in the file's metadata and are
read by `pretrained_metrics(name)`.

Recipes (seeded, CPU, 2 threads):
- `lenet-300-100`: Fashion-MNIST, Adam lr 1e-3, batch 128, 3 epochs.
- `lenet-5`: Fashion-MNIST, Adam lr 1e-3, batch 128, 2 epochs.
- `gpt-tiny`: Shakespeare bytes (`load_shakespeare`, split by work), AdamW lr 1e-3 (100 warmup steps,
  cosine to 1e-4), weight decay 0.1 on matrices, grad clip 1.0, 1500 steps of 32 x 128 tokens.

Both recipes train on the substrate of `sparsetorch.training` (`train_steps`, `fit_lm`).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from sparsetorch._io import atomic_path
from sparsetorch.errors import SparsetorchError
from sparsetorch.evaluation import classification_metrics
from sparsetorch.models.registry import create_model
from sparsetorch.registry import Registry
from sparsetorch.training.fit import progress_bar
from sparsetorch.training.lm import evaluate_lm, fit_lm, lm_optimizer, warmup_cosine
from sparsetorch.training.loop import Loss, Step, epoch_batches, train_steps

__all__ = [
    "RECIPES",
    "RECIPE_FORMAT",
    "ClassifierRecipe",
    "CorruptCacheError",
    "LMRecipe",
    "cache_path",
    "lm_optimizer",  # re-exported: it lives in training.lm
    "pretrained",
    "pretrained_metrics",
    "recipe_hash",
    "train_reference",
    "warmup_cosine",
]

RECIPE_FORMAT = 1


def _freeze_config(recipe: Any) -> None:
    # A mapping field would make the frozen recipe unhashable: store sorted (key, value) pairs.
    object.__setattr__(recipe, "model_config", tuple(sorted(dict(recipe.model_config).items())))


@dataclass(frozen=True)
class ClassifierRecipe:
    """Supervised image classification on Fashion-MNIST (normalised inputs) with Adam."""

    model: str
    epochs: int = 3
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0
    max_steps: int | None = None  # cap on optimizer steps (tiny recipes for tests)
    model_config: Mapping[str, Any] = field(default_factory=dict)
    dataset: str = "fashion-mnist"

    def __post_init__(self) -> None:
        _freeze_config(self)
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0 or (self.max_steps or 1) < 1:
            raise ValueError("epochs, batch_size, lr and max_steps must be positive")
        if self.dataset != "fashion-mnist":
            raise ValueError(f"unsupported dataset {self.dataset!r}; only 'fashion-mnist'")


@dataclass(frozen=True)
class LMRecipe:
    """Byte-level next-token prediction on the Shakespeare corpus with AdamW and a cosine schedule."""

    model: str = "gpt-tiny"
    steps: int = 1500
    batch_size: int = 32
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_steps: int = 100
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    eval_windows: int = 512  # evenly spaced val windows of block_size tokens
    seed: int = 0
    model_config: Mapping[str, Any] = field(default_factory=dict)
    corpus: str = "shakespeare"

    def __post_init__(self) -> None:
        _freeze_config(self)
        if self.steps < 1 or self.batch_size < 1 or self.lr <= 0 or self.eval_windows < 1:
            raise ValueError("steps, batch_size, lr and eval_windows must be positive")
        if self.corpus != "shakespeare":
            raise ValueError(f"unsupported corpus {self.corpus!r}; only 'shakespeare'")


Recipe = ClassifierRecipe | LMRecipe

RECIPES = Registry[Recipe]("reference recipe")
RECIPES.register("lenet-300-100", ClassifierRecipe(model="lenet-300-100", epochs=3))
RECIPES.register("lenet-5", ClassifierRecipe(model="lenet-5", epochs=2))
RECIPES.register("gpt-tiny", LMRecipe(model="gpt-tiny"))


class CorruptCacheError(SparsetorchError, RuntimeError):
    """A cached reference model cannot be read or does not fit its model; delete it to retrain."""


def recipe_hash(recipe: Recipe) -> str:
    """12 hex digits identifying `recipe` (all fields, its kind and `RECIPE_FORMAT`)."""
    doc = {"kind": type(recipe).__name__, "format": RECIPE_FORMAT, **asdict(recipe)}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:12]


def cache_path(name: str, *, recipe: Recipe | None = None, cache_dir: str | Path | None = None) -> Path:
    """The cache file of `pretrained(name, recipe=...)`: `<cache_dir>/models/<name>-<hash>.safetensors`.

    `cache_dir` defaults to `sparsetorch.data.cache_dir()` (`$SPARSETORCH_CACHE` or `~/.cache/sparsetorch`).
    """
    from sparsetorch import data

    recipe = recipe if recipe is not None else RECIPES.get(name)
    root = Path(cache_dir).expanduser() if cache_dir is not None else data.cache_dir()
    return root / "models" / f"{name}-{recipe_hash(recipe)}.safetensors"


def pretrained(
    name: str,
    *,
    recipe: Recipe | None = None,
    cache_dir: str | Path | None = None,
    train_if_missing: bool = True,
    progress: bool = True,
) -> nn.Module:
    """The trained reference model `name` (in eval mode), trained and cached on first use.

    Args:
        name: a recipe name (`list(RECIPES.list())`: lenet-300-100, lenet-5, gpt-tiny).
        recipe: overrides the registered recipe (e.g. a tiny one in tests); it has its own cache entry.
        cache_dir: cache root instead of `sparsetorch.data.cache_dir()`.
        train_if_missing: train when nothing is cached; otherwise raise `FileNotFoundError`.
        progress: show a `rich` progress bar while training.

    Raises:
        CorruptCacheError: the cached file is unreadable; the message says which file to delete.
        DataNotFoundError: training needs a dataset that is not installed.
    """
    recipe = recipe if recipe is not None else RECIPES.get(name)
    path = cache_path(name, recipe=recipe, cache_dir=cache_dir)
    if path.exists() or not train_if_missing:
        return _load(name, recipe, _existing(name, path))
    model, _ = train_reference(name, recipe=recipe, cache_dir=cache_dir, progress=progress)
    return model


def pretrained_metrics(
    name: str, *, recipe: Recipe | None = None, cache_dir: str | Path | None = None
) -> dict[str, float]:
    """Metrics measured when the cached reference model was trained (e.g. `test_accuracy`, `val_bpb`)."""
    path = _existing(name, cache_path(name, recipe=recipe, cache_dir=cache_dir))
    try:
        with safe_open(str(path), framework="pt") as f:
            return json.loads((f.metadata() or {})["sparsetorch.metrics"])
    except Exception as e:
        raise _corrupt(name, path, e) from e


def train_reference(
    name: str,
    *,
    recipe: Recipe | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> tuple[nn.Module, dict[str, float]]:
    """Train `name` by its recipe (always, even if cached), write the cache entry, return (model, metrics)."""
    recipe = recipe if recipe is not None else RECIPES.get(name)
    path = cache_path(name, recipe=recipe, cache_dir=cache_dir)
    model = create_model(recipe.model, seed=recipe.seed, **dict(recipe.model_config))
    start = time.perf_counter()
    # Seed everything else drawn during training (dropout) without disturbing the caller's RNG.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        if isinstance(recipe, ClassifierRecipe):
            metrics = _train_classifier(model, recipe, progress=progress, label=name)
        else:
            metrics = _train_lm(model, recipe, progress=progress, label=name)
    metrics["train_seconds"] = round(time.perf_counter() - start, 2)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    metadata = {
        "sparsetorch.name": name,
        "sparsetorch.recipe": json.dumps({"kind": type(recipe).__name__, **asdict(recipe)}, sort_keys=True),
        "sparsetorch.metrics": json.dumps(metrics, sort_keys=True),
    }
    _save_atomic(path, state, metadata)
    return model.eval(), metrics


def _existing(name: str, path: Path) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"no cached reference model {path}; call pretrained({name!r}) to train it")
    return path


def _corrupt(name: str, path: Path, err: Exception) -> CorruptCacheError:
    return CorruptCacheError(
        f"cached reference model {path} is corrupt or does not fit its model ({type(err).__name__}: {err}). "
        f"Delete it (rm '{path}') and call pretrained({name!r}) again to retrain it."
    )


def _load(name: str, recipe: Recipe, path: Path) -> nn.Module:
    # Seeded only so that building the (overwritten) initial weights leaves the global RNG alone.
    model = create_model(recipe.model, seed=recipe.seed, **dict(recipe.model_config))
    try:
        model.load_state_dict(load_file(str(path)), strict=True)
    except Exception as e:
        raise _corrupt(name, path, e) from e
    return model.eval()


def _save_atomic(path: Path, state: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    with atomic_path(path) as tmp:
        save_file(state, tmp, metadata=metadata)


def _train_classifier(
    model: nn.Module, recipe: ClassifierRecipe, *, progress: bool, label: str
) -> dict[str, float]:
    from sparsetorch import data

    x, y = data.load_fashion_mnist("train").tensors  # (N, 1, 28, 28) float32, (N,) int64
    x_test, y_test = data.load_fashion_mnist("test").tensors
    per_epoch = math.ceil(len(x) / recipe.batch_size)
    total = int(min(recipe.epochs * per_epoch, recipe.max_steps or math.inf))
    batches = epoch_batches(len(x), recipe.batch_size, torch.Generator().manual_seed(recipe.seed))

    def loss_fn(model: nn.Module, index: torch.Tensor) -> Loss:
        return Loss(F.cross_entropy(model(x[index]), y[index]))

    model.train()
    with progress_bar(progress, "{task.fields[status]}") as bar:
        task = bar.add_task(f"training {label}", total=total, status="")
        ema = _LossEMA(0.95, 0.05, bar, task)
        opt = torch.optim.Adam(model.parameters(), lr=recipe.lr)
        train_steps(model, opt, batches, loss_fn, steps=total, on_step=ema)
    model.eval()
    test = classification_metrics(model, x_test, y_test)
    return {
        "test_accuracy": test["accuracy"],
        "test_loss": test["loss"],
        "train_loss": ema.value,
        "steps": total,
    }


class _LossEMA:
    """An `on_step` callback: the exponential moving average of the loss, shown on a progress bar."""

    def __init__(self, decay: float, new: float, bar: Any, task: Any) -> None:
        self.decay, self.new, self.bar, self.task, self.value = decay, new, bar, task, float("nan")

    def __call__(self, step: Step) -> None:
        first = step.index == 0
        self.value = step.loss if first else self.decay * self.value + self.new * step.loss
        self.bar.update(self.task, advance=1, status=f"loss {self.value:.3f}")


def _train_lm(model: nn.Module, recipe: LMRecipe, *, progress: bool, label: str) -> dict[str, float]:
    from sparsetorch import data

    text = (data.load_shakespeare("train"), data.load_shakespeare("val"))
    train, val = data.shakespeare.shakespeare_windows(model.config.block_size, text=text)  # (N - T, T + 1)
    with progress_bar(progress, "{task.fields[status]}") as bar:
        task = bar.add_task(f"training {label}", total=recipe.steps, status="")
        ema = _LossEMA(0.98, 0.02, bar, task)
        fit_lm(
            model, train, steps=recipe.steps, batch_size=recipe.batch_size, lr=recipe.lr, min_lr=recipe.min_lr,
            warmup_steps=recipe.warmup_steps, weight_decay=recipe.weight_decay, grad_clip=recipe.grad_clip,
            seed=recipe.seed, on_step=ema,
        )  # fmt: skip
    held_out = evaluate_lm(model, val, num_windows=recipe.eval_windows, batch_size=recipe.batch_size)
    # byte-level tokens: bits per token = bits per byte
    return {
        "val_loss": held_out["loss"],
        "val_bpb": held_out["bits_per_byte"],
        "train_loss": ema.value,
        "steps": recipe.steps,
    }
