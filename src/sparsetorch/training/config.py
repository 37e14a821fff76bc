"""The configs every training method builds on: the shared hyperparameters and a mask-update schedule.

Configs are frozen dataclasses validated in `__post_init__`; each method subclasses one and sets
its paper's defaults.
"""

from __future__ import annotations

from dataclasses import dataclass

from sparsetorch.methods import MethodConfig
from sparsetorch.patterns import parse_pattern
from sparsetorch.training.schedules import check_boundary


@dataclass(frozen=True)
class TrainingConfig(MethodConfig):
    """Hyperparameters shared by every training method.

    Attributes:
        sparsity: final fraction of zeros over the targets, in [0, 1).
        distribution: layer-wise budget: "uniform" or "erk" (and "global" where a method allows).
        pattern: sparsity pattern of the masks ("unstructured"; see each method).
        seed: seed of the method's generator (random masks, random growth).
    """

    sparsity: float = 0.9
    distribution: str = "uniform"
    pattern: str = "unstructured"
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.sparsity, bool) or not isinstance(self.sparsity, int | float):
            raise ValueError(f"sparsity must be a number in [0, 1), got {self.sparsity!r}")
        if not 0.0 <= self.sparsity < 1.0:
            raise ValueError(f"sparsity must be in [0, 1), got {self.sparsity!r}")
        if self.distribution not in ("uniform", "erk", "global"):
            raise ValueError(f"distribution must be 'uniform', 'erk' or 'global', got {self.distribution!r}")
        parse_pattern(self.pattern)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")


@dataclass(frozen=True)
class ScheduledConfig(TrainingConfig):
    """A method that updates masks every `update_every` optimizer steps between `start` and `end`.

    `start` and `end` are optimizer steps (int) or fractions of training (float in [0, 1], which
    need `prepare(..., total_steps=N)`); `end=None` means until the end of training.
    """

    update_every: int = 100
    start: int | float = 0
    end: int | float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if (
            isinstance(self.update_every, bool)
            or not isinstance(self.update_every, int)
            or self.update_every < 1
        ):
            raise ValueError(f"update_every must be a positive integer, got {self.update_every!r}")
        check_boundary(self.start, "start", name=type(self).__name__)
        check_boundary(self.end, "end", name=type(self).__name__, allow_none=True)
        if self.end is not None and type(self.start) is type(self.end) and self.end <= self.start:
            raise ValueError(f"end ({self.end}) must come after start ({self.start})")
