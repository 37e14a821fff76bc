"""Results that ship with the code: one JSON file per paper, read back without re-running anything.

`sparsetorch papers run KEY --store` runs the reproduction at several seeds (through the bench,
`sparsetorch.papers.sweep`) and writes ``<results>/KEY.json`` (`store_result`) once every seed
succeeded: each seed's own result (`SeedRun`) and their aggregate (`sparsetorch.papers.stats`),
whose claim checks carry intervals. A failed or interrupted run writes nothing, and the write itself
is atomic (`sparsetorch._io.atomic_path`), so no partial result is ever recorded as complete. The
folder is `results_dir()`: ``$SPARSETORCH_RESULTS`` if set, else ``results/papers`` of the checkout.

Each file carries `code_hash`: a SHA-256 over the source of the modules the paper's catalog
entry lists (`Paper.modules`) plus the module of its `reproduce` function (`code_sources`). A
stored result whose hash differs from the current code's is ``"stale"``; one that matches is
``"reproduced"`` (`paper_status`).

Reading (`read_result`) follows the loader principle of `sparsetorch._checks`: the file's size,
format, version and every field are checked, and the stored ``holds`` / ``passed`` flags must
agree with the ones recomputed from the numbers, and the aggregate must be the one recomputed from
the stored seeds, before anything is believed. A corrupt, edited or foreign file raises
`ResultFileError` (a `ValueError`) naming the file.

The verdict (`verdict`) counts the claim checks only; sanity checks are reported apart.
"""

from __future__ import annotations

import ast
import datetime
import hashlib
import importlib.util
import json
import math
import os
import platform
import re
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sparsetorch._io import atomic_path
from sparsetorch.errors import SparsetorchError
from sparsetorch.papers.base import OPS, SCALES, Check, Paper, Result, check_scale
from sparsetorch.papers.stats import RULE, aggregate

__all__ = [
    "FORMAT",
    "RESULTS_ENV",
    "VERSION",
    "PaperStatus",
    "ResultFileError",
    "SeedRun",
    "StoredResult",
    "code_hash",
    "code_sources",
    "load_result",
    "paper_status",
    "paper_statuses",
    "read_result",
    "record_run",
    "repository",
    "result_path",
    "results_dir",
    "store_result",
    "stored_result",
    "verdict",
]

FORMAT = "sparsetorch-paper-result"
VERSION = 2
RESULTS_ENV = "SPARSETORCH_RESULTS"
MAX_BYTES = 4 * 2**20  # a result is a few KiB; anything this large is not one of ours
_HEX64 = re.compile(r"[0-9a-f]{64}")
_FIELDS = (
    "format", "version", "key", "scale", "result", "runs", "rule", "wall_time_s", "created", "commit",
    "cpu", "versions", "code_hash",
)  # fmt: skip
_CHECK_FIELDS = {"name", "kind", "measured", "op", "threshold", "interval", "seeds", "paper", "passed"}
_REPO = Path(__file__).resolve().parents[3]  # src/sparsetorch/papers/results.py -> the checkout


class ResultFileError(SparsetorchError, ValueError):
    """A stored result file that is corrupt, edited by hand, or not one of ours."""


@dataclass(frozen=True)
class SeedRun:
    """One run of a reproduction: its seed, its own result and how long it took."""

    seed: int
    result: Result
    wall_time_s: float

    def to_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "wall_time_s": self.wall_time_s, "result": self.result.to_dict()}


@dataclass(frozen=True, kw_only=True)
class StoredResult:
    """A reproduction as stored: each seed's run, their aggregate (the verdict), the scale, and the
    code and machine it measured. Build one with `stored_result`."""

    key: str
    scale: str
    result: Result
    runs: tuple[SeedRun, ...]
    code_hash: str
    wall_time_s: float
    created: str = ""
    commit: str | None = None
    cpu: str = ""
    versions: Mapping[str, str] = field(default_factory=dict)

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(r.seed for r in self.runs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "key": self.key,
            "scale": self.scale,
            "result": self.result.to_dict(),
            "runs": [r.to_dict() for r in self.runs],
            "rule": RULE,
            "wall_time_s": self.wall_time_s,
            "created": self.created,
            "commit": self.commit,
            "cpu": self.cpu,
            "versions": dict(self.versions),
            "code_hash": self.code_hash,
        }


