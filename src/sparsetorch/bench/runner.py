"""Run a sweep: each run in its own process (a local pool, or Ray tasks), results in the store.

Why one fresh process per run: runs are isolated (no state, threads setting or cache leaks from
one to the next), a crash or a kill of one run costs only that run, and the driver alone writes
the store. A run is claimed in the store just before it starts, so two benches on the same
directory share the work instead of repeating it; runs `exclusive` to their task (timings) go
last, one at a time, with every core.

Interrupts: Ctrl-C stops the workers and gives the claimed runs back as pending; `kill -9`
leaves them `running` under a dead driver, and the next `bench run` reclaims them. Either way no
unfinished run is ever recorded as complete.

Tasks registered by a layer above the bench (the papers' task, `sparsetorch.papers.sweep`) reach
the worker processes through `executor`: a module-level function that the worker imports by name,
which registers the task and then calls `execute`.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import random
import socket
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

from sparsetorch.bench.spec import RunSpec, environment
from sparsetorch.bench.store import BenchError, Store, this_owner

Outcome = dict[str, Any]  # {"ok": bool, "metrics" | "error": ..., "environment": {...}}


def execute(spec: dict[str, Any], threads: int) -> Outcome:
    """Do one run in this process: seed everything, run the task, never raise."""
    import numpy as np
    import torch

    from sparsetorch.bench.tasks import TASKS

    torch.set_num_threads(threads)
    run = RunSpec(**spec)
    random.seed(run.seed)
    np.random.seed(run.seed)
    torch.manual_seed(run.seed)
    try:
        metrics = TASKS.get(run.task).run(run)
        return {"ok": True, "metrics": _plain(metrics), "environment": environment()}
    except Exception:
        return {"ok": False, "error": traceback.format_exc(), "environment": environment()}


def _plain(metrics: dict[str, Any]) -> dict[str, Any]:
    """JSON-safe metrics: numbers as float/int, tensors and numpy scalars unwrapped, rest as str."""
    out: dict[str, Any] = {}
    for k, v in metrics.items():
        if hasattr(v, "item"):
            v = v.item()
        out[str(k)] = v if isinstance(v, bool | int | float | str) or v is None else str(v)
    return out


Executor = Callable[[dict[str, Any], int], Outcome]


def _child(conn, executor: Executor, spec: dict[str, Any], threads: int) -> None:
    conn.send(executor(spec, threads))
    conn.close()


@dataclass(frozen=True)
class SweepResult:
    """What a `run_sweep` call did: runs it finished now, failed now, skipped as already done."""

    total: int
    completed: int
    failed: int
    skipped: int
    seconds: float


class _Progress:
    """A rich progress bar over the sweep (silent when disabled)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.bar = None
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(
                TextColumn("bench"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.description}"),
            )
            self.bar.start()
            self.task = self.bar.add_task("", total=total)

    def update(self, text: str, advance: int = 0) -> None:
        if self.bar:
            self.bar.update(self.task, description=text, advance=advance)

    def close(self) -> None:
        if self.bar:
            self.bar.stop()


