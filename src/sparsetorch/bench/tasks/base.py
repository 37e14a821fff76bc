"""The bench task: what one run trains or prunes, on which data, measured how.

A task is small and self-describing. It owns its data, model, default budget and metrics; its
`version` goes into every run's config hash, so changing what a task measures (bump the version)
never mixes old results with new ones. `run(spec)` does one run and returns flat metrics; it is
called in a fresh worker process with the global RNG seeded from the spec.

`RunSpec` (one configuration of one task) and `config_hash` live here, beside the tasks, because
a spec's resolved config reads its task's version and default budget; `bench.spec` re-exports them.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

from sparsetorch.patterns import NM, parse_pattern
from sparsetorch.registry import Registry

DENSE = "dense"  # the baseline method every task accepts (sparsity 0)
KINDS = ("training", "pruning", "speed")


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


class Task:
    """Base of the registered bench tasks; subclasses set the class attributes and `run`."""

    name: ClassVar[str]
    version: ClassVar[int] = 1
    kind: ClassVar[str]  # "training" | "pruning" | "speed": which methods it takes
    metric: ClassVar[str]  # the primary metric (plots, leaderboard)
    higher_is_better: ClassVar[bool] = True
    description: ClassVar[str] = ""
    default_budget: ClassVar[dict[str, Any]] = {}
    exclusive: ClassVar[bool] = False  # run alone, after the pool (timings)
    reserved_params: ClassVar[frozenset[str]] = frozenset()  # config fields the task itself sets

    def method_names(self) -> Registry:
        """The registry that this task's method names are looked up in."""
        from sparsetorch.discovery import registries

        return registries()[self.kind]

    def check(self, spec: RunSpec) -> None:
        """Raise ValueError/KeyError naming what is wrong with `spec` for this task (before any run)."""
        unknown = set(spec.budget) - set(self.default_budget)
        if unknown:
            raise ValueError(
                f"task {self.name!r} has no budget key(s) {sorted(unknown)}; known: {sorted(self.default_budget)}"
            )
        pattern = parse_pattern(spec.pattern)
        if spec.method == DENSE:
            if spec.sparsity not in (0, 0.0, None) or spec.pattern != "unstructured":
                raise ValueError("method 'dense' is the baseline: sparsity 0 and pattern unstructured")
            self.check_params(DENSE, spec.params, None)
            return
        self.check_params(spec.method, spec.params, self.method_names().get(spec.method))
        if spec.sparsity is None:
            if not isinstance(pattern, NM):
                raise ValueError(f"{spec.label}: a sparsity is required unless the pattern is N:M")
        elif not (isinstance(spec.sparsity, int | float) and 0.0 <= spec.sparsity < 1.0) or math.isnan(
            spec.sparsity
        ):
            raise ValueError(f"{spec.label}: sparsity must be in [0, 1), got {spec.sparsity!r}")

    def check_params(self, method: str, params: dict[str, Any], entry: Any) -> None:
        """Raise ValueError for a param that `method`'s config (its `Config` dataclass) does not have.

        Why at load: a typo (`update_evry`) would otherwise surface only when the run starts, maybe
        hours into a sweep. Values are checked by the config itself when the run creates the method.
        """
        config = getattr(entry, "Config", None)
        known = {f.name for f in dataclasses.fields(config)} if dataclasses.is_dataclass(config) else set()
        known -= self.reserved_params
        for key in params:
            if key not in known:
                close = difflib.get_close_matches(str(key), sorted(known), n=1, cutoff=0.6)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ValueError(
                    f"method {method!r} has no param {key!r}{hint} (params: {', '.join(sorted(known)) or 'none'})"
                )

    def run(self, spec: RunSpec) -> dict[str, Any]:
        raise NotImplementedError

    def budget(self, spec: RunSpec) -> dict[str, Any]:
        return {**self.default_budget, **spec.budget}


TASKS: Registry[Task] = Registry("bench task")


def size_metrics(model) -> dict[str, float]:
    """Achieved sparsity and compact size (smallest format's bytes / dense bytes) of the targets."""
    from sparsetorch.accounting import report

    rep = report(model)
    return {"achieved_sparsity": rep.sparsity, "size_ratio": 1.0 / rep.memory_speedup}
