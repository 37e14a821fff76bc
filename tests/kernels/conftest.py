"""Kernel tests: every autotune result goes to a per-test cache folder, never the user's cache."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Autotune results go to a per-test folder, never the user's cache."""
    monkeypatch.setenv("SPARSETORCH_CACHE", str(tmp_path / "cache"))
