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

The training loops here are deliberately minimal and private; `sparsetorch.training` owns general ones.
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
from sparsetorch.evaluation import classification_metrics
from sparsetorch.models import create_model
from sparsetorch.registry import Registry

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


class CorruptCacheError(RuntimeError):
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


def _progress_bar(enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    return Progress(*columns, TextColumn("{task.fields[status]}"), disable=not enabled)


def _train_classifier(
    model: nn.Module, recipe: ClassifierRecipe, *, progress: bool, label: str
) -> dict[str, float]:
    from sparsetorch import data

    x, y = data.load_fashion_mnist("train").tensors  # (N, 1, 28, 28) float32, (N,) int64
    x_test, y_test = data.load_fashion_mnist("test").tensors
    gen = torch.Generator().manual_seed(recipe.seed)
    opt = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    per_epoch = math.ceil(len(x) / recipe.batch_size)
    total = min(recipe.epochs * per_epoch, recipe.max_steps or math.inf)
    step, loss_ema = 0, float("nan")
    model.train()
    with _progress_bar(progress) as bar:
        task = bar.add_task(f"training {label}", total=total, status="")
        while step < total:
            for idx in torch.randperm(len(x), generator=gen).split(recipe.batch_size):
                loss = F.cross_entropy(model(x[idx]), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
                loss_ema = loss.item() if step == 1 else 0.95 * loss_ema + 0.05 * loss.item()
                bar.update(task, advance=1, status=f"loss {loss_ema:.3f}")
                if step >= total:
                    break
    model.eval()
    test = classification_metrics(model, x_test, y_test)
    return {
        "test_accuracy": test["accuracy"],
        "test_loss": test["loss"],
        "train_loss": loss_ema,
        "steps": step,
    }


def lm_optimizer(model: nn.Module, *, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW with betas (0.9, 0.99) and weight decay on matrices only (GPT-2): the LM recipe's optimizer."""
    matrices = [p for p in model.parameters() if p.dim() >= 2]
    others = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW(
        [{"params": matrices, "weight_decay": weight_decay}, {"params": others, "weight_decay": 0.0}],
        lr=lr,
        betas=(0.9, 0.99),
    )


def warmup_cosine(step: int, *, lr: float, min_lr: float, warmup: int, steps: int) -> float:
    """Learning rate at `step`: linear warmup over `warmup` steps, then cosine from `lr` to `min_lr`."""
    if step < warmup:
        return lr * (step + 1) / warmup
    t = (step - warmup) / max(1, steps - warmup)
    return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * min(t, 1.0)))


def _train_lm(model: nn.Module, recipe: LMRecipe, *, progress: bool, label: str) -> dict[str, float]:
    from sparsetorch import data
    from sparsetorch.models.gpt import encode

    T = model.config.block_size
    train = encode(data.load_shakespeare("train")).unfold(0, T + 1, 1)  # (N - T, T + 1) windows (a view)
    val = encode(data.load_shakespeare("val")).unfold(0, T + 1, 1)
    gen = torch.Generator().manual_seed(recipe.seed)
    opt = lm_optimizer(model, lr=recipe.lr, weight_decay=recipe.weight_decay)

    def lr_at(step: int) -> float:
        return warmup_cosine(
            step, lr=recipe.lr, min_lr=recipe.min_lr, warmup=recipe.warmup_steps, steps=recipe.steps
        )

    loss_ema = float("nan")
    model.train()
    with _progress_bar(progress) as bar:
        task = bar.add_task(f"training {label}", total=recipe.steps, status="")
        for step in range(recipe.steps):
            for group in opt.param_groups:
                group["lr"] = lr_at(step)
            batch = train[torch.randint(len(train), (recipe.batch_size,), generator=gen)]  # (B, T + 1)
            loss = model.loss(batch[:, :-1], batch[:, 1:])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
            opt.step()
            loss_ema = loss.item() if step == 0 else 0.98 * loss_ema + 0.02 * loss.item()
            bar.update(task, advance=1, status=f"loss {loss_ema:.3f}")
    model.eval()
    starts = torch.linspace(0, len(val) - 1, min(recipe.eval_windows, len(val))).long()
    loss_sum = 0.0
    with torch.inference_mode():
        for chunk in starts.split(recipe.batch_size):
            batch = val[chunk]  # (b, T + 1)
            loss_sum += model.loss(batch[:, :-1], batch[:, 1:]).item() * len(chunk)
    val_loss = loss_sum / len(starts)
    bpb = val_loss / math.log(2)  # byte-level tokens: bits per token = bits per byte
    return {"val_loss": val_loss, "val_bpb": bpb, "train_loss": loss_ema, "steps": recipe.steps}
