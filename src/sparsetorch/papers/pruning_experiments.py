"""One-shot pruning of real models on real text, measured: the runs behind papers, bench and docs.

- all-MiniLM-L6-v2 (real pretrained weights): calibrated on stdlib docstrings (train split),
  evaluated on held-out docstring sentences (test split): cosine fidelity of the sentence
  embeddings to the dense model's, and nearest-neighbour retrieval agreement.
- the tiny byte-level GPT trained on Shakespeare: calibrated on the train works, perplexity (and
  bits per byte) on the held-out test works.

Each run prunes a fresh copy of the dense model, so settings never leak into each other.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

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
    }
    return pruned, row


Row = dict[str, Any]


def minilm_runs(
    settings: Iterable[Setting],
    *,
    samples: int = 128,
    seq_len: int = 128,
    sentences: int = 512,
    seed: int = 0,
    on_row: Callable[[Row], None] | None = None,
) -> list[Row]:
    """Prune all-MiniLM-L6-v2 under each setting; embedding fidelity on held-out sentences.

    `on_row` is called with each row as soon as it is measured (for progress output).
    """
    from sparsetorch.data import docstring_sentences
    from sparsetorch.models.hf import embed, load_minilm

    model, tokenizer = load_minilm()
    texts = docstring_sentences("test", n=sentences)
    dense = embed(model, tokenizer, texts)
    rows = [{"setting": "dense", "method": "dense", **embedding_agreement(dense, dense)}]
    for setting in settings:
        pruned, row = _run(model, setting, "stdlib-docstrings", samples=samples, seq_len=seq_len, seed=seed)
        rows.append({**row, **embedding_agreement(dense, embed(pruned, tokenizer, texts))})
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
