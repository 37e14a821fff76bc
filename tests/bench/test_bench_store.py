"""The store: claims, completion in one transaction, dead-owner reclaim, versions, concurrency."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest

from sparsetorch.bench import BenchError, RunSpec, Store
from sparsetorch.bench.store import owner_alive, this_owner


def _rows(n: int = 3) -> list[dict]:
    return [RunSpec("kernel-speed", "dense", 0.0, "unstructured", seed).row() for seed in range(n)]


def test_add_is_idempotent_and_claim_complete_roundtrip(tmp_path):
    rows = _rows()
    with Store(tmp_path) as store:
        assert store.add(rows) == 3 and store.add(rows) == 0
        h = rows[0]["config_hash"]
        me = this_owner()
        assert store.claim(h, me)
        assert (tmp_path / "runs" / h / "config.json").is_file()
        assert store.complete(h, me, {"speedup": 1.0}, {"torch": "x"})
        assert not store.claim(h, me)  # complete: never rerun
        assert store.counts() == {"pending": 2, "running": 0, "complete": 1, "failed": 0}
        rec = store.records(status="complete")[0]
        assert rec.metrics == {"speedup": 1.0} and rec.attempts == 1


def test_running_under_a_dead_owner_is_reclaimed_but_a_live_one_is_not(tmp_path):
    rows = _rows(2)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    import socket

    dead_owner = f"{socket.gethostname()}:{int(dead.stdout)}:1"
    live_owner = this_owner()
    with Store(tmp_path) as store:
        store.add(rows)
        a, b = (r["config_hash"] for r in rows)
        assert store.claim(a, dead_owner) and store.claim(b, live_owner)
        assert not owner_alive(dead_owner) and owner_alive(live_owner)
        other = "otherhost-zz:1:1"
        assert store.claim(a, other)  # dead driver's run is taken over
        assert not store.claim(b, other)  # a live driver keeps its run
        assert not store.complete(a, dead_owner, {}, {})  # the old owner can no longer finish it


def test_failed_runs_keep_traceback_and_are_retried_only_when_asked(tmp_path):
    rows = _rows(1)
    h = rows[0]["config_hash"]
    me = this_owner()
    with Store(tmp_path) as store:
        store.add(rows)
        store.claim(h, me)
        assert store.fail(h, me, "Traceback ...\nValueError: boom")
        assert store.records(status="failed")[0].error.endswith("boom")
        assert not store.claim(h, me, retry_failed=False)
        assert store.claim(h, me)


def test_incompatible_or_corrupt_store_is_refused(tmp_path):
    Store(tmp_path).close()
    db = sqlite3.connect(tmp_path / "bench.sqlite")
    db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    with pytest.raises(BenchError, match="incompatible version"):
        Store(tmp_path)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "bench.sqlite").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(BenchError, match="not a readable bench store"):
        Store(bad)
    with pytest.raises(BenchError, match="not a bench directory"):
        Store(tmp_path / "nothing", create=False)


_WRITER = """
import sys
from sparsetorch.bench import RunSpec, Store
from sparsetorch.bench.store import this_owner
rows = [RunSpec("kernel-speed", "dense", 0.0, "unstructured", s).row() for s in range(40)]
with Store(sys.argv[1]) as store:
    store.add(rows)
    me = this_owner()
    for r in rows:
        if store.claim(r["config_hash"], me):
            store.complete(r["config_hash"], me, {"by": me}, {})
"""


def test_two_processes_writing_one_store_neither_corrupt_nor_duplicate(tmp_path):
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path)]) for _ in range(2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    with Store(tmp_path) as store:
        recs = store.records()
        assert len(recs) == 40 and all(r.status == "complete" and r.attempts == 1 for r in recs)
    db = sqlite3.connect(tmp_path / "bench.sqlite")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_database_that_is_not_ours_is_refused_and_left_as_it_was(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    db = sqlite3.connect(foreign / "bench.sqlite")
    db.execute("CREATE TABLE runs (x INTEGER)")
    db.commit()
    db.close()
    before = (foreign / "bench.sqlite").read_bytes()
    for create in (True, False):
        with pytest.raises(BenchError, match="not a sparsetorch bench store"):
            Store(foreign, create=create)
    assert (foreign / "bench.sqlite").read_bytes() == before
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "bench.sqlite").write_bytes(b"")
    with pytest.raises(BenchError, match="not a sparsetorch bench store"):
        Store(empty, create=False)  # a reader never writes a schema
    assert (empty / "bench.sqlite").stat().st_size == 0
    Store(empty).close()  # a writer (bench run) may start a store in an empty file
    with Store(empty, create=False) as store:
        assert store.records() == []


def test_a_runs_table_with_other_columns_is_refused(tmp_path):
    Store(tmp_path).close()
    db = sqlite3.connect(tmp_path / "bench.sqlite")
    db.execute("ALTER TABLE runs ADD COLUMN extra TEXT")
    db.commit()
    db.close()
    with pytest.raises(BenchError, match="runs table has columns"):
        Store(tmp_path, create=False)


@pytest.mark.parametrize(
    ("value", "message"), [("{bad", "corrupt metrics JSON"), ("[1]", "must be a JSON object")]
)
def test_corrupt_metrics_json_names_the_run(tmp_path, value, message):
    (row,) = _rows(1)
    with Store(tmp_path) as store:
        store.add([row])
        store.claim(row["config_hash"], "me")
        store.complete(row["config_hash"], "me", {"speedup": 1.0}, {})
    db = sqlite3.connect(tmp_path / "bench.sqlite")
    db.execute("UPDATE runs SET metrics = ?", (value,))
    db.commit()
    db.close()
    with Store(tmp_path, create=False) as store, pytest.raises(BenchError, match=message) as info:
        store.records()
    assert row["config_hash"] in str(info.value)


def test_a_file_where_the_directory_should_be(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    for create in (True, False):
        with pytest.raises(BenchError, match="is a file, not a directory"):
            Store(afile, create=create)
    with pytest.raises(BenchError, match="cannot create bench directory"):
        Store(afile / "sub")
    assert afile.read_text() == "x"


def test_columns_literal_matches_the_schema():
    """`_COLUMNS` is written out by hand: it must list the runs table's columns, in schema order."""
    from sparsetorch.bench.store import _COLUMNS, _SCHEMA

    db = sqlite3.connect(":memory:")
    try:
        db.executescript(_SCHEMA)
        found = tuple(row[1] for row in db.execute("PRAGMA table_info(runs)"))
    finally:
        db.close()
    assert found == _COLUMNS
