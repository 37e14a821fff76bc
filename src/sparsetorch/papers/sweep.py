"""Papers on the bench: every (paper, seed) is one bench run, so reproductions get what bench runs get.

`run_papers` expands papers × seeds into bench `RunSpec`s of the task ``"paper"`` (`PaperTask`)
and hands them to `sparsetorch.bench.runner.run_sweep`: each run in its own process, resumable
after ``kill -9`` (a complete run is never repeated), ``workers`` at a time or on Ray. A run's
identity (its config hash) includes the paper's `code_hash` and the scale, so a rerun after a code
change measures again instead of reusing the old numbers.

Each complete run stores in the bench's SQLite its result (every check with its numbers, the
metrics, the note) as JSON in the ``result`` metric, with the seed, the scale, its wall time and
the environment the bench records (commit, CPU, library versions). `collect` reads them back and
aggregates the seeds of each paper into a `StoredResult` (`sparsetorch.papers.stats` states the rule);
a paper with a missing or failed seed gets none.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from sparsetorch.bench.runner import Outcome, SweepResult, execute, run_sweep
from sparsetorch.bench.store import Store
from sparsetorch.bench.tasks.base import TASKS, RunSpec, Task
from sparsetorch.papers.base import Paper, Result, check_scale
from sparsetorch.papers.registry import get_paper
from sparsetorch.papers.results import SeedRun, StoredResult, code_hash, stored_result

__all__ = [
    "DEFAULT_SEEDS",
    "TASK",
    "PaperRuns",
    "PaperTask",
    "collect",
    "execute_paper",
    "paper_specs",
    "run_papers",
]

TASK = "paper"
DEFAULT_SEEDS = {"tiny": 1, "small": 3, "full": 3}


class PaperTask(Task):
    """One paper's reproduction at one seed and scale (`method` is the paper key)."""

    name = TASK
    version = 1
    kind = "paper"
    metric = "claims_passed"
    description = "a paper's reproduction at one seed; the verdict aggregates the seeds"
    default_budget: ClassVar[dict[str, Any]] = {"scale": "small"}

    def check(self, spec: RunSpec) -> None:
        paper = get_paper(spec.method)  # KeyError with "did you mean"
        if paper.reproduce is None:
            raise ValueError(f"paper {paper.key!r} has no reproduction yet (status: planned)")
        unknown = set(spec.budget) - set(self.default_budget)
        if unknown:
            raise ValueError(
                f"{spec.label}: a paper run has no budget key(s) {sorted(unknown)}; only 'scale'"
            )
        check_scale(self.budget(spec)["scale"])
        if set(spec.params) != {"code"} or spec.sparsity is not None or spec.pattern != "unstructured":
            raise ValueError(f"{spec.label}: a paper run takes params {{'code'}} and no sparsity or pattern")

    def run(self, spec: RunSpec) -> dict[str, Any]:
        paper = get_paper(spec.method)
        if spec.params["code"] != code_hash(paper):  # the code changed between planning and running
            raise RuntimeError(f"paper {paper.key!r}: its code changed since this run was planned")
        began = time.perf_counter()
        result = paper.run(self.budget(spec)["scale"], seed=spec.seed)
        return {
            "result": json.dumps(result.to_dict()),
            "holds": result.holds,
            "claims_passed": sum(c.passed for c in result.claims),
            "claims": len(result.claims),
            "wall_time_s": round(time.perf_counter() - began, 3),
        }


if TASK not in TASKS:
    TASKS.register(TASK, PaperTask())


def execute_paper(spec: dict[str, Any], threads: int) -> Outcome:
    """The bench worker's entry for paper runs: importing this module registers `PaperTask`."""
    return execute(spec, threads)


def paper_specs(papers: Sequence[Paper], *, scale: str, seeds: Sequence[int]) -> list[RunSpec]:
    """One `RunSpec` per paper and seed, each checked by `PaperTask` before anything runs."""
    check_scale(scale)
    specs = [
        RunSpec(
            TASK, p.key, None, "unstructured", seed, params={"code": code_hash(p)}, budget={"scale": scale}
        )
        for p in papers
        for seed in seeds
    ]
    for spec in specs:
        TASKS.get(TASK).check(spec)
    return specs


@dataclass(frozen=True)
class PaperRuns:
    """What `run_papers` did: the sweep's counts, and per paper its stored result or why none."""

    sweep: SweepResult
    stored: dict[str, StoredResult]
    missing: dict[str, str]


def collect(
    papers: Sequence[Paper], specs: Sequence[RunSpec], directory: str | Path
) -> tuple[dict[str, StoredResult], dict[str, str]]:
    """Read the runs of `specs` back from the store in `directory` and aggregate each paper's seeds.

    Returns `(stored, missing)`: a paper gets a `StoredResult` only when every one of its runs is
    complete; otherwise `missing` says which seeds are not (failed, with the error's last line, or
    not run).
    """
    with Store(directory, create=False) as store:
        records = {r.config_hash: r for r in store.records(hashes=[s.row()["config_hash"] for s in specs])}
    stored, missing = {}, {}
    for paper in papers:
        runs, problems, env = [], [], {}
        for spec in (s for s in specs if s.method == paper.key):
            record = records.get(spec.row()["config_hash"])
            if record is None or record.status != "complete":
                status = "not run" if record is None else record.status
                error = (record.error or "").strip().splitlines()[-1:] if record is not None else []
                problems.append(f"seed {spec.seed}: {status}" + (f" ({error[0]})" if error else ""))
                continue
            result = Result.from_dict(json.loads(record.metrics["result"]))
            runs.append(SeedRun(spec.seed, result, float(record.metrics["wall_time_s"])))
            env = record.environment
        if problems:
            missing[paper.key] = "; ".join(problems)
            continue
        scale = specs[0].budget["scale"]
        stored[paper.key] = stored_result(
            paper,
            scale,
            runs,
            commit=env.get("git"),
            cpu=env.get("cpu"),
            versions={k: str(env[k]) for k in ("python", "torch", "sparsetorch") if k in env},
            code=next(s.params["code"] for s in specs if s.method == paper.key),
        )
    return stored, missing


def run_papers(
    papers: Sequence[Paper],
    *,
    scale: str,
    seeds: Sequence[int],
    directory: str | Path,
    workers: int = 1,
    ray: str | None = None,
    progress: bool = True,
) -> PaperRuns:
    """Run every paper at every seed through the bench in `directory`, then `collect` the results.

    Runs complete in the store from an earlier call (same code, scale and seed) are not repeated.
    """
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct and at least one, got {list(seeds)}")
    specs = paper_specs(papers, scale=scale, seeds=seeds)
    sweep = run_sweep(specs, directory, workers=workers, ray=ray, progress=progress, executor=execute_paper)
    return PaperRuns(sweep, *collect(papers, specs, directory))
