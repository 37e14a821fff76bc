"""scikit-learn digits: a stratified, seeded, disjoint train/test split."""

from __future__ import annotations

import sys

import pytest
import torch

from sparsetorch.data import DataNotFoundError, load_digits


@pytest.mark.data
def test_shapes_dtypes_and_range():
    x, y = load_digits("train").tensors
    assert x.dtype == torch.float32 and x.shape[1:] == (1, 8, 8)
    assert y.dtype == torch.int64 and y.shape == (x.shape[0],)
    assert x.min() >= 0 and x.max() <= 1 and x.max() == 1


@pytest.mark.data
def test_split_is_a_stratified_partition():
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    full = sklearn_datasets.load_digits()
    train_x, train_y = load_digits("train").tensors
    test_x, test_y = load_digits("test").tensors
    assert len(train_y) + len(test_y) == 1797
    counts = torch.bincount(torch.from_numpy(full.target), minlength=10)
    assert torch.equal(torch.bincount(test_y, minlength=10), torch.round(counts * 0.2).long())
    # A partition: every image is in exactly one split (the sums of all pixels add up exactly).
    total = torch.from_numpy(full.images).sum().item() / 16
    assert train_x.double().sum().item() + test_x.double().sum().item() == pytest.approx(total, abs=1e-6)


@pytest.mark.data
def test_same_seed_same_split_and_other_seed_differs():
    a, b = load_digits("test", seed=3), load_digits("test", seed=3)
    assert torch.equal(a.tensors[0], b.tensors[0]) and torch.equal(a.tensors[1], b.tensors[1])
    assert not torch.equal(a.tensors[0], load_digits("test", seed=4).tensors[0])
    assert len(load_digits("test", test_fraction=0.5)) > len(a)


def test_bad_arguments():
    with pytest.raises(ValueError, match="split"):
        load_digits("val")
    with pytest.raises(ValueError, match="test_fraction"):
        load_digits("test", test_fraction=1.0)


def test_missing_sklearn_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(DataNotFoundError, match=r"pip install 'sparsetorch\[data\]'"):
        load_digits()
