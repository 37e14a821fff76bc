"""One bench run, fully resolved: `RunSpec` (defined beside the tasks it resolves against), its
config hash, and the environment it ran in.

Why a hash of the resolved config: it is the identity of a run in the store. Two suites that ask
for the same (task version, method, params, sparsity, pattern, seed, budget) share one run, a
rerun finds it complete, and a changed task version or budget is a different run.
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

from sparsetorch.bench.tasks.base import RunSpec, config_hash

__all__ = ["RunSpec", "config_hash", "environment"]


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
