"""Test-wide rules.

A test that needs real data or pretrained weights raises `DataNotFoundError` (from the loaders)
when they are missing. Here that becomes a skip with the loader's message, except when
SPARSETORCH_REQUIRE_DATA=1 (as in CI), where it stays a failure: CI never passes by skipping.

The session header names the installed version of every direct dependency (all extras), so a log
says what was tested (`make setup` installs them through the lock, `constraints.txt`).
"""

from __future__ import annotations

import os
import re
from importlib import metadata

import pytest
import torch

from sparsetorch.data import DataNotFoundError

REQUIRE_DATA = os.environ.get("SPARSETORCH_REQUIRE_DATA", "") not in ("", "0", "false")

torch.set_num_threads(min(2, torch.get_num_threads()))


def direct_dependencies() -> list[str]:
    """ "name==version" (or "name: not installed") for sparsetorch's requirements, all extras."""
    names = {re.match(r"[A-Za-z0-9._-]+", req)[0] for req in metadata.requires("sparsetorch") or []}
    found = []
    for name in sorted(names, key=str.lower):
        try:
            found.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name}: not installed")
    return found


def pytest_report_header(config) -> str:
    return "tested with: " + ", ".join(direct_dependencies())


def _skip_missing_data(outcome) -> None:
    excinfo = outcome.excinfo
    if excinfo is not None and issubclass(excinfo[0], DataNotFoundError) and not REQUIRE_DATA:
        outcome.force_exception(pytest.skip.Exception(f"data missing: {excinfo[1]}", _use_item_location=True))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    _skip_missing_data((yield))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    _skip_missing_data((yield))
