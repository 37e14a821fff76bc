"""Calibration inputs in every accepted form, and the evaluation helpers."""

import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from sparsetorch.evaluation import embedding_agreement, lm_perplexity
from sparsetorch.models import create_model
from sparsetorch.pruning.calibration_data import calibration_batches


def gpt():
    return create_model("gpt-tiny", seed=0, n_layer=1, d_model=16, n_head=2, block_size=32)


def test_tensor_list_and_dataloader_forms():
    x = torch.randn(10, 4)
    assert [b.shape[0] for b in calibration_batches(x, nn.Identity(), batch_size=4)] == [4, 4, 2]
    assert len(calibration_batches([x[:3], x[3:]], nn.Identity())) == 2
    loader = DataLoader(TensorDataset(x, torch.zeros(10, dtype=torch.long)), batch_size=5)
    batches = calibration_batches(loader, nn.Identity())
    assert len(batches) == 2 and torch.equal(batches[0], x[:5])  # labels dropped
    kwargs = [{"input_ids": torch.zeros(2, 3, dtype=torch.long)}]
    assert calibration_batches(kwargs, nn.Identity()) == kwargs


@pytest.mark.parametrize("bad", [[], torch.empty(0, 4), [torch.empty(0)]])
def test_empty_calibration_raises(bad):
    with pytest.raises(ValueError, match="empty"):
        calibration_batches(bad, nn.Identity())


def test_unknown_corpus_and_sizes():
    with pytest.raises(ValueError, match="unknown calibration corpus"):
        calibration_batches("wikitext", gpt())
    with pytest.raises(ValueError, match="positive"):
        calibration_batches(torch.randn(3, 2), nn.Identity(), batch_size=0)
    with pytest.raises(ValueError, match="tokenizer"):
        calibration_batches("shakespeare", nn.Linear(2, 2))


@pytest.mark.data
def test_corpus_windows_are_seeded_byte_ids():
    a = calibration_batches("shakespeare", gpt(), samples=6, seq_len=32, batch_size=4, seed=1)
    b = calibration_batches("shakespeare", gpt(), samples=6, seq_len=32, batch_size=4, seed=1)
    c = calibration_batches("shakespeare", gpt(), samples=6, seq_len=32, batch_size=4, seed=2)
    assert [t.shape for t in a] == [(4, 32), (2, 32)]
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a[0], c[0])
    assert a[0].dtype == torch.long and int(a[0].max()) < 256


class Uniform(nn.Module):
    def forward(self, ids):
        return torch.zeros(*ids.shape, 256)


def test_perplexity_of_a_uniform_model_is_the_vocabulary_size():
    result = lm_perplexity(Uniform(), torch.randint(0, 256, (1000,)), seq_len=50)
    assert result["perplexity"] == pytest.approx(256.0, rel=1e-5)
    assert result["bits_per_byte"] == pytest.approx(8.0, rel=1e-5)
    assert result["tokens"] == 19 * 50
    with pytest.raises(ValueError, match="more than"):
        lm_perplexity(Uniform(), torch.arange(10), seq_len=50)


def test_embedding_agreement():
    g = torch.Generator().manual_seed(0)
    ref = torch.randn(20, 8, generator=g)
    same = embedding_agreement(ref, ref * 3)
    assert same == {"cosine": pytest.approx(1.0), "top1_agreement": 1.0, "top10_overlap": 1.0}
    noisy = embedding_agreement(ref, ref + torch.randn(20, 8, generator=g))
    assert 0 < noisy["cosine"] < 1 and noisy["top1_agreement"] < 1
    other = embedding_agreement(ref, -ref)
    assert math.isclose(other["cosine"], -1.0, abs_tol=1e-6)
    with pytest.raises(ValueError):
        embedding_agreement(ref, ref[:5])