def stored_result(
    paper: Paper,
    scale: str,
    runs: Iterable[SeedRun],
    *,
    commit: str | None = None,
    cpu: str | None = None,
    versions: Mapping[str, str] | None = None,
    code: str | None = None,
) -> StoredResult:
    """The `StoredResult` of `paper`'s `runs` at `scale`: sorted by seed, aggregated, stamped now.

    `commit`, `cpu` and `versions` default to this process's; `code` to the current `code_hash`.

    Raises:
        ValueError: no runs, repeated seeds, or runs with different checks.
    """
    ordered = tuple(sorted(runs, key=lambda r: r.seed))
    seeds = [r.seed for r in ordered]
    result = aggregate([r.result for r in ordered], seeds=seeds)
    return StoredResult(
        key=paper.key,
        scale=check_scale(scale),
        result=result,
        runs=ordered,
        code_hash=code_hash(paper) if code is None else code,
        wall_time_s=round(sum(r.wall_time_s for r in ordered), 3),
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        commit=_commit() if commit is None else commit,
        cpu=_cpu() if cpu is None else cpu,
        versions=_versions() if versions is None else dict(versions),
    )


@dataclass(frozen=True)
class PaperStatus:
    """A paper's status with its stored result: ``planned``, ``implemented`` (no stored result),
    ``reproduced`` (stored, same code) or ``stale`` (stored, the code changed since)."""

    status: str
    stored: StoredResult | None = None

    @property
    def verdict(self) -> str:
        """The stored verdict with the scale it rests on, e.g. ``"holds (small)"``; "" without one."""
        return "" if self.stored is None else f"{verdict(self.stored.result)} ({self.stored.scale})"


def verdict(result: Result) -> str:
    """``"holds"``, ``"does not hold"`` (no claim check passed, or none) or ``"partial (k of n claims)"``.

    Only claim checks count; sanity checks are reported apart.
    """
    n_pass, n = sum(c.passed for c in result.claims), len(result.claims)
    if result.holds:
        return "holds"
    return "does not hold" if n_pass == 0 else f"partial ({n_pass} of {n} claims)"


# --- the code a result measured -----------------------------------------------------------------


# The papers' own vocabulary: a change here is not a change of what a reproduction measures.
_SHARED = frozenset({"sparsetorch.papers.base", "sparsetorch.papers.results", "sparsetorch.papers.stats"})


def _helpers(path: Path) -> set[str]:
    """The `sparsetorch.papers.*` modules that the source in `path` imports (at any depth), so a
    reproduction's shared helpers (e.g. `fashion_runs`) count as code it measured."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
        names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
        found |= {n for n in names if n.startswith("sparsetorch.papers.") and n not in _SHARED}
    return found


def code_sources(paper: Paper) -> dict[str, Path]:
    """The source file of each module `paper` lists, of its `reproduce` function's module, and of
    the `sparsetorch.papers` helper modules that one imports (transitively).

    Raises:
        ValueError: a module cannot be found or has no source file.
    """
    todo = set(paper.modules)
    if paper.reproduce is not None:
        todo.add(paper.reproduce.__module__)
    sources: dict[str, Path] = {}
    while todo:
        name = todo.pop()
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.origin or not os.path.isfile(spec.origin):
            raise ValueError(f"paper {paper.key!r}: module {name!r} has no source file to hash")
        sources[name] = Path(spec.origin)
        if name.startswith("sparsetorch.papers."):
            todo |= _helpers(sources[name]) - set(sources)
    return dict(sorted(sources.items()))


def code_hash(paper: Paper, *, sources: Mapping[str, Path] | None = None) -> str:
    """SHA-256 (hex) over the module names and source bytes of `sources` (default `code_sources`)."""
    digest = hashlib.sha256()
    for name, path in sorted((code_sources(paper) if sources is None else sources).items()):
        data = Path(path).read_bytes()
        # Name and length first, so two module sets can never hash the same by shifting bytes.
        digest.update(f"{name}\n{len(data)}\n".encode())
        digest.update(data)
    return digest.hexdigest()


# --- recording and storing a run ----------------------------------------------------------------


def _commit() -> str | None:
    """The checkout's git commit, or None outside a checkout (an installed package, no git)."""
    if not (_REPO / ".git").exists():
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(_REPO), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _versions() -> dict[str, str]:
    import torch

    import sparsetorch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "sparsetorch": sparsetorch.__version__,
    }


def record_run(paper: Paper, scale: str, *, seeds: Iterable[int] = (0,)) -> StoredResult:
    """Run `paper` at `scale` once per seed, in this process, and return the stored result.

    `sparsetorch papers run` goes through the bench instead (a process per run, resume, workers);
    this is the same measurement for a library user or a test. Any error (or interrupt) from a run
    propagates; nothing is recorded for it.
    """
    check_scale(scale)
    runs = []
    for seed in seeds:
        start = time.perf_counter()
        result = paper.run(scale, seed=seed)
        runs.append(SeedRun(seed, result, round(time.perf_counter() - start, 3)))
    return stored_result(paper, scale, runs)


