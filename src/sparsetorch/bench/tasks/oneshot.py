"""One-shot pruning tasks on real pretrained models, with the same calibration budget per method.

- `minilm-prune`: all-MiniLM-L6-v2, calibrated on stdlib docstrings (train split); fidelity is
  the mean cosine of the pruned model's sentence embeddings to the dense model's on held-out
  docstring sentences, with top-1 / top-10 retrieval agreement;
- `shakespeare-gpt-prune`: the cached tiny byte-level GPT (trained on first use), calibrated on
  the training works; perplexity on the held-out test works (lower is better).
"""

from __future__ import annotations

from typing import Any, ClassVar

from sparsetorch.bench.tasks.base import DENSE, TASKS, RunSpec, Task, size_metrics


def _prune(model, spec: RunSpec, corpus: str, budget: dict[str, Any]) -> dict[str, Any]:
    from sparsetorch.pruning import prune

    rep = prune(
        model,
        spec.method,
        spec.sparsity,
        spec.pattern,
        calibration=corpus,
        samples=int(budget["samples"]),
        seq_len=int(budget["seq_len"]),
        seed=spec.seed,
        **spec.params,
    )
    return {"prune_seconds": rep.seconds, "mean_error": rep.mean_error}


class MiniLMPrune(Task):
    name = "minilm-prune"
    kind = "pruning"
    metric = "fidelity"
    description = (
        "all-MiniLM-L6-v2 pruned one-shot; embedding fidelity (cosine to dense) on held-out sentences"
    )
    default_budget: ClassVar[dict[str, Any]] = {"samples": 64, "seq_len": 128, "sentences": 256}

    def run(self, spec: RunSpec) -> dict[str, Any]:
        from sparsetorch.data import docstring_sentences
        from sparsetorch.evaluation import embedding_agreement
        from sparsetorch.models.hf import embed, load_minilm

        b = self.budget(spec)
        model, tokenizer = load_minilm()
        texts = docstring_sentences("test", n=int(b["sentences"]))
        dense = embed(model, tokenizer, texts)
        extra = {} if spec.method == DENSE else _prune(model, spec, "stdlib-docstrings", b)
        agree = embedding_agreement(dense, embed(model, tokenizer, texts))
        return {"fidelity": agree.pop("cosine"), **agree, **extra, **size_metrics(model)}


class ShakespeareGPTPrune(Task):
    name = "shakespeare-gpt-prune"
    kind = "pruning"
    metric = "perplexity"
    higher_is_better = False
    description = "tiny byte-level GPT pruned one-shot; perplexity on the held-out Shakespeare works"
    default_budget: ClassVar[dict[str, Any]] = {"samples": 64, "seq_len": 128, "eval_chars": 200_000}

    def run(self, spec: RunSpec) -> dict[str, Any]:
        from sparsetorch.data import load_shakespeare
        from sparsetorch.evaluation import lm_perplexity
        from sparsetorch.models.gpt import encode
        from sparsetorch.models.pretrained import pretrained

        b = self.budget(spec)
        model = pretrained("gpt-tiny")
        text = load_shakespeare("test")
        ids = encode(text[: int(b["eval_chars"])] if b["eval_chars"] else text)
        extra = {} if spec.method == DENSE else _prune(model, spec, "shakespeare", b)
        return {**lm_perplexity(model, ids, seq_len=int(b["seq_len"])), **extra, **size_metrics(model)}


TASKS.register("minilm-prune", MiniLMPrune())
TASKS.register("shakespeare-gpt-prune", ShakespeareGPTPrune())
