"""The registered bench tasks (`TASKS`): training, one-shot pruning and kernel speed."""

from sparsetorch.bench.tasks import classification, oneshot, speed  # noqa: F401  (fill the registry)
from sparsetorch.bench.tasks.base import DENSE, TASKS, Task

__all__ = ["DENSE", "TASKS", "Task"]
