"""Export a bench directory's runs as a table: CSV (text or file) or Parquet (file, via pyarrow).

One row per run: its identity (task, method, sparsity, pattern, seed, config hash), status,
task version, attempts, start and finish times (unix seconds), and each metric in its own
`metric_<name>` column (the union over all runs; empty where a run lacks it). CSV text cells
that a spreadsheet would read as a formula are escaped (`csv_cell`).
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

from sparsetorch._io import atomic_path
from sparsetorch.bench.store import BenchError, RunRecord, Store

FORMATS = ("csv", "parquet")
COLUMNS = (
    "task",
    "method",
    "sparsity",
    "pattern",
    "seed",
    "config_hash",
    "status",
    "task_version",
    "attempts",
    "started",
    "finished",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_TYPES = {
    "sparsity": "float",
    "seed": "int",
    "task_version": "int",
    "attempts": "int",
    "started": "float",
    "finished": "float",
}


def _rows(records: list[RunRecord]) -> tuple[list[str], list[dict[str, Any]]]:
    names = sorted({k for r in records for k in r.metrics})
    columns = [*COLUMNS, *(f"metric_{k}" for k in names)]
    rows = []
    for r in records:
        row = {c: getattr(r, c) for c in COLUMNS}
        for k in names:
            v = r.metrics.get(k)
            # a non-scalar metric (list, dict) stays one cell, as JSON
            row[f"metric_{k}"] = json.dumps(v, sort_keys=True) if isinstance(v, list | dict) else v
        rows.append(row)
    return columns, rows


def csv_cell(value: Any) -> Any:
    """A value as a safe CSV cell: text that a spreadsheet would run as a formula gets a `'` prefix.

    Why: a run's metrics or names may hold any text, and `=HYPERLINK(...)` opened in a spreadsheet
    is a live formula (CSV injection). As OWASP recommends, text starting with `=`, `+`, `-`, `@`,
    a tab or a carriage return is prefixed with a single quote; numbers are left as they are.
    """
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _csv(columns: list[str], rows: list[dict[str, Any]]) -> str:
    # The writer quotes a cell only for the characters of its line terminator: "\r\n" makes it quote
    # a cell holding a lone "\r" too; each line then ends in "\n" alone.
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\r\n")
    lines = []
    for row in [dict(zip(columns, columns, strict=True)), *rows]:
        buf.seek(0)
        buf.truncate()
        writer.writerow({k: csv_cell(v) for k, v in row.items()})
        lines.append(buf.getvalue()[:-2] + "\n")
    return "".join(lines)


def _arrow_type(values: list[Any], pa: Any) -> Any:
    """A column's Arrow type: bool, int64, float64, or string (mixed kinds become strings)."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return pa.bool_()
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return pa.int64()
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return pa.float64()
    return pa.string()


def _parquet(columns: list[str], rows: list[dict[str, Any]], out: Path) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as e:
        raise BenchError("--parquet needs pyarrow: pip install pyarrow (or use --csv)") from e
    arrays = {}
    for c in columns:
        values = [row[c] for row in rows]
        kind = _TYPES.get(c)
        if kind == "int":
            typ = pa.int64()
        elif kind == "float":
            typ = pa.float64()
        elif c.startswith("metric_"):
            typ = _arrow_type(values, pa)
        else:
            typ = pa.string()
        if typ == pa.string():
            values = [None if v is None else str(v) for v in values]
        elif typ == pa.float64():
            values = [None if v is None else float(v) for v in values]
        arrays[c] = pa.array(values, type=typ)
    table = pa.table(arrays) if arrays else pa.table({})
    with atomic_path(out) as tmp:
        pq.write_table(table, tmp)


def export_runs(
    directory: str | os.PathLike, *, fmt: str = "csv", out: str | os.PathLike | None = None
) -> str | Path:
    """Export every run of the bench in `directory`, in insertion order.

    Args:
        directory: a bench directory (holding `bench.sqlite`).
        fmt: `"csv"` or `"parquet"`.
        out: file to write (atomically). Without it, CSV is returned as a string; Parquet requires it.

    Returns:
        The CSV text when `out` is None, else the path written.

    Raises:
        BenchError: unknown format, Parquet without `out` or without pyarrow, not a bench directory.
    """
    if fmt not in FORMATS:
        raise BenchError(f"unknown export format {fmt!r}: expected one of {', '.join(FORMATS)}")
    path = None if out is None else Path(out)
    if fmt == "parquet" and path is None:
        raise BenchError("Parquet is binary: give a file to write with --out FILE")
    with Store(directory, create=False) as store:
        records = store.records()
    columns, rows = _rows(records)
    if fmt == "parquet" and path is not None:
        _parquet(columns, rows, path)
        return path
    text = _csv(columns, rows)
    if path is None:
        return text
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    return path
