"""The bench store: one SQLite database per bench directory, safe to kill and to share.

Why SQLite: a sweep must survive `kill -9` at any instant and two benches writing the same
directory, without a server. Every state change is one transaction, so a run is `complete` only
together with its metrics; WAL mode and a busy timeout let several processes write in turn.

A run's life: `pending` (added) -> `running` (claimed by one driver, `owner` names it) ->
`complete` (metrics stored) or `failed` (traceback stored). A rerun claims every run that is not
complete, except ones `running` under a driver that is still alive (another bench at work).
Completed rows are never rewritten, and the config hash is the primary key, so nothing is ever
duplicated.

Layout of a bench directory:

    DIR/bench.sqlite            the store
    DIR/runs/<hash>/config.json  each run's resolved config (written when claimed)
    DIR/report.html             the report (`sparsetorch bench report DIR`)
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sparsetorch._io import atomic_path
from sparsetorch.errors import SparsetorchError

SCHEMA_VERSION = 1
DB_NAME = "bench.sqlite"
STATUSES = ("pending", "running", "complete", "failed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    config_hash  TEXT PRIMARY KEY,
    task         TEXT NOT NULL,
    task_version INTEGER NOT NULL,
    method       TEXT NOT NULL,
    sparsity     REAL,
    pattern      TEXT NOT NULL,
    seed         INTEGER NOT NULL,
    config       TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('pending', 'running', 'complete', 'failed')),
    metrics      TEXT,
    error        TEXT,
    environment  TEXT,
    owner        TEXT,
    attempts     INTEGER NOT NULL DEFAULT 0,
    created      REAL NOT NULL,
    started      REAL,
    finished     REAL
);
"""


# The runs table's column names, in schema order (a foreign table is refused). A literal, not parsed
# from `_SCHEMA`, so that a table-level constraint there cannot break it; a test checks the two agree.
_COLUMNS = (
    "config_hash",
    "task",
    "task_version",
    "method",
    "sparsity",
    "pattern",
    "seed",
    "config",
    "status",
    "metrics",
    "error",
    "environment",
    "owner",
    "attempts",
    "created",
    "started",
    "finished",
)


class BenchError(SparsetorchError, RuntimeError):
    """A bench problem the user must fix (bad suite, unreachable cluster, incompatible store)."""


@dataclass(frozen=True)
class RunRecord:
    """One row of the runs table, JSON fields decoded."""

    config_hash: str
    task: str
    task_version: int
    method: str
    sparsity: float | None
    pattern: str
    seed: int
    config: dict[str, Any]
    status: str
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    environment: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0
    created: float = 0.0
    started: float | None = None
    finished: float | None = None


def _proc_start(pid: int) -> str:
    """The kernel start time of `pid` (so a reused pid is not mistaken for a live driver)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "?"


def this_owner() -> str:
    """`host:pid:start` naming the current process as the driver that claims runs."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_proc_start(pid)}"


