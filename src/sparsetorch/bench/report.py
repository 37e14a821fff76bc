"""The bench report: the leaderboard (pure, reused by the terminal table) and the static HTML page.

`leaderboard(records)` groups complete runs by (task, method, level) and ranks the methods of
each task and level by the task's primary metric, respecting `higher_is_better`. A level is the
sparsity for unstructured runs, the pattern for runs without a sparsity (N:M), and
`"pattern@sparsity"` for structured runs that have one (block, channel).

`write_report(dir)` writes `DIR/report.html`: one self-contained file (inline SVG plots from
matplotlib, inline CSS, no script, no network) with per-task metric-vs-sparsity curves (error
bars are the sample standard deviation over seeds), speed and size plots, leaderboards, failed
runs with their tracebacks, the environments, and every run linked to its `runs/<hash>/config.json`.

Only the newest version of each task is plotted and ranked: a task's version changes when its
data, model or budget does, so older runs measure something else.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from sparsetorch._io import atomic_path
from sparsetorch.bench.store import RunRecord, Store

Level = float | str
_UNSTRUCTURED = ("unstructured", "dense", "")
_NM = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")
SIZE_METRICS = ("size_ratio", "bytes_ratio")


def run_level(record: RunRecord) -> Level:
    """The comparison level of a run: its sparsity, its pattern (N:M), or `"pattern@sparsity"`."""
    if record.sparsity is None:
        return record.pattern
    if record.pattern in _UNSTRUCTURED:
        return float(record.sparsity)
    return f"{record.pattern}@{record.sparsity:g}"


def format_level(level: Level) -> str:
    """A level as shown in tables: `0.5`, `2:4`, `block4x16@0.5`."""
    return f"{level:g}" if isinstance(level, float) else level


def level_key(level: Level) -> tuple[int, float, str]:
    """Sort key: numeric sparsities first (ascending), then patterns by name."""
    return (0, level, "") if isinstance(level, float) else (1, 0.0, level)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _primary(record: RunRecord) -> float | None:
    return _number(record.metrics.get(record.config.get("metric", "")))


def _latest(records: Iterable[RunRecord]) -> list[RunRecord]:
    """Complete runs of the newest version of each task."""
    complete = [r for r in records if r.status == "complete"]
    newest: dict[str, int] = {}
    for r in complete:
        newest[r.task] = max(newest.get(r.task, r.task_version), r.task_version)
    return [r for r in complete if r.task_version == newest[r.task]]


def _differing(configs: list[dict[str, Any]]) -> dict[int, str]:
    """`{id(config): "k=v, ..."}` naming the keys whose values differ among `configs` ("" if none)."""
    keys = sorted({k for c in configs for k in c})
    varying = [k for k in keys if len({json.dumps(c.get(k), sort_keys=True) for c in configs}) > 1]
    return {id(c): ", ".join(f"{k}={c.get(k)}" for k in varying) for c in configs}


def distinguish(records: Iterable[RunRecord]) -> list[RunRecord]:
    """Runs relabelled so that only like is averaged with like.

    One directory may hold a task under several budgets (e.g. the quick and the standard suite),
    or a method under several params. Seeds are averaged only within one (task, budget) and one
    (method, params): where a task has more than one budget its name gets the differing budget
    keys (`fmnist-mlp [epochs=3]`), and likewise a method its differing params (`rigl [update_every=50]`).
    """
    records = list(records)
    budgets: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    params: dict[tuple[str, str], dict[str, dict[str, Any]]] = defaultdict(dict)
    for r in records:
        b, p = r.config.get("budget", {}), r.config.get("params", {})
        budgets[r.task].setdefault(json.dumps(b, sort_keys=True), b)
        params[(r.task, r.method)].setdefault(json.dumps(p, sort_keys=True), p)
    task_label = {t: _differing(list(v.values())) for t, v in budgets.items()}
    method_label = {k: _differing(list(v.values())) for k, v in params.items()}
    out = []
    for r in records:
        b = budgets[r.task][json.dumps(r.config.get("budget", {}), sort_keys=True)]
        p = params[(r.task, r.method)][json.dumps(r.config.get("params", {}), sort_keys=True)]
        tl, ml = task_label[r.task][id(b)], method_label[(r.task, r.method)][id(p)]
        out.append(
            dataclasses.replace(
                r, task=f"{r.task} [{tl}]" if tl else r.task, method=f"{r.method} [{ml}]" if ml else r.method
            )
        )
    return out


def _mean_std(values: list[float]) -> tuple[float, float]:
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) if len(values) > 1 else 0.0)


def _groups(
    records: Iterable[RunRecord], value: Callable[[RunRecord], float | None]
) -> dict[tuple[str, str, Level], list[tuple[RunRecord, float]]]:
    """`{(task, method, level): [(run, value), ...]}` over runs where `value` is a number."""
    out: dict[tuple[str, str, Level], list[tuple[RunRecord, float]]] = defaultdict(list)
    for r in records:
        v = value(r)
        if v is not None:
            out[(r.task, r.method, run_level(r))].append((r, v))
    return out


def leaderboard(records: list[RunRecord]) -> list[dict[str, Any]]:
    """Rank methods per task and level by the mean primary metric over seeds.

    Returns plain rows `{task, level, method, metric, mean, std, n, rank, higher_is_better}`
    ordered by task, level and rank. `std` is the sample standard deviation over seeds (0 for
    one seed); ties share a rank; a NaN mean ranks last.
    """
    rows = []
    for (task, method, level), pairs in _groups(_latest(distinguish(records)), _primary).items():
        config = pairs[0][0].config
        mean, std = _mean_std([v for _, v in pairs])
        rows.append(
            {
                "task": task,
                "level": level,
                "method": method,
                "metric": config["metric"],
                "mean": mean,
                "std": std,
                "n": len(pairs),
                "rank": 0,
                "higher_is_better": bool(config.get("higher_is_better", True)),
            }
        )
    by_bucket: dict[tuple[str, Level], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_bucket[(row["task"], row["level"])].append(row)
    for bucket in by_bucket.values():
        sign = -1.0 if bucket[0]["higher_is_better"] else 1.0
        bucket.sort(key=lambda r: (math.isnan(r["mean"]), 0.0 if math.isnan(r["mean"]) else sign * r["mean"]))
        for i, row in enumerate(bucket):
            same = i > 0 and row["mean"] == bucket[i - 1]["mean"]
            row["rank"] = bucket[i - 1]["rank"] if same else i + 1
    rows.sort(key=lambda r: (r["task"], level_key(r["level"]), r["rank"], r["method"]))
    return rows


# --- plots ------------------------------------------------------------------------------------


def _x(records: list[RunRecord]) -> float | None:
    """Where a group sits on the sparsity axis: its sparsity, else n:m's, else the achieved one."""
    first = records[0]
    if first.sparsity is not None:
        return float(first.sparsity)
    if m := _NM.match(first.pattern):
        n, m_ = int(m[1]), int(m[2])
        return 1.0 - n / m_ if m_ else None
    achieved = [v for r in records if (v := _number(r.metrics.get("achieved_sparsity"))) is not None]
    return statistics.fmean(achieved) if achieved else None


