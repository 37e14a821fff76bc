"""Exporting a bench: CSV and Parquet round trips, one row per run, metrics as columns; bad input."""

from __future__ import annotations

import csv
import io
import math
import sys
from pathlib import Path

import pytest

from sparsetorch.bench.export import COLUMNS, export_runs
from sparsetorch.bench.store import BenchError, RunRecord, Store
from tests.bench.report_testutil import ENV, make_bench, spec


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> tuple[Path, list[RunRecord]]:
    directory = make_bench(tmp_path_factory.mktemp("bench"))
    with Store(directory, create=False) as store:
        return directory, store.records()


def metric_names(records: list[RunRecord]) -> list[str]:
    return sorted({f"metric_{k}" for r in records for k in r.metrics})


def test_csv_round_trip(bench, tmp_path):
    directory, records = bench
    text = export_runs(directory)
    assert isinstance(text, str)
    reader = csv.DictReader(io.StringIO(text))
    assert reader.fieldnames == [*COLUMNS, *metric_names(records)]
    rows = list(reader)
    # one row per run, in order
    assert [row["config_hash"] for row in rows] == [r.config_hash for r in records]
    for row, r in zip(rows, records, strict=True):
        for column in ("task", "method", "pattern", "status"):
            assert row[column] == getattr(r, column)
        assert int(row["seed"]) == r.seed and int(row["task_version"]) == r.task_version
        assert int(row["attempts"]) == r.attempts
        assert row["sparsity"] == ("" if r.sparsity is None else repr(float(r.sparsity)))
        assert row["started"] == ("" if r.started is None else repr(r.started))
        assert row["finished"] == ("" if r.finished is None else repr(r.finished))
        for name in metric_names(records):
            value = r.metrics.get(name.removeprefix("metric_"))
            assert row[name] == ("" if value is None else repr(value))
    assert {row["status"] for row in rows} == {"complete", "failed", "pending"}

    out = export_runs(directory, fmt="csv", out=tmp_path / "runs.csv")
    assert out == tmp_path / "runs.csv" and out.read_text() == text


def test_parquet_round_trip(bench, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    directory, records = bench
    out = export_runs(directory, fmt="parquet", out=tmp_path / "runs.parquet")
    assert out == tmp_path / "runs.parquet"
    table = pq.read_table(out)
    assert table.column_names == [*COLUMNS, *metric_names(records)]
    assert str(table.schema.field("seed").type) == "int64"
    assert str(table.schema.field("sparsity").type) == "double"
    assert str(table.schema.field("metric_test_accuracy").type) == "double"
    rows = table.to_pylist()
    assert len(rows) == len(records)
    for row, r in zip(rows, records, strict=True):
        assert {c: row[c] for c in COLUMNS} == {c: getattr(r, c) for c in COLUMNS}
        for name in metric_names(records):
            assert row[name] == r.metrics.get(name.removeprefix("metric_"))


def test_mixed_and_odd_metrics(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    with Store(tmp_path) as store:
        for seed, metrics in enumerate(
            [
                {"test_accuracy": 1, "per_layer": [0.5, 0.9], "note": "ok", "ok": True},
                {"test_accuracy": float("nan"), "per_layer": [0.1], "note": 3, "ok": False},
            ]
        ):
            run = spec("fmnist-mlp", "magnitude", 0.5, "unstructured", seed)
            store.add([run])
            store.claim(run["config_hash"], "me")
            store.complete(run["config_hash"], "me", metrics, ENV)
    rows = pq.read_table(export_runs(tmp_path, fmt="parquet", out=tmp_path / "x.parquet")).to_pylist()
    assert rows[0]["metric_test_accuracy"] == 1.0 and math.isnan(rows[1]["metric_test_accuracy"])
    assert [r["metric_per_layer"] for r in rows] == ["[0.5, 0.9]", "[0.1]"]  # non-scalars as JSON text
    assert [r["metric_note"] for r in rows] == ["ok", "3"]  # mixed kinds become strings
    assert [r["metric_ok"] for r in rows] == [True, False]
    text_rows = list(csv.DictReader(io.StringIO(export_runs(tmp_path))))
    assert text_rows[0]["metric_per_layer"] == "[0.5, 0.9]" and text_rows[1]["metric_test_accuracy"] == "nan"


def test_empty_store(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    Store(tmp_path).close()
    assert export_runs(tmp_path) == ",".join(COLUMNS) + "\n"
    table = pq.read_table(export_runs(tmp_path, fmt="parquet", out=tmp_path / "e.parquet"))
    assert table.num_rows == 0 and table.column_names == list(COLUMNS)


def test_bad_input(bench, tmp_path, monkeypatch):
    directory, _ = bench
    with pytest.raises(BenchError, match=r"unknown export format 'xlsx'.*csv, parquet"):
        export_runs(directory, fmt="xlsx")
    with pytest.raises(BenchError, match="--out"):
        export_runs(directory, fmt="parquet")
    with pytest.raises(BenchError, match="not a bench directory"):
        export_runs(tmp_path / "nowhere")
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if pyarrow were not installed
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(BenchError, match="needs pyarrow"):
        export_runs(directory, fmt="parquet", out=tmp_path / "x.parquet")
    assert not (tmp_path / "x.parquet").exists()


def test_csv_escapes_formula_like_text(tmp_path):
    texts = ['=HYPERLINK("http://x","y")', "+1", "-2+3", "@SUM(A1)", "\tx", "\rx", "plain", "a=b"]
    with Store(tmp_path) as store:
        run = spec("fmnist-mlp", "magnitude", 0.5, "unstructured", 0)
        store.add([run])
        store.claim(run["config_hash"], "me")
        metrics = {f"t{i}": t for i, t in enumerate(texts)} | {"negative": -0.5}
        store.complete(run["config_hash"], "me", metrics, ENV)
    (row,) = list(csv.DictReader(io.StringIO(export_runs(tmp_path))))
    cells = [row[f"metric_t{i}"] for i in range(len(texts))]
    assert cells == ["'" + t for t in texts[:6]] + ["plain", "a=b"]
    assert row["metric_negative"] == "-0.5"  # numbers are data, never escaped
