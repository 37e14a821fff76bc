"""The registered bench tasks (`TASKS`): training, one-shot pruning, kernel speed and model latency."""

from sparsetorch.bench.tasks import classification, latency, oneshot, speed  # noqa: F401  (fill the registry)
from sparsetorch.bench.tasks.base import DENSE, TASKS, Task

__all__ = ["DENSE", "TASKS", "Task"]
