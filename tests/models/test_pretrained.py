"""Reference-model cache: train once by a seeded recipe, load after, fail clearly on a corrupt file."""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils.data import TensorDataset

import sparsetorch.data
from sparsetorch.models import pretrained as pretrained_module
from sparsetorch.models.pretrained import (
    RECIPES,
    ClassifierRecipe,
    CorruptCacheError,
    LMRecipe,
    cache_path,
    pretrained,
    pretrained_metrics,
    recipe_hash,
    train_reference,
)

TINY_MLP = ClassifierRecipe(
    model="lenet-300-100", epochs=1, batch_size=32, max_steps=4, model_config={"hidden": (16, 8)}
)
TINY_GPT = LMRecipe(
    steps=3,
    batch_size=4,
    warmup_steps=1,
    eval_windows=8,
    model_config={"n_layer": 1, "n_head": 2, "d_model": 16, "block_size": 16},
)


@pytest.fixture
def fake_data(monkeypatch):
    """Small synthetic stand-ins for the real loaders; counts how often they are called."""
    calls = []

    def fashion(split="train", **_):
        calls.append(split)
        g = torch.Generator().manual_seed(0 if split == "train" else 1)
        return TensorDataset(
            torch.randn(160, 1, 28, 28, generator=g), torch.randint(0, 10, (160,), generator=g)
        )

    def shakespeare(split="train", **_):
        calls.append(split)
        return "Now is the winter of our discontent, made glorious summer. " * (20 if split == "train" else 3)

    monkeypatch.setattr(sparsetorch.data, "load_fashion_mnist", fashion)
    monkeypatch.setattr(sparsetorch.data, "load_shakespeare", shakespeare)
    return calls


def same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize(("name", "recipe"), [("lenet-300-100", TINY_MLP), ("gpt-tiny", TINY_GPT)])
def test_trains_once_then_loads(tmp_path, fake_data, name, recipe):
    first = pretrained(name, recipe=recipe, cache_dir=tmp_path, progress=False)
    path = cache_path(name, recipe=recipe, cache_dir=tmp_path)
    assert path == tmp_path / "models" / f"{name}-{recipe_hash(recipe)}.safetensors"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind
    n_calls = len(fake_data)
    assert n_calls == 2  # train + test/val split
    second = pretrained(name, recipe=recipe, cache_dir=tmp_path, progress=False, train_if_missing=False)
    assert len(fake_data) == n_calls  # loaded, not retrained
    assert same_weights(first, second) and not second.training
    metrics = pretrained_metrics(name, recipe=recipe, cache_dir=tmp_path)
    key = "test_accuracy" if name.startswith("lenet") else "val_bpb"
    assert math.isfinite(metrics[key]) and metrics["steps"] == (4 if name.startswith("lenet") else 3)


def test_training_is_deterministic(tmp_path, fake_data):
    a, ma = train_reference("lenet-300-100", recipe=TINY_MLP, cache_dir=tmp_path / "a", progress=False)
    b, mb = train_reference("lenet-300-100", recipe=TINY_MLP, cache_dir=tmp_path / "b", progress=False)
    assert same_weights(a, b) and ma["test_accuracy"] == mb["test_accuracy"]


def test_missing_without_training(tmp_path, fake_data):
    with pytest.raises(FileNotFoundError, match="no cached reference model"):
        pretrained("lenet-300-100", recipe=TINY_MLP, cache_dir=tmp_path, train_if_missing=False)
    with pytest.raises(FileNotFoundError):
        pretrained_metrics("lenet-300-100", recipe=TINY_MLP, cache_dir=tmp_path)
    assert fake_data == []


@pytest.mark.parametrize("damage", ["garbage", "truncate"])
def test_corrupt_cache_file_is_named(tmp_path, fake_data, damage):
    pretrained("lenet-300-100", recipe=TINY_MLP, cache_dir=tmp_path, progress=False)
    path = cache_path("lenet-300-100", recipe=TINY_MLP, cache_dir=tmp_path)
    raw = path.read_bytes()
    path.write_bytes(b"not a safetensors file" if damage == "garbage" else raw[: len(raw) // 2])
    with pytest.raises(CorruptCacheError, match="rm ") as info:
        pretrained("lenet-300-100", recipe=TINY_MLP, cache_dir=tmp_path, progress=False)
    assert str(path) in str(info.value)


def test_interrupted_write_leaves_no_entry(tmp_path, fake_data, monkeypatch):
    def crash(state, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(pretrained_module, "save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        pretrained("lenet-300-100", recipe=TINY_MLP, cache_dir=tmp_path, progress=False)
    assert list((tmp_path / "models").iterdir()) == []


def test_recipe_hash_tracks_every_field():
    assert recipe_hash(TINY_MLP) == recipe_hash(
        ClassifierRecipe(
            model="lenet-300-100", epochs=1, batch_size=32, max_steps=4, model_config={"hidden": (16, 8)}
        )
    )
    assert recipe_hash(TINY_MLP) != recipe_hash(
        ClassifierRecipe(model="lenet-300-100", epochs=1, max_steps=4)
    )
    assert len({recipe_hash(r) for _, r in RECIPES.items()}) == len(RECIPES) == 3
    hash(TINY_GPT)  # frozen and hashable despite the config mapping


@pytest.mark.data
def test_real_data_tiny_recipes(tmp_path):
    mlp = ClassifierRecipe(model="lenet-300-100", max_steps=60)
    _, metrics = train_reference("lenet-300-100", recipe=mlp, cache_dir=tmp_path, progress=False)
    assert metrics["test_accuracy"] > 0.6  # 60 Adam steps on real Fashion-MNIST
    gpt = LMRecipe(
        steps=40,
        warmup_steps=5,
        batch_size=8,
        eval_windows=32,
        model_config={"n_layer": 1, "d_model": 64, "block_size": 64},
    )
    _, metrics = train_reference("gpt-tiny", recipe=gpt, cache_dir=tmp_path, progress=False)
    assert metrics["val_bpb"] < 6.0  # well below the 8 bits of a uniform byte model
