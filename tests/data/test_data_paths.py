"""Path helpers and the missing-data error of `sparsetorch.data`."""

from __future__ import annotations

from pathlib import Path

import pytest

from sparsetorch.data import DataNotFoundError, cache_dir, data_root


def test_data_not_found_error_is_a_file_not_found_error():
    assert issubclass(DataNotFoundError, FileNotFoundError)
    assert str(DataNotFoundError("x missing. To obtain it: y")) == "x missing. To obtain it: y"


@pytest.mark.parametrize("value", [None, "", "  "])
def test_data_root_is_none_when_unset_or_empty(monkeypatch, value):
    if value is None:
        monkeypatch.delenv("SPARSETORCH_DATA", raising=False)
    else:
        monkeypatch.setenv("SPARSETORCH_DATA", value)
    assert data_root() is None


def test_data_root_reads_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SPARSETORCH_DATA", str(tmp_path))
    assert data_root() == tmp_path


def test_cache_dir_default_and_override(monkeypatch, tmp_path):
    monkeypatch.delenv("SPARSETORCH_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_dir() == tmp_path / ".cache" / "sparsetorch"
    target = tmp_path / "elsewhere" / "cache"
    monkeypatch.setenv("SPARSETORCH_CACHE", str(target))
    assert cache_dir() == target
    assert not target.exists()  # never created by asking


def test_home_is_expanded(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("SPARSETORCH_DATA", "~/data")
    assert data_root() == Path(tmp_path) / "data"
