"""Turn what a user passes as `calibration=` into a list of model-ready batches.

Accepted: a corpus or dataset name from `sparsetorch.data` (`"stdlib-docstrings"`, `"shakespeare"`,
`"fashion-mnist"`, `"digits"`), a tensor (split into batches along dim 0), or any iterable of
batches (a DataLoader, a list of tensors / token-id tensors / kwargs dicts). Text corpora are
tokenized with the model's tokenizer (`model.sparsetorch_tokenizer`, set by the Hugging Face
adapters) or as bytes for byte-level models (vocabulary 256, our tiny GPT), then cut into
`samples` random windows of `seq_len` tokens drawn with a seeded generator, as the Wanda and
SparseGPT references draw their C4 windows.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn

from sparsetorch.data.shakespeare import byte_ids

TEXT = ("stdlib-docstrings", "shakespeare")
IMAGES = ("fashion-mnist", "digits")


def _tokenize(model: nn.Module, text: str) -> Tensor:
    tokenizer = getattr(model, "sparsetorch_tokenizer", None)
    if tokenizer is not None:
        ids = tokenizer(text, add_special_tokens=False, return_attention_mask=False, verbose=False)[
            "input_ids"
        ]
        return torch.tensor(ids, dtype=torch.long)
    config = getattr(model, "config", None)
    if getattr(config, "vocab_size", None) == 256:
        return byte_ids(text)
    raise ValueError(
        f"{type(model).__name__} has no tokenizer sparsetorch knows: pass token-id tensors as calibration"
    )


def corpus_text(name: str, split: str) -> str:
    """The text of a corpus split (`train`, `val`, `test`)."""
    from sparsetorch import data

    loaders = {"stdlib-docstrings": data.load_stdlib_docstrings, "shakespeare": data.load_shakespeare}
    return loaders[name](split)


def text_windows(
    model: nn.Module, name: str, *, split: str = "train", samples: int, seq_len: int, seed: int = 0
) -> Tensor:
    """`samples` random windows `(samples, seq_len)` of token ids from a corpus split.

    Windows start at seeded random character offsets; each is tokenized from a slice of text
    long enough to hold `seq_len` tokens (so the whole corpus is never tokenized at once).
    """
    text = corpus_text(name, split)
    g = torch.Generator().manual_seed(seed)
    windows, span = [], 16 * seq_len  # characters per window: a token is rarely longer than 16
    for _ in range(samples):
        for _attempt in range(8):
            start = int(torch.randint(0, max(len(text) - span, 1), (1,), generator=g))
            ids = _tokenize(model, text[start : start + span])
            if len(ids) >= seq_len:
                windows.append(ids[:seq_len])
                break
        else:
            raise ValueError(f"corpus {name!r} ({split}) is too short for windows of {seq_len} tokens")
    return torch.stack(windows)


def calibration_batches(
    source: Any,
    model: nn.Module,
    *,
    samples: int = 128,
    seq_len: int = 128,
    batch_size: int = 8,
    seed: int = 0,
) -> list[Any]:
    """Normalize `source` into a non-empty list of batches.

    Raises:
        ValueError: empty data, a non-positive size, an unknown corpus name.
    """
    if samples < 1 or seq_len < 1 or batch_size < 1:
        raise ValueError(
            f"samples, seq_len and batch_size must be positive, got {samples}, {seq_len}, {batch_size}"
        )
    if isinstance(source, str):
        if source in TEXT:
            return list(
                text_windows(model, source, samples=samples, seq_len=seq_len, seed=seed).split(batch_size)
            )
        if source in IMAGES:
            from sparsetorch import data

            x = (data.load_fashion_mnist if source == "fashion-mnist" else data.load_digits)("train").tensors[
                0
            ]
            idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:samples]
            return list(x[idx].split(batch_size))
        raise ValueError(f"unknown calibration corpus {source!r}; known: {', '.join(TEXT + IMAGES)}")
    if isinstance(source, Tensor):
        if source.numel() == 0 or source.dim() == 0:
            raise ValueError("calibration tensor is empty")
        return list(source.split(batch_size))
    if not isinstance(source, Iterable):
        raise ValueError(
            f"calibration must be a corpus name, a tensor or an iterable of batches, not {type(source)}"
        )
    batches = []
    for batch in source:
        # DataLoaders over (x, y) datasets yield [x, y]: the model takes x.
        if (
            isinstance(batch, tuple | list)
            and len(batch) == 2
            and isinstance(batch[1], Tensor)
            and batch[1].dim() == 1
        ):
            batch = batch[0]
        if isinstance(batch, Tensor) and batch.numel() == 0:
            raise ValueError(f"calibration batch {len(batches)} is empty")
        batches.append(batch)
    if not batches:
        raise ValueError("calibration data is empty")
    return batches