def _size(record: RunRecord) -> float | None:
    for key in SIZE_METRICS:
        if (v := _number(record.metrics.get(key))) is not None:
            return v
    return None


def _svg(fig: Any) -> str:
    import io

    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buf.getvalue()
    return text[text.index("<svg") :]  # drop the XML prolog and doctype: the SVG is inlined


def _plot(
    records: list[RunRecord],
    value: Callable[[RunRecord], float | None],
    *,
    title: str,
    ylabel: str,
    colors: dict[str, Any],
    reference: float | None = None,
    reference_label: str = "",
) -> str | None:
    """Value vs sparsity per method, error bars over seeds; None when nothing to plot.

    Unstructured levels are joined by a line; structured ones are separate markers labelled
    with their pattern; the dense baseline (or `reference`) is a horizontal dashed line.
    """
    from matplotlib.figure import Figure

    groups = _groups(records, value)
    if not groups:
        return None
    fig = Figure(figsize=(6.4, 3.8))
    ax = fig.add_subplot()
    curves: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    structured: list[tuple[str, str, float, float, float]] = []
    dense: list[float] = []
    for (_, method, level), pairs in groups.items():
        if method == "dense":
            dense += [v for _, v in pairs]
            continue
        x = _x([r for r, _ in pairs])
        if x is None:
            continue
        mean, std = _mean_std([v for _, v in pairs])
        if isinstance(level, float):
            curves[method].append((x, mean, std))
        else:
            structured.append((method, level, x, mean, std))
    markers = "s^Dv<>Ph*"
    pattern_marker = {p: markers[i % len(markers)] for i, p in enumerate(sorted({s[1] for s in structured}))}
    for method in sorted(curves):
        pts = sorted(curves[method])
        ax.errorbar(
            [p[0] for p in pts],
            [p[1] for p in pts],
            yerr=[p[2] for p in pts],
            marker="o",
            capsize=3,
            color=colors[method],
            label=method,
        )
    for method, level, x, mean, std in sorted(structured):
        ax.errorbar(
            [x],
            [mean],
            yerr=[std],
            marker=pattern_marker[level],
            markersize=8,
            linestyle="none",
            capsize=3,
            color=colors[method],
            label=f"{method} ({level})" if method not in curves else None,
        )
        ax.annotate(level, (x, mean), textcoords="offset points", xytext=(6, 6), fontsize=8)
    if dense:
        ax.axhline(statistics.fmean(dense), color="0.4", linestyle="--", label="dense")
    elif reference is not None:
        ax.axhline(reference, color="0.4", linestyle="--", label=reference_label)
    ax.set_title(title)
    ax.set_xlabel("sparsity")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _svg(fig)


