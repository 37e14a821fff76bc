"""The dataset registry: every loader registered, described, and called with keyword-only options."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from sparsetorch.data import DATASETS, DatasetInfo

NAMES = ["digits", "fashion-mnist", "image-patches", "shakespeare", "stdlib-docstrings", "wordlists"]


def test_lists_all_six_datasets():
    assert DATASETS.list() == NAMES
    assert DATASETS.list("*-*") == ["fashion-mnist", "image-patches", "stdlib-docstrings"]


@pytest.mark.parametrize("name", NAMES)
def test_entries_are_complete(name):
    info = DATASETS.get(name)
    assert isinstance(info, DatasetInfo)
    assert info.name == name
    assert callable(info.loader) and info.loader.__doc__
    assert info.description and info.source
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.name = "other"  # type: ignore[misc]


@pytest.mark.parametrize("name", NAMES)
def test_options_are_keyword_only(name):
    params = list(inspect.signature(DATASETS.get(name).loader).parameters.values())
    positional = [p for p in params if p.kind is not inspect.Parameter.KEYWORD_ONLY]
    assert len(positional) <= 1  # at most the split (or the languages)
    assert all(p.default is not inspect.Parameter.empty for p in params)


def test_unknown_name_suggests_the_closest():
    with pytest.raises(KeyError, match=r"did you mean 'fashion-mnist'"):
        DATASETS.get("fashion-mnst")
