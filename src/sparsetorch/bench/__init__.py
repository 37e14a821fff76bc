"""The bench: every method on the same tasks and budgets, in resumable sweeps, with a report.

    sparsetorch bench run --suite quick --dir runs/quick [--workers 2] [--ray local|HOST:PORT]
    sparsetorch bench report runs/quick          # runs/quick/report.html
    sparsetorch bench export runs/quick --csv

`tasks` (what a run measures), `suite` (YAML -> runs), `store` (SQLite, one per directory),
`runner` (local processes or Ray), `report` (HTML with plots) and `export` (CSV / Parquet).
"""

from sparsetorch.bench.runner import SweepResult, run_sweep
from sparsetorch.bench.spec import RunSpec
from sparsetorch.bench.store import BenchError, RunRecord, Store
from sparsetorch.bench.suite import Suite, load_suite
from sparsetorch.bench.tasks import TASKS, Task

__all__ = [
    "TASKS",
    "BenchError",
    "RunRecord",
    "RunSpec",
    "Store",
    "Suite",
    "SweepResult",
    "Task",
    "load_suite",
    "run_sweep",
]
