"""Where datasets live on disk, the error raised when one is missing, and the shared split rule.

No function here creates directories or touches the network: loaders only read what a package
manager (apt, pip) or the user has already put in place.

Split rule for corpora split by unit (a work, a source file): the units are sorted by name and
numbered from 0; unit `i` goes to `val` when `i % 10 == 8`, to `test` when `i % 10 == 9`, and to
`train` otherwise (about 80/10/10 by units, and stable when units are added at the end).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

DATA_ENV = "SPARSETORCH_DATA"
CACHE_ENV = "SPARSETORCH_CACHE"
SPLITS = ("train", "val", "test")


class DataNotFoundError(FileNotFoundError):
    """A dataset's source is missing; the message names what is missing and how to obtain it."""


def data_root() -> Path | None:
    """The user's data folder from `$SPARSETORCH_DATA`, or None when the variable is unset or empty."""
    value = os.environ.get(DATA_ENV, "").strip()
    return Path(value).expanduser() if value else None


def cache_dir() -> Path:
    """The cache folder: `$SPARSETORCH_CACHE`, default `~/.cache/sparsetorch` (not created here)."""
    value = os.environ.get(CACHE_ENV, "").strip()
    return Path(value).expanduser() if value else Path.home() / ".cache" / "sparsetorch"


def missing(what: str, *, how: str, tried: Sequence[Path] = ()) -> DataNotFoundError:
    """A `DataNotFoundError` saying that `what` is missing, where it was looked for, and `how` to get it."""
    looked = f" (looked in: {', '.join(str(p) for p in tried)})" if tried else ""
    return DataNotFoundError(f"{what} not found{looked}. To obtain it: {how}")


def file_key(path: Path) -> tuple[str, int, int]:
    """(resolved path, mtime in ns, size) of a file: a cache key that notices a replaced file."""
    resolved = path.resolve()
    stat = resolved.stat()
    return str(resolved), stat.st_mtime_ns, stat.st_size


def check_split(split: str, allowed: Sequence[str] = SPLITS) -> None:
    """Raise `ValueError` unless `split` is one of `allowed`."""
    if split not in allowed:
        raise ValueError(f"split must be one of {', '.join(repr(s) for s in allowed)}; got {split!r}")


def unit_split(index: int) -> str:
    """The split of the unit numbered `index` in sorted order (see the module docstring)."""
    return {8: "val", 9: "test"}.get(index % 10, "train")
