"""Shared by the paper tests: tiny reproductions run on one intra-op thread, so their floats are
the same on every machine (and one thread is faster than two for these small models)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


def one_thread(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """`fn(*args, **kwargs)` with `torch.set_num_threads(1)`, restoring the thread count after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fn(*args, **kwargs)
    finally:
        torch.set_num_threads(threads)


def fail_seed_one(spec: dict[str, Any], threads: int) -> dict[str, Any]:
    """A bench executor (importable by the worker processes) whose runs at seed 1 fail."""
    from sparsetorch.papers.sweep import execute_paper

    if spec["seed"] == 1:
        return {
            "ok": False,
            "error": "Traceback: ...\nRuntimeError: seed 1 fails on purpose",
            "environment": {},
        }
    return execute_paper(spec, threads)
