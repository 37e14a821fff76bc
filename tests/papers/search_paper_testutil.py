"""Runs a search reproduction at tiny scale with its test set armed: any torch operation on the test
tensors during a search fails the run (the searches may read only train and validation data)."""

from __future__ import annotations

from types import ModuleType

import torch

from sparsetorch.papers.random_search_nas import fashion_splits
from sparsetorch.search import SparseSearch
from tests.papers.papers_testutil import one_thread


class Tripwire(torch.Tensor):
    """A tensor that raises on any torch operation while `Tripwire.armed` is set."""

    armed = False

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if cls.armed:
            raise AssertionError(f"the test set was touched during a search ({func})")
        return super().__torch_function__(func, types, args, kwargs or {})


def reproduce_tiny_with_armed_test_set(paper: ModuleType):
    """`(result, searches)`: the tiny result and `(method name, sparsity)` of every search run."""
    cfg = paper.SCALES["tiny"]
    train, val, test = fashion_splits(train=cfg["train"], val=cfg["val"], test=cfg["test"])
    test = (test[0].as_subclass(Tripwire), test[1].as_subclass(Tripwire))
    searches = []
    original = SparseSearch.run

    def spy(self, space, parent, *, train, val):
        searches.append((self.name, space.sparsity))
        Tripwire.armed = True
        try:
            return original(self, space, parent, train=train, val=val)
        finally:
            Tripwire.armed = False

    SparseSearch.run = spy
    try:
        return one_thread(paper.reproduce, "tiny", data=(train, val, test)), searches
    finally:
        SparseSearch.run = original