# --- the page ---------------------------------------------------------------------------------


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _task_sections(
    records: list[RunRecord], board: list[dict[str, Any]], colors: dict[str, Any]
) -> list[dict]:
    latest = _latest(records)
    sections = []
    for task in sorted({r.task for r in records}):
        runs = [r for r in latest if r.task == task]
        every = [r for r in records if r.task == task]
        config = (runs or every)[0].config
        metric = config.get("metric", "?")
        hib = bool(config.get("higher_is_better", True))
        plots = []
        if runs:
            speed = config.get("kind") == "speed"
            plots.append(
                _plot(
                    runs,
                    _primary,
                    title=f"{task}: {'speed' if speed else metric} vs sparsity",
                    ylabel=f"{metric} ({'higher' if hib else 'lower'} is better)",
                    colors=colors,
                    reference=1.0 if metric == "speedup" else None,
                    reference_label="dense (1x)",
                )
            )
            plots.append(
                _plot(
                    runs,
                    _size,
                    title=f"{task}: size vs sparsity",
                    ylabel="compact bytes / dense bytes",
                    colors=colors,
                    reference=1.0,
                    reference_label="dense",
                )
            )
        counts = {s: sum(r.status == s for r in every) for s in ("complete", "failed", "pending", "running")}
        sections.append(
            {
                "name": task,
                "anchor": "task-" + re.sub(r"[^a-zA-Z0-9_-]", "-", task),
                "version": (runs or every)[0].task_version,
                "kind": config.get("kind", "?"),
                "metric": metric,
                "higher_is_better": hib,
                "plots": [p for p in plots if p],
                "board": [
                    row | {"level_text": format_level(row["level"])} for row in board if row["task"] == task
                ],
                "counts": counts,
                "older": sum(r.status == "complete" for r in every) - len(runs),
            }
        )
    return sections


def _environments(records: list[RunRecord]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for r in records:
        if r.environment:
            key = json.dumps(r.environment, sort_keys=True)
            seen.setdefault(key, {"env": dict(sorted(r.environment.items())), "runs": 0})["runs"] += 1
    return sorted(seen.values(), key=lambda e: -e["runs"])


def _run_rows(records: list[RunRecord], directory: Path) -> list[dict[str, Any]]:
    rows = []
    for r in sorted(records, key=lambda r: (r.task, r.method, level_key(run_level(r)), r.seed)):
        has_config = (directory / "runs" / r.config_hash / "config.json").is_file()
        seconds = r.finished - r.started if r.finished is not None and r.started is not None else None
        rows.append(
            {
                "hash": r.config_hash,
                "href": f"runs/{r.config_hash}/config.json" if has_config else None,
                "task": r.task,
                "version": r.task_version,
                "method": r.method,
                "level": format_level(run_level(r)),
                "seed": r.seed,
                "status": r.status,
                "metric": r.config.get("metric", ""),
                "value": _fmt(_primary(r)) if r.status == "complete" else "",
                "attempts": r.attempts,
                "seconds": _fmt(seconds) if r.status in ("complete", "failed") else "",
                "error": r.error or "",
                "last_line": (r.error or "").strip().splitlines()[-1] if r.error and r.error.strip() else "",
            }
        )
    return rows


def render_report(records: list[RunRecord], *, directory: str | os.PathLike, title: str | None = None) -> str:
    """The report page for `records` as one HTML string (links relative to `directory`)."""
    import jinja2

    from sparsetorch.bench._report_html import TEMPLATE

    directory = Path(directory)
    records = distinguish(records)
    board = leaderboard(records)
    methods = sorted({r.method for r in records} - {"dense"})
    palette = [f"C{i}" for i in range(10)]
    colors = {m: palette[i % len(palette)] for i, m in enumerate(methods)}
    runs = _run_rows(records, directory)
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["fmt"] = _fmt
    return env.from_string(TEMPLATE).render(
        title=title or f"sparsetorch bench — {directory.resolve().name}",
        generated=time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        total=len(records),
        counts={s: sum(r.status == s for r in records) for s in ("complete", "failed", "running", "pending")},
        tasks=_task_sections(records, board, colors),
        failed=[row for row in runs if row["status"] == "failed"],
        environments=_environments(records),
        runs=runs,
    )


def write_report(directory: str | os.PathLike) -> Path:
    """Write `DIR/report.html` from the bench store in `DIR` (atomically) and return its path.

    Raises `BenchError` if `DIR` is not a bench directory.
    """
    directory = Path(directory)
    with Store(directory, create=False) as store:
        records = store.records()
    html = render_report(records, directory=directory)
    path = directory / "report.html"
    with atomic_path(path) as tmp:
        Path(tmp).write_text(html, encoding="utf-8")
    return path
