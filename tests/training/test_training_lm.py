"""The language-model loop `fit_lm` and the one LM evaluation `evaluate_lm`, on tiny models and texts."""

from __future__ import annotations

import pytest
import torch

from sparsetorch.data.shakespeare import byte_windows
from sparsetorch.evaluation import lm_perplexity
from sparsetorch.models.gpt import GPT, GPTConfig
from sparsetorch.models.moe_gpt import MoEGPT, MoEGPTConfig
from sparsetorch.training.lm import evaluate_lm, fit_lm, lm_optimizer, warmup_cosine

TEXT = "to be or not to be, that is the question. " * 30
TINY = GPTConfig(d_model=32, n_layer=1, n_head=2, block_size=16, dropout=0.0)


def _gpt() -> GPT:
    torch.manual_seed(0)
    return GPT(TINY)


def test_loss_decreases_on_a_tiny_gpt():
    windows = byte_windows(TEXT, TINY.block_size)
    model = _gpt()
    before = evaluate_lm(model, windows, num_windows=32)["loss"]
    log = fit_lm(model, windows, steps=60, batch_size=8, lr=3e-3, seed=0)
    after = evaluate_lm(model, windows, num_windows=32)["loss"]
    assert after < before - 1.0
    assert len(log.steps) == 60 and log.steps[-1]["loss"] < log.steps[0]["loss"]
    assert model.training  # left in the mode it was in before the call (a new module trains)


def test_same_seed_same_model():
    windows = byte_windows(TEXT, TINY.block_size)
    a, b = _gpt(), _gpt()
    for model in (a, b):
        fit_lm(model, windows, steps=5, batch_size=4, seed=7)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_aux_loss_of_the_output_and_extra_loss_are_added():
    windows = byte_windows(TEXT, TINY.block_size)
    model = MoEGPT(MoEGPTConfig(gpt=TINY, num_experts=4, k=2))
    calls = []

    def extra(step: int, output) -> torch.Tensor:
        calls.append(step)
        return 0.0 * output.logits.sum()

    log = fit_lm(model, windows, steps=3, batch_size=4, extra_loss=extra)
    assert calls == [0, 1, 2]
    row = log.steps[0]
    assert row["aux_loss"] > 0 and row["loss"] == pytest.approx(row["task"] + row["aux_loss"], rel=1e-5)


def test_on_eval_at_step_counts():
    windows = byte_windows(TEXT, TINY.block_size)
    log = fit_lm(
        _gpt(),
        windows,
        steps=4,
        batch_size=4,
        on_eval=lambda done, m: evaluate_lm(m, windows, num_windows=4),
        eval_at=[0, 4],
    )
    assert [r["step"] for r in log.evals] == [0.0, 4.0] and log.evals[1]["loss"] < log.evals[0]["loss"]


def test_evaluate_lm_agrees_with_lm_perplexity_on_the_same_windows():
    model = _gpt()
    ids = torch.randint(0, 256, (8 * 16 + 1,), generator=torch.Generator().manual_seed(0))
    windows = torch.stack([ids[i * 16 : i * 16 + 17] for i in range(8)])  # non-overlapping (8, 17)
    ours = evaluate_lm(model, windows)
    reference = lm_perplexity(model, ids, seq_len=16)
    assert ours["perplexity"] == pytest.approx(reference["perplexity"])
    assert ours["bits_per_byte"] == pytest.approx(reference["bits_per_byte"])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"train": torch.zeros(4, 1, dtype=torch.long)}, "integer windows"),
        ({"train": torch.zeros(4, 8)}, "integer windows"),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"lr": 0.0}, "need lr > 0"),
    ],
)
def test_bad_config_is_refused(kwargs, match):
    options = {"train": byte_windows(TEXT, 8), "steps": 1, "batch_size": 2, **kwargs}
    train = options.pop("train")
    with pytest.raises(ValueError, match=match):
        fit_lm(_gpt(), train, **options)


def test_recipe_helpers_are_shared_with_the_pretrained_recipes():
    from sparsetorch.models import pretrained

    assert pretrained.lm_optimizer is lm_optimizer and pretrained.warmup_cosine is warmup_cosine
    assert warmup_cosine(0, lr=1.0, min_lr=0.0, warmup=2, steps=10) == 0.5