def repository() -> Path | None:
    """The checkout this package runs from (it has pyproject.toml and src/sparsetorch); None for an
    installed package."""
    if (_REPO / "pyproject.toml").is_file() and (_REPO / "src" / "sparsetorch").is_dir():
        return _REPO
    return None


def results_dir(override: str | os.PathLike | None = None) -> Path | None:
    """The results folder: `override`, else ``$SPARSETORCH_RESULTS``, else ``results/papers`` of
    the checkout this package runs from; None for an installed package with neither set."""
    if override is not None:
        return Path(override)
    if os.environ.get(RESULTS_ENV):
        return Path(os.environ[RESULTS_ENV])
    root = repository()
    return None if root is None else root / "results" / "papers"


def result_path(key: str, folder: Path, scale: str = "small") -> Path:
    """``KEY.json`` for the small scale (the one every implemented paper ships), ``KEY.SCALE.json``
    for the others, so a tiny or full run never replaces the small result."""
    check_scale(scale)
    return Path(folder) / (f"{key}.json" if scale == "small" else f"{key}.{scale}.json")


def store_result(stored: StoredResult, *, folder: Path) -> Path:
    """Write `stored` to ``folder/KEY.json`` atomically and return the path."""
    path = result_path(stored.key, folder, stored.scale)
    text = json.dumps(stored.to_dict(), indent=2) + "\n"
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    return path


# --- reading a stored result, strictly ----------------------------------------------------------


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} must be a number, got {value!r}")
    return float(value)


def _typed(data: Mapping[str, Any], name: str, kinds: type | tuple[type, ...]) -> Any:
    value = data[name]
    if not isinstance(value, kinds):
        raise ValueError(f"field {name!r} has the wrong type ({type(value).__name__})")
    return value


def _parse_check(raw: Any, i: int) -> Check:
    if not isinstance(raw, dict) or set(raw) != _CHECK_FIELDS:
        raise ValueError(f"check {i} is malformed")
    if not isinstance(raw["name"], str) or raw["op"] not in OPS or not isinstance(raw["passed"], bool):
        raise ValueError(f"check {i} is malformed")
    if not isinstance(raw["kind"], str) or not isinstance(raw["paper"], str):
        raise ValueError(f"check {i} is malformed")
    interval = raw["interval"]
    if interval is not None and (not isinstance(interval, list) or len(interval) != 2):
        raise ValueError(f"check {i}: interval must be [low, high] or null")
    if isinstance(raw["seeds"], bool) or not isinstance(raw["seeds"], int):
        raise ValueError(f"check {i}: seeds must be an integer")
    check = Check(
        raw["name"],
        _number(raw["measured"], "measured"),
        raw["op"],
        _number(raw["threshold"], "threshold"),
        kind=raw["kind"],
        paper=raw["paper"],
        interval=None if interval is None else tuple(_number(v, "interval") for v in interval),
        seeds=raw["seeds"],
    )
    if check.passed != raw["passed"]:
        raise ValueError(f"check {check.name!r} says passed={raw['passed']}, but its numbers say otherwise")
    return check


def _parse_result(raw: Any) -> Result:
    if not isinstance(raw, dict) or set(raw) != {"holds", "metrics", "checks", "note"}:
        raise ValueError("field 'result' is malformed")
    metrics, checks = _typed(raw, "metrics", dict), _typed(raw, "checks", list)
    result = Result(
        metrics={str(k): _number(v, f"metric {k!r}") for k, v in metrics.items()},
        checks=tuple(_parse_check(c, i) for i, c in enumerate(checks)),
        note=_typed(raw, "note", str),
    )
    if _typed(raw, "holds", bool) != result.holds:
        raise ValueError(f"it says holds={raw['holds']}, but its checks say otherwise")
    return result


