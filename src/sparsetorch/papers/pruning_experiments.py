"""One-shot pruning of real models on real text, measured: the runs behind papers, bench and docs.

- all-MiniLM-L6-v2 (real pretrained weights): calibrated on stdlib docstrings (train split),
  evaluated on held-out docstring sentences (test split): cosine fidelity of the sentence
  embeddings to the dense model's, and nearest-neighbour retrieval agreement; optionally the
  layer-wise reconstruction error on held-out windows of the test split (`heldout_error`).
- the tiny byte-level GPT trained on Shakespeare: calibrated on the train works, perplexity (and
  bits per byte) on the held-out test works.

Each run prunes a fresh copy of the dense model, so settings never leak into each other.
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from sparsetorch.evaluation import embedding_agreement, lm_perplexity
from sparsetorch.pruning.api import prune


@dataclass(frozen=True)
class Setting:
    """One pruning configuration: method, sparsity (None under N:M), pattern, method options."""

    method: str
    sparsity: float | None = 0.5
    pattern: str = "unstructured"
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        level = self.pattern if self.pattern != "unstructured" else f"{self.sparsity:.0%}"
        extra = ",".join(f"{k}={v}" for k, v in self.config.items())
        return f"{self.method}@{level}" + (f"[{extra}]" if extra else "")


def grid(methods: Iterable[str], levels: Iterable[float | str]) -> list[Setting]:
    """Settings for every method at every level: a float sparsity or an N:M string like "2:4"."""
    return [
        Setting(m, None, lv) if isinstance(lv, str) else Setting(m, float(lv))
        for m in methods
        for lv in levels
    ]


def _run(
    model: nn.Module, setting: Setting, calibration: Any, **kwargs: Any
) -> tuple[nn.Module, dict[str, Any]]:
    pruned = copy.deepcopy(model)
    rep = prune(
        pruned,
        setting.method,
        setting.sparsity,
        setting.pattern,
        calibration=calibration,
        **kwargs,
        **setting.config,
    )
    row = {
        "setting": setting.label,
        **asdict(setting),
        "achieved_sparsity": rep.sparsity,
        "mean_error": rep.mean_error,
        "seconds": rep.seconds,
        "calibration_mb": rep.calibration_bytes / 1e6,
        "layers": [r.fqn for r in rep.layers],
    }
    return pruned, row


@torch.no_grad()
def input_gram(model: nn.Module, fqns: Iterable[str], windows: torch.Tensor, batch_size: int = 8) -> dict:
    """X^T X (float64) of the inputs of each weight `fqns` names, over token-id `windows` run through `model`."""
    from sparsetorch.masks import weights_by_fqn

    lookup = weights_by_fqn(model)
    grams: dict[str, torch.Tensor] = {}
    hooks = []
    for fqn in fqns:
        module = lookup[fqn][0]

        def hook(_module: nn.Module, args: tuple, _out: Any, fqn: str = fqn) -> None:
            x = args[0].reshape(-1, args[0].shape[-1]).float()
            gram = (x.T @ x).double()
            grams[fqn] = grams[fqn] + gram if fqn in grams else gram

        hooks.append(module.register_forward_hook(hook))
    try:
        for batch in windows.split(batch_size):
            model(batch)
    finally:
        for h in hooks:
            h.remove()
    return grams


def heldout_error(dense: nn.Module, pruned: nn.Module, grams: dict[str, torch.Tensor]) -> float:
    """Mean over layers of ||WX - W'X|| / ||WX||, X the dense model's inputs whose X^T X `grams` holds."""
    from sparsetorch.masks import stored, weights_by_fqn

    before, after = weights_by_fqn(dense), weights_by_fqn(pruned)
    errors = []  # Linear weights (out, in); X^T X is (in, in)
    for fqn, gram in grams.items():
        w = stored(*before[fqn]).detach().double()
        w_new = stored(*after[fqn]).detach().double()
        delta = w - w_new
        num, den = (delta @ gram * delta).sum().item(), (w @ gram * w).sum().item()
        errors.append(math.sqrt(max(num, 0.0) / den))
    return sum(errors) / len(errors)


Row = dict[str, Any]


def minilm_runs(
    settings: Iterable[Setting],
    *,
    samples: int = 128,
    seq_len: int = 128,
    sentences: int = 512,
    seed: int = 0,
    sample_sentences: bool = False,
    heldout: int = 0,
    on_row: Callable[[Row], None] | None = None,
) -> list[Row]:
    """Prune all-MiniLM-L6-v2 under each setting; embedding fidelity on held-out sentences.

    Args:
        samples, seq_len: the calibration windows (train split), drawn with `seed`.
        sentences: how many held-out (test split) sentences to embed: the first ones in corpus
            order, or a random sample drawn with `seed` when `sample_sentences`.
        heldout: when positive, also measure each row's `heldout_error`, the mean layer-wise
            reconstruction error ||WX - W'X|| / ||WX|| on `heldout` windows of `seq_len` tokens of
            the test split (drawn with `seed`; inputs X from the dense model), never calibrated on.
        on_row: called with each row as soon as it is measured (for progress output).
    """
    from sparsetorch.data import docstring_sentences
    from sparsetorch.models.hf import embed, load_minilm
    from sparsetorch.pruning.calibration_data import text_windows

    model, tokenizer = load_minilm()
    if sample_sentences:
        pool = docstring_sentences("test")
        texts = random.Random(seed).sample(pool, min(sentences, len(pool)))
    else:
        texts = docstring_sentences("test", n=sentences)
    windows = (
        text_windows(model, "stdlib-docstrings", split="test", samples=heldout, seq_len=seq_len, seed=seed)
        if heldout
        else None
    )
    grams: dict[tuple[str, ...], dict[str, torch.Tensor]] = {}
    dense = embed(model, tokenizer, texts)
    rows = [{"setting": "dense", "method": "dense", **embedding_agreement(dense, dense)}]
    for setting in settings:
        pruned, row = _run(model, setting, "stdlib-docstrings", samples=samples, seq_len=seq_len, seed=seed)
        row.update(embedding_agreement(dense, embed(pruned, tokenizer, texts)))
        if windows is not None:
            layers = tuple(row["layers"])
            if layers not in grams:
                grams[layers] = input_gram(model, layers, windows)
            row["heldout_error"] = heldout_error(model, pruned, grams[layers])
        rows.append(row)
        if on_row:
            on_row(rows[-1])
    return rows


def gpt_runs(
    settings: Iterable[Setting],
    *,
    model: nn.Module | None = None,
    samples: int = 128,
    seq_len: int = 128,
    eval_chars: int | None = None,
    seed: int = 0,
    on_row: Callable[[Row], None] | None = None,
) -> list[Row]:
    """Prune the Shakespeare GPT under each setting; perplexity on the held-out test works.

    Args:
        model: the dense model (default: the cached reference `gpt-tiny`, trained on first use).
        eval_chars: evaluate on the first `eval_chars` characters of the test split (all by default).
        on_row: called with each row as soon as it is measured.
    """
    from sparsetorch.data import load_shakespeare
    from sparsetorch.models.gpt import encode

    if model is None:
        from sparsetorch.models.pretrained import pretrained

        model = pretrained("gpt-tiny")
    text = load_shakespeare("test")
    ids = encode(text[:eval_chars] if eval_chars else text)
    rows = [{"setting": "dense", "method": "dense", **lm_perplexity(model, ids, seq_len=seq_len)}]
    for setting in settings:
        pruned, row = _run(model, setting, "shakespeare", samples=samples, seq_len=seq_len, seed=seed)
        rows.append({**row, **lm_perplexity(pruned, ids, seq_len=seq_len)})
        if on_row:
            on_row(rows[-1])
    return rows
