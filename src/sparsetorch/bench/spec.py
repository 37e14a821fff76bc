"""One bench run, fully resolved: `RunSpec`, its config hash, and the environment it ran in.

Why a hash of the resolved config: it is the identity of a run in the store. Two suites that ask
for the same (task version, method, params, sparsity, pattern, seed, budget) share one run, a
rerun finds it complete, and a changed task version or budget is a different run.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
import subprocess
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RunSpec:
    """One configuration of one task. `sparsity` is None under N:M patterns (implied)."""

    task: str
    method: str
    sparsity: float | None
    pattern: str
    seed: int
    params: dict[str, Any] = field(default_factory=dict)
    budget: dict[str, Any] = field(default_factory=dict)

    def config(self) -> dict[str, Any]:
        """The resolved config: the task's version, kind and metric, the budget with its defaults."""
        from sparsetorch.bench.tasks import TASKS

        task = TASKS.get(self.task)
        return {
            "task": self.task,
            "task_version": task.version,
            "kind": task.kind,
            "metric": task.metric,
            "higher_is_better": task.higher_is_better,
            "method": self.method,
            "params": dict(sorted(self.params.items())),
            "sparsity": self.sparsity,
            "pattern": self.pattern,
            "seed": self.seed,
            "budget": {**task.default_budget, **self.budget},
        }

    def row(self) -> dict[str, Any]:
        """The store row of this run (identity columns, config and its hash)."""
        config = self.config()
        return {
            "config_hash": config_hash(config),
            "task": self.task,
            "task_version": config["task_version"],
            "method": self.method,
            "sparsity": self.sparsity,
            "pattern": self.pattern,
            "seed": self.seed,
            "config": config,
        }

    @property
    def label(self) -> str:
        level = self.pattern if self.sparsity is None else f"{self.sparsity:g}"
        return f"{self.task}/{self.method}@{level}/seed{self.seed}"


def config_hash(config: dict[str, Any]) -> str:
    """16 hex digits of the SHA-256 of the canonical JSON of `config`."""
    blob = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@cache
def _git_hash() -> str:
    root = Path(__file__).resolve().parents[3]
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def environment() -> dict[str, Any]:
    """Versions and machine facts recorded with every run."""
    import torch

    import sparsetorch
    from sparsetorch.kernels.cpu import cpu_name

    return {
        "sparsetorch": sparsetorch.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cpus": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "host": socket.gethostname(),
        "git": _git_hash(),
    }