def run_sweep(
    runs: Sequence[RunSpec],
    directory: str | os.PathLike,
    *,
    workers: int = 1,
    ray: str | None = None,
    retry_failed: bool = True,
    progress: bool = True,
    executor: Executor = execute,
) -> SweepResult:
    """Run every run of `runs` that the store in `directory` does not hold as complete.

    Args:
        runs: the expanded suite (`load_suite(...).runs`).
        directory: the bench directory (created; its store is reused across calls).
        workers: runs at a time (local pool, or Ray tasks in flight).
        ray: None for the local pool, `"local"` to start a Ray instance on this machine, or the
            `host:port` of a running Ray cluster.
        retry_failed: run again the runs recorded as failed.
        progress: show a progress bar.
        executor: runs one spec in a worker (default `execute`); a module-level function, since
            workers import it by name.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    from sparsetorch.bench.tasks import TASKS

    start = time.time()
    store = Store(directory)
    owner = this_owner()
    try:
        rows = {spec.row()["config_hash"]: spec for spec in runs}
        store.add(row for row in (spec.row() for spec in runs))
        done = {r.config_hash for r in store.records(status="complete", hashes=rows)}
        todo = [(h, s) for h, s in rows.items() if h not in done]
        for spec in {s.task: s for _, s in todo}.values():
            prepare = getattr(TASKS.get(spec.task), "prepare", None)
            if prepare:
                prepare()
        pooled = [(h, s) for h, s in todo if not TASKS.get(s.task).exclusive]
        alone = [(h, s) for h, s in todo if TASKS.get(s.task).exclusive]
        cpus = os.cpu_count() or 1
        bar = _Progress(len(todo), progress)
        counts = {"complete": 0, "failed": 0, "skipped": 0}

        def record(h: str, outcome: Outcome) -> None:
            if outcome["ok"]:
                ok = store.complete(h, owner, outcome["metrics"], outcome["environment"])
            else:
                ok = store.fail(h, owner, outcome["error"], outcome.get("environment"))
            counts["complete" if ok and outcome["ok"] else "failed" if ok else "skipped"] += 1
            bar.update(rows[h].label, advance=1)

        try:
            claim = _claimer(store, owner, retry_failed, counts, bar)
            if ray:
                _run_ray(pooled, ray, workers, max(1, cpus // workers), claim, record, executor)
                _run_ray(alone, ray, 1, cpus, claim, record, executor)
            else:
                _run_local(pooled, workers, max(1, cpus // workers), claim, record, store, owner, executor)
                _run_local(alone, 1, cpus, claim, record, store, owner, executor)
        finally:
            bar.close()
        return SweepResult(
            len(rows),
            counts["complete"],
            counts["failed"],
            counts["skipped"] + len(done),
            time.time() - start,
        )
    finally:
        store.close()


def _claimer(
    store: Store, owner: str, retry_failed: bool, counts: dict[str, int], bar: _Progress
) -> Callable[[str], bool]:
    def claim(h: str) -> bool:
        if store.claim(h, owner, retry_failed=retry_failed):
            return True
        counts["skipped"] += 1  # complete meanwhile, failed and not retried, or another bench has it
        bar.update("", advance=1)
        return False

    return claim


def _run_local(
    todo: list[tuple[str, RunSpec]],
    workers: int,
    threads: int,
    claim: Callable[[str], bool],
    record: Callable[[str, Outcome], None],
    store: Store,
    owner: str,
    executor: Executor,
) -> None:
    ctx = mp.get_context("spawn")
    queue = list(todo)
    active: dict[str, tuple[Any, Any]] = {}  # hash -> (process, connection)
    try:
        while queue or active:
            while queue and len(active) < workers:
                h, spec = queue.pop(0)
                if not claim(h):
                    continue
                recv, send = ctx.Pipe(duplex=False)
                proc = ctx.Process(target=_child, args=(send, executor, asdict(spec), threads), daemon=True)
                proc.start()
                send.close()
                active[h] = (proc, recv)
            if not active:
                continue
            ready = wait(
                [c for _, c in active.values()] + [p.sentinel for p, _ in active.values()], timeout=1.0
            )
            for h, (proc, conn) in list(active.items()):
                if conn not in ready and proc.sentinel not in ready:
                    continue
                outcome = None
                if conn.poll():
                    try:
                        outcome = conn.recv()
                    except EOFError:
                        outcome = None
                proc.join(timeout=30)
                if outcome is None:
                    outcome = {
                        "ok": False,
                        "error": f"worker process died (exit code {proc.exitcode}) before reporting",
                    }
                conn.close()
                del active[h]
                record(h, outcome)
    except BaseException:
        for proc, _ in active.values():
            proc.kill()
        store.release(active, owner)
        raise


def check_ray_address(address: str, *, timeout: float = 5.0) -> None:
    """Fail fast (BenchError) when nothing listens at a Ray `host:port`."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            pass
    except (OSError, ValueError) as e:
        raise BenchError(f"cannot reach the Ray cluster at {address!r}: {e}") from None


def _run_ray(
    todo: list[tuple[str, RunSpec]],
    address: str,
    workers: int,
    threads: int,
    claim: Callable[[str], bool],
    record: Callable[[str, Outcome], None],
    executor: Executor,
) -> None:
    if not todo:
        return
    try:
        import ray
    except ImportError as e:
        raise BenchError("--ray needs Ray: pip install 'sparsetorch[ray]'") from e
    if not ray.is_initialized():
        if address == "local":
            ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
        else:
            check_ray_address(address)
            ray.init(address=address, log_to_driver=False)
    remote = ray.remote(num_cpus=min(threads, math.floor(ray.cluster_resources().get("CPU", 1))))(executor)
    queue = list(todo)
    active: dict[Any, str] = {}  # object ref -> hash
    while queue or active:
        while queue and len(active) < workers:
            h, spec = queue.pop(0)
            if claim(h):
                active[remote.options(max_retries=0).remote(asdict(spec), threads)] = h
        if not active:
            continue
        ready, _ = ray.wait(list(active), num_returns=1)
        for ref in ready:
            h = active.pop(ref)
            try:
                outcome = ray.get(ref)
            except Exception as e:  # the worker died: record, keep going
                outcome = {"ok": False, "error": f"Ray task failed: {type(e).__name__}: {e}"}
            record(h, outcome)


def default_dir(suite_name: str) -> Path:
    return Path("sparsetorch-bench") / suite_name