def owner_alive(owner: str | None) -> bool:
    """Whether the driver named by `owner` is still running (unknown hosts count as alive)."""
    if not owner:
        return False
    host, _, rest = owner.partition(":")
    pid_s, _, start = rest.partition(":")
    if host != socket.gethostname():
        return True  # can't check another machine: leave its runs alone
    try:
        pid = int(pid_s)
        os.kill(pid, 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return start in ("?", _proc_start(pid))


class Store:
    """The runs of one bench directory. Open with `Store(dir)`; each method is one transaction."""

    def __init__(self, directory: str | os.PathLike, *, create: bool = True) -> None:
        self.dir = Path(directory)
        path = self.dir / DB_NAME
        if self.dir.exists() and not self.dir.is_dir():
            raise BenchError(f"bench directory {self.dir} is a file, not a directory")
        if not create and not path.is_file():
            raise BenchError(f"{self.dir} is not a bench directory (no {DB_NAME})")
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise BenchError(f"cannot create bench directory {self.dir}: {e.strerror or e}") from None
        try:
            # Readers (report, export) open read-only: they never write a schema into a file.
            target = f"{path.resolve().as_uri()}?mode=ro" if not create else path
            self._db = sqlite3.connect(target, timeout=60.0, isolation_level=None, uri=not create)
            self._db.execute("PRAGMA busy_timeout = 60000")
            with self._tx(write=create):
                version, by = self._check_schema(path, create=create)
            if create and version == SCHEMA_VERSION:  # only once the file is known to be ours
                self._set_wal()
                self._db.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.DatabaseError as e:
            self._db_close_quietly()
            raise BenchError(f"{path} is not a readable bench store: {e}") from e
        except BenchError:
            self._db_close_quietly()
            raise
        if version != SCHEMA_VERSION:
            self.close()
            raise BenchError(
                f"bench directory {self.dir} was written by an incompatible version (store schema {version}, "
                f"sparsetorch {by}); this sparsetorch reads schema {SCHEMA_VERSION}. "
                "Use a new --dir."
            )
        self._check_columns(path)

    def _check_schema(self, path: Path, *, create: bool) -> tuple[int, str]:
        """(schema version, version that created it); creates the schema only in an empty database.

        Why refuse rather than add our tables: a database that already holds other tables is not
        ours, and writing into it would damage someone else's file."""
        tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables and create:
            from sparsetorch import __version__

            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    self._db.execute(stmt)
            self._db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            self._db.execute("INSERT INTO meta VALUES ('created_by', ?)", (__version__,))
            tables = {"meta", "runs"}
        row = None
        if "meta" in tables:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None or not str(row[0]).isdigit():
            raise BenchError(
                f"{path} is not a sparsetorch bench store (no schema version; tables: "
                f"{', '.join(sorted(tables)) or 'none'})"
            )
        by = self._db.execute("SELECT value FROM meta WHERE key = 'created_by'").fetchone()
        return int(row[0]), str(by[0]) if by else "?"

    def _check_columns(self, path: Path) -> None:
        found = [r[1] for r in self._db.execute("PRAGMA table_info(runs)")]
        if sorted(found) != sorted(_COLUMNS):
            self.close()
            raise BenchError(
                f"{path} is not a sparsetorch bench store: its runs table has columns {found or 'none'}"
            )

    def _db_close_quietly(self) -> None:
        db = getattr(self, "_db", None)
        if db is not None:
            db.close()

    def _set_wal(self) -> None:
        """WAL mode, retried: two processes creating one store at once can get "database is locked"
        from the journal-mode switch at once, without SQLite's busy handler waiting."""
        deadline = time.monotonic() + 60.0
        while True:
            try:
                self._db.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self, *, write: bool = True) -> Iterator[None]:
        # IMMEDIATE: take the write lock up front so a read-then-write is never interleaved.
        self._db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # --- writing --------------------------------------------------------------------------

    def add(self, runs: Iterable[dict[str, Any]]) -> int:
        """Insert runs (dicts with the identity columns and `config`) as pending; returns how many
        were new. Existing rows, whatever their status, are left exactly as they are."""
        now, added = time.time(), 0
        with self._tx():
            for r in runs:
                cur = self._db.execute(
                    "INSERT OR IGNORE INTO runs (config_hash, task, task_version, method, sparsity, pattern, seed,"
                    " config, status, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?)",
                    (
                        r["config_hash"],
                        r["task"],
                        r["task_version"],
                        r["method"],
                        r["sparsity"],
                        r["pattern"],
                        r["seed"],
                        json.dumps(r["config"], sort_keys=True),
                        now,
                    ),
                )
                added += cur.rowcount
        return added

    def claim(self, config_hash: str, owner: str, *, retry_failed: bool = True) -> bool:
        """Mark a run `running` under `owner` if it still needs running; False if it doesn't
        (complete, failed without `retry_failed`, or running under another live driver)."""
        with self._tx():
            row = self._db.execute(
                "SELECT status, owner, config FROM runs WHERE config_hash = ?", (config_hash,)
            ).fetchone()
            if row is None:
                raise KeyError(f"no run {config_hash} in {self.dir}")
            status, current, config = row
            if status == "complete" or (status == "failed" and not retry_failed):
                return False
            if status == "running" and current != owner and owner_alive(current):
                return False
            self._db.execute(
                "UPDATE runs SET status = 'running', owner = ?, attempts = attempts + 1, started = ?,"
                " error = NULL WHERE config_hash = ?",
                (owner, time.time(), config_hash),
            )
        run_dir = self.dir / "runs" / config_hash
        run_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(run_dir / "config.json") as tmp:
            Path(tmp).write_text(json.dumps(json.loads(config), indent=2, sort_keys=True) + "\n")
        return True

    def _finish(self, config_hash: str, owner: str, **values: Any) -> bool:
        cols = ", ".join(f"{k} = ?" for k in values)
        with self._tx():
            cur = self._db.execute(
                f"UPDATE runs SET {cols}, finished = ? WHERE config_hash = ? AND status = 'running' AND owner = ?",
                (*values.values(), time.time(), config_hash, owner),
            )
        return cur.rowcount == 1

    def complete(
        self, config_hash: str, owner: str, metrics: dict[str, Any], environment: dict[str, Any]
    ) -> bool:
        """Record a finished run with its metrics, in one transaction; False if `owner` no longer holds it."""
        return self._finish(
            config_hash,
            owner,
            status="complete",
            metrics=json.dumps(metrics, sort_keys=True, allow_nan=True),
            environment=json.dumps(environment, sort_keys=True),
        )

    def fail(
        self, config_hash: str, owner: str, error: str, environment: dict[str, Any] | None = None
    ) -> bool:
        """Record a crashed run with its traceback."""
        return self._finish(
            config_hash, owner, status="failed", error=error, environment=json.dumps(environment or {})
        )

    def release(self, config_hashes: Iterable[str], owner: str) -> None:
        """Give runs claimed by `owner` but not finished back as pending (an orderly stop)."""
        with self._tx():
            for h in config_hashes:
                self._db.execute(
                    "UPDATE runs SET status = 'pending', owner = NULL WHERE config_hash = ? AND owner = ?"
                    " AND status = 'running'",
                    (h, owner),
                )

    # --- reading --------------------------------------------------------------------------

    def records(self, *, status: str | None = None, hashes: Iterable[str] | None = None) -> list[RunRecord]:
        """Runs, optionally only those of one status or of the given hashes, in insertion order."""
        rows = self._db.execute("SELECT * FROM runs ORDER BY rowid").fetchall()
        names = [d[0] for d in self._db.execute("SELECT * FROM runs LIMIT 0").description]
        wanted = None if hashes is None else set(hashes)
        out = []
        for row in rows:
            d = dict(zip(names, row, strict=True))
            if (status and d["status"] != status) or (wanted is not None and d["config_hash"] not in wanted):
                continue
            for key in ("config", "metrics", "environment"):
                d[key] = self._decoded(d, key)
            d.pop("owner")
            out.append(RunRecord(**d))
        return out

    def _decoded(self, row: dict[str, Any], key: str) -> dict[str, Any]:
        """A JSON column of `row` as a dict; BenchError naming the run when it is not one."""
        try:
            value = json.loads(row[key]) if row[key] else {}
        except (TypeError, ValueError) as e:
            raise BenchError(
                f"{self.dir / DB_NAME}: run {row['config_hash']}: corrupt {key} JSON: {e}"
            ) from None
        if not isinstance(value, dict):
            raise BenchError(
                f"{self.dir / DB_NAME}: run {row['config_hash']}: {key} must be a JSON object, "
                f"got {type(value).__name__}"
            )
        return value

    def counts(self) -> dict[str, int]:
        """`{status: number of runs}`."""
        rows = self._db.execute("SELECT status, COUNT(*) FROM runs GROUP BY status").fetchall()
        return {s: 0 for s in STATUSES} | dict(rows)
