"""Results that ship with the code: one JSON file per paper, read back without re-running anything.

`sparsetorch papers run KEY --store` writes ``<results>/KEY.json`` (`store_result`) after a
successful run; a failed or interrupted run writes nothing, and the write itself is atomic
(`sparsetorch._io.atomic_path`), so no partial result is ever recorded as complete. The folder is
`results_dir()`: ``$SPARSETORCH_RESULTS`` if set, else ``results/papers`` of the checkout.

Each file carries `code_hash`: a SHA-256 over the source of the modules the paper's catalog
entry lists (`Paper.modules`) plus the module of its `reproduce` function (`code_sources`). A
stored result whose hash differs from the current code's is ``"stale"``; one that matches is
``"reproduced"`` (`paper_status`).

Reading (`read_result`) follows the loader principle of `sparsetorch._checks`: the file's size,
format, version and every field are checked, and the stored ``holds`` / ``passed`` flags must
agree with the ones recomputed from the numbers, before anything is believed. A corrupt, edited or
foreign file raises `ResultFileError` (a `ValueError`) naming the file.

The verdict (`verdict`) counts all checks for now; the split into claim and sanity checks, where
only claim checks count, is a later step.
"""

from __future__ import annotations

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

__all__ = [
    "FORMAT",
    "RESULTS_ENV",
    "VERSION",
    "PaperStatus",
    "ResultFileError",
    "StoredResult",
    "code_hash",
    "code_sources",
    "load_result",
    "paper_status",
    "paper_statuses",
    "read_result",
    "record_run",
    "result_path",
    "results_dir",
    "store_result",
    "verdict",
]

FORMAT = "sparsetorch-paper-result"
VERSION = 1
RESULTS_ENV = "SPARSETORCH_RESULTS"
MAX_BYTES = 4 * 2**20  # a result is a few KiB; anything this large is not one of ours
_HEX64 = re.compile(r"[0-9a-f]{64}")
_FIELDS = (
    "format", "version", "key", "scale", "result", "seeds", "wall_time_s", "created", "commit", "cpu",
    "versions", "code_hash",
)  # fmt: skip
_REPO = Path(__file__).resolve().parents[3]  # src/sparsetorch/papers/results.py -> the checkout


class ResultFileError(SparsetorchError, ValueError):
    """A stored result file that is corrupt, edited by hand, or not one of ours."""


@dataclass(frozen=True, kw_only=True)
class StoredResult:
    """A `Result` as stored: what was measured, at which scale, on which code and machine."""

    key: str
    scale: str
    result: Result
    code_hash: str
    wall_time_s: float
    seeds: tuple[int, ...] | None = None
    created: str = ""
    commit: str | None = None
    cpu: str = ""
    versions: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "key": self.key,
            "scale": self.scale,
            "result": self.result.to_dict(),
            "seeds": None if self.seeds is None else list(self.seeds),
            "wall_time_s": self.wall_time_s,
            "created": self.created,
            "commit": self.commit,
            "cpu": self.cpu,
            "versions": dict(self.versions),
            "code_hash": self.code_hash,
        }


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
    """``"holds"``, ``"does not hold"`` (no check passed, or no checks) or ``"partial (k of n checks)"``.

    Every check counts for now; a later step counts the claim checks only.
    """
    n_pass, n = sum(c.passed for c in result.checks), len(result.checks)
    if result.holds:
        return "holds"
    return "does not hold" if n_pass == 0 else f"partial ({n_pass} of {n} checks)"


# --- the code a result measured -----------------------------------------------------------------


def code_sources(paper: Paper) -> dict[str, Path]:
    """The source file of each module `paper` lists, and of its `reproduce` function's module.

    Raises:
        ValueError: a module cannot be found or has no source file.
    """
    names = set(paper.modules)
    if paper.reproduce is not None:
        names.add(paper.reproduce.__module__)
    sources = {}
    for name in sorted(names):
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.origin or not os.path.isfile(spec.origin):
            raise ValueError(f"paper {paper.key!r}: module {name!r} has no source file to hash")
        sources[name] = Path(spec.origin)
    return sources


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


def record_run(paper: Paper, scale: str) -> StoredResult:
    """Run `paper` at `scale` and return the result with its wall time, code hash and machine.

    Any error (or interrupt) from the run propagates; nothing is recorded for it.
    """
    check_scale(scale)
    start = time.perf_counter()
    result = paper.run(scale)
    wall = time.perf_counter() - start
    seeds = getattr(result, "seeds", None)  # a later step gives Result its seeds
    return StoredResult(
        key=paper.key,
        scale=scale,
        result=result,
        code_hash=code_hash(paper),
        wall_time_s=round(wall, 3),
        seeds=None if seeds is None else tuple(int(s) for s in seeds),
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        commit=_commit(),
        cpu=_cpu(),
        versions=_versions(),
    )


def results_dir(override: str | os.PathLike | None = None) -> Path | None:
    """The results folder: `override`, else ``$SPARSETORCH_RESULTS``, else ``results/papers`` of
    the checkout this package runs from; None for an installed package with neither set."""
    if override is not None:
        return Path(override)
    if os.environ.get(RESULTS_ENV):
        return Path(os.environ[RESULTS_ENV])
    if (_REPO / "pyproject.toml").is_file() and (_REPO / "src" / "sparsetorch").is_dir():
        return _REPO / "results" / "papers"
    return None


def result_path(key: str, folder: Path) -> Path:
    return Path(folder) / f"{key}.json"


def store_result(stored: StoredResult, *, folder: Path) -> Path:
    """Write `stored` to ``folder/KEY.json`` atomically and return the path."""
    path = result_path(stored.key, folder)
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
    if not isinstance(raw, dict) or set(raw) != {"name", "measured", "op", "threshold", "passed"}:
        raise ValueError(f"check {i} is malformed")
    if not isinstance(raw["name"], str) or raw["op"] not in OPS or not isinstance(raw["passed"], bool):
        raise ValueError(f"check {i} is malformed")
    check = Check(
        raw["name"], _number(raw["measured"], "measured"), raw["op"], _number(raw["threshold"], "threshold")
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
    seeds = _typed(data, "seeds", (list, type(None)))
    if seeds is not None and not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise ValueError("field 'seeds' must be a list of integers")
    versions = _typed(data, "versions", dict)
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in versions.items()):
        raise ValueError("field 'versions' must map names to version strings")
    return StoredResult(
        key=_typed(data, "key", str),
        scale=data["scale"],
        result=_parse_result(data["result"]),
        code_hash=data["code_hash"],
        wall_time_s=wall,
        seeds=None if seeds is None else tuple(seeds),
        created=_typed(data, "created", str),
        commit=_typed(data, "commit", (str, type(None))),
        cpu=_typed(data, "cpu", str),
        versions=versions,
    )


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


def load_result(key: str, *, folder: Path | None) -> StoredResult | None:
    """The stored result of paper `key` in `folder`, or None when there is none (or no folder)."""
    if folder is None:
        return None
    path = result_path(key, folder)
    return read_result(path, key=key) if path.is_file() else None


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