def _parse(data: Any) -> StoredResult:
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"not a sparsetorch paper result (no format {FORMAT!r})")
    if data.get("version") != VERSION:
        raise ValueError(f"unsupported version {data.get('version')!r} (this sparsetorch reads {VERSION})")
    if set(data) != set(_FIELDS):
        raise ValueError(f"fields {sorted(set(data) ^ set(_FIELDS))} are missing or unknown")
    if data["scale"] not in SCALES:
        raise ValueError(f"unknown scale {data['scale']!r}")
    if not isinstance(data["code_hash"], str) or not _HEX64.fullmatch(data["code_hash"]):
        raise ValueError("field 'code_hash' is not a SHA-256 hex digest")
    wall = _number(data["wall_time_s"], "wall_time_s")
    if not math.isfinite(wall) or wall < 0:
        raise ValueError(f"wall_time_s {wall} is not a duration")
    if data["rule"] != RULE:
        raise ValueError(f"field 'rule' is {data['rule']!r}, not this sparsetorch's rule {RULE!r}")
    runs = tuple(_parse_run(r, i) for i, r in enumerate(_typed(data, "runs", list)))
    if not runs:
        raise ValueError("field 'runs' is empty")
    result = _parse_result(data["result"])
    try:
        again = aggregate([r.result for r in runs], seeds=[r.seed for r in runs])
    except ValueError as err:
        raise ValueError(f"field 'runs': {err}") from None
    if _canonical(again) != _canonical(result):  # as text: NaN metrics compare equal
        raise ValueError("field 'result' is not the aggregate of field 'runs'")
    versions = _typed(data, "versions", dict)
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in versions.items()):
        raise ValueError("field 'versions' must map names to version strings")
    return StoredResult(
        key=_typed(data, "key", str),
        scale=data["scale"],
        result=result,
        runs=runs,
        code_hash=data["code_hash"],
        wall_time_s=wall,
        created=_typed(data, "created", str),
        commit=_typed(data, "commit", (str, type(None))),
        cpu=_typed(data, "cpu", str),
        versions=versions,
    )


def _canonical(result: Result) -> str:
    return json.dumps(result.to_dict(), sort_keys=True)


def _parse_run(raw: Any, i: int) -> SeedRun:
    if not isinstance(raw, dict) or set(raw) != {"seed", "wall_time_s", "result"}:
        raise ValueError(f"run {i} is malformed")
    if isinstance(raw["seed"], bool) or not isinstance(raw["seed"], int):
        raise ValueError(f"run {i}: seed must be an integer")
    wall = _number(raw["wall_time_s"], f"run {i} wall_time_s")
    if not math.isfinite(wall) or wall < 0:
        raise ValueError(f"run {i}: wall_time_s {wall} is not a duration")
    return SeedRun(raw["seed"], _parse_result(raw["result"]), wall)


def read_result(path: str | os.PathLike, *, key: str | None = None) -> StoredResult:
    """The stored result in `path`, checked field by field (and its key against `key`, if given).

    Raises:
        ResultFileError: the file is too large, not UTF-8 JSON, not a paper result, or any field is
            missing, unknown, of the wrong type, or disagrees with the numbers; the message names it.
        OSError: the file cannot be read.
    """
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise ResultFileError(f"{path}: {size} bytes is too large for a paper result (at most {MAX_BYTES})")
    try:
        stored = _parse(json.loads(path.read_bytes().decode("utf-8")))
    except (ValueError, TypeError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ResultFileError(f"{path}: {err}") from None
    if key is not None and stored.key != key:
        raise ResultFileError(f"{path}: holds the result of {stored.key!r}, not {key!r}")
    return stored


def load_result(key: str, *, folder: Path | None, scale: str | None = None) -> StoredResult | None:
    """The stored result of paper `key` at `scale` in `folder`, or None when there is none (or no
    folder). Without a scale, the largest one stored: full, else small, else tiny; the verdict
    names the scale it rests on.

    Raises:
        ResultFileError: the file's own scale is not the one its name says.
    """
    if folder is None:
        return None
    for size in (scale,) if scale is not None else ("full", "small", "tiny"):
        path = result_path(key, folder, size)
        if path.is_file():
            stored = read_result(path, key=key)
            if stored.scale != size:
                raise ResultFileError(f"{path}: holds a {stored.scale!r} result, not {size!r}")
            return stored
    return None


def paper_status(paper: Paper, *, folder: Path | None) -> PaperStatus:
    """`paper`'s status with its stored result in `folder` (see `PaperStatus`)."""
    if paper.reproduce is None:
        return PaperStatus("planned")
    stored = load_result(paper.key, folder=folder)
    if stored is None:
        return PaperStatus("implemented")
    return PaperStatus("reproduced" if stored.code_hash == code_hash(paper) else "stale", stored)


def paper_statuses(papers: Iterable[Paper], *, folder: Path | None) -> dict[str, PaperStatus]:
    """`paper_status` of each paper, by key."""
    return {p.key: paper_status(p, folder=folder) for p in papers}
