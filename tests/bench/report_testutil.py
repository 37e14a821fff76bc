"""A synthetic bench directory for the report and export tests, written through the Store API.

The runs are made up (the report and export are mechanisms over the store); the shapes follow
the real tasks: a training task (accuracy, higher is better), a pruning task (perplexity, lower
is better), kernel speed (speedup, bytes_ratio), a task whose only run failed, and one run that
was never started.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from sparsetorch.bench.store import Store

ENV = {
    "torch": "2.4.0",
    "python": "3.11.2",
    "cpu": "test cpu",
    "git": "abc123",
    "host": "testhost",
    "platform": "Linux",
    "sparsetorch": "0.1.0",
}
OWNER = "test-owner"
TRACEBACK = (
    'Traceback (most recent call last):\n  File "task.py", line 1\nRuntimeError: out of <memory> & "cheese"\n'
)

TASKS = {
    "fmnist-mlp": ("training", "test_accuracy", True),
    "shakespeare-gpt-prune": ("pruning", "perplexity", False),
    "kernel-speed": ("speed", "speedup", True),
    "minilm-prune": ("pruning", "fidelity", True),
}


def config_hash(config: dict[str, Any]) -> str:
    """The synthetic runs' hash of a config (the runner has its own; here any stable digest does)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def spec(
    task: str, method: str, sparsity: float | None, pattern: str, seed: int, version: int = 1
) -> dict[str, Any]:
    """A run as `Store.add` takes it, with a config shaped like the runner's."""
    kind, metric, hib = TASKS[task]
    config = {
        "task": task,
        "task_version": version,
        "method": method,
        "params": {},
        "sparsity": sparsity,
        "pattern": pattern,
        "seed": seed,
        "budget": {"epochs": 1},
        "kind": kind,
        "metric": metric,
        "higher_is_better": hib,
    }
    return {
        "config_hash": config_hash(config),
        "task": task,
        "task_version": version,
        "method": method,
        "sparsity": sparsity,
        "pattern": pattern,
        "seed": seed,
        "config": config,
    }


def complete(store: Store, run: dict[str, Any], metrics: dict[str, Any]) -> None:
    store.add([run])
    assert store.claim(run["config_hash"], OWNER)
    assert store.complete(run["config_hash"], OWNER, metrics, ENV)


def fail(store: Store, run: dict[str, Any]) -> None:
    store.add([run])
    assert store.claim(run["config_hash"], OWNER)
    assert store.fail(run["config_hash"], OWNER, TRACEBACK, ENV)


# (task, method, sparsity, pattern) -> primary metric per seed 0, 1
ACCURACY = {
    ("dense", 0.0, "unstructured"): (0.90, 0.90),
    ("magnitude", 0.5, "unstructured"): (0.88, 0.86),
    ("magnitude", 0.9, "unstructured"): (0.80, 0.84),
    ("random", 0.5, "unstructured"): (0.70, 0.72),
    ("random", 0.9, "unstructured"): (0.60, 0.62),
    ("magnitude", None, "2:4"): (0.87, 0.85),
    ("random", None, "2:4"): (0.75, 0.77),
    ("magnitude", 0.5, "block4x16"): (0.83, 0.81),
}
PERPLEXITY = {
    ("dense", 0.0, "unstructured"): (20.0, 20.0),
    ("magnitude", 0.5, "unstructured"): (40.0, 44.0),
    ("wanda", 0.5, "unstructured"): (25.0, 27.0),
}
SPEEDUP = {
    ("csr", 0.5, "unstructured"): (0.8, 0.9),
    ("csr", 0.9, "unstructured"): (2.0, 2.2),
    ("semi-structured", None, "2:4"): (1.3, 1.4),
}


def make_bench(directory: Path) -> Path:
    """Fill `directory` with the synthetic sweep; returns it."""
    with Store(directory) as store:
        for (method, sparsity, pattern), values in ACCURACY.items():
            for seed, v in enumerate(values):
                achieved = 0.5 if sparsity is None else sparsity
                metrics = {"test_accuracy": v, "achieved_sparsity": achieved, "size_ratio": 1 - achieved / 2}
                complete(
                    store, spec("fmnist-mlp", method, sparsity, pattern, seed), metrics | {"seconds": 1.5}
                )
        # an older version of the task: not plotted nor ranked
        complete(
            store, spec("fmnist-mlp", "magnitude", 0.5, "unstructured", 0, version=0), {"test_accuracy": 0.1}
        )
        for (method, sparsity, pattern), values in PERPLEXITY.items():
            for seed, v in enumerate(values):
                complete(
                    store, spec("shakespeare-gpt-prune", method, sparsity, pattern, seed), {"perplexity": v}
                )
        for (method, sparsity, pattern), values in SPEEDUP.items():
            for seed, v in enumerate(values):
                metrics = {"speedup": v, "ms": 1.0 / v, "dense_ms": 1.0, "bytes_ratio": 0.6}
                complete(store, spec("kernel-speed", method, sparsity, pattern, seed), metrics)
        fail(store, spec("minilm-prune", "wanda", 0.5, "unstructured", 0))
        fail(store, spec("fmnist-mlp", "srste", None, "2:4", 0))
        store.add([spec("fmnist-mlp", "rigl", 0.5, "unstructured", 0)])  # never started
    return directory
