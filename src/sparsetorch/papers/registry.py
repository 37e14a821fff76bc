"""The paper registry and its entry points: `get_paper`, `list_papers`, `run_paper`.

`PAPERS` is a `sparsetorch.registry.Registry[Paper]` keyed by paper key; the catalog modules fill
it at import. A paper that gains a reproduction moves from the catalog to its own module
(`papers/<key>.py`), which registers the same entry with `reproduce=...` and `modules=(...)`.
"""

from __future__ import annotations

from sparsetorch.papers.base import Axis, Paper, Result, check_scale
from sparsetorch.registry import Registry

__all__ = ["PAPERS", "get_paper", "list_papers", "register_paper", "run_paper"]

PAPERS: Registry[Paper] = Registry("paper")


def register_paper(paper: Paper) -> Paper:
    """Add `paper` to `PAPERS` under its key.

    Raises:
        ValueError: the key is malformed or taken, or another paper has the same index.
    """
    for other_key, other in PAPERS.items():
        if other.index == paper.index:
            raise ValueError(f"paper {paper.key!r}: index {paper.index} is already used by {other_key!r}")
    PAPERS.register(paper.key, paper)
    return paper


def get_paper(key: str) -> Paper:
    """The paper registered as `key`.

    Raises:
        KeyError: unknown key; the message suggests the closest keys ("did you mean ...").
    """
    return PAPERS.get(key)


def list_papers(pattern: str = "*", axis: Axis | str | None = None) -> list[Paper]:
    """Papers whose key matches the glob `pattern` (and lie on `axis`, if given), by index.

    Raises:
        ValueError: `axis` is not a valid `Axis`.
    """
    wanted = None if axis is None else Axis(axis)
    found = [PAPERS.get(k) for k in PAPERS.list(pattern)]
    return sorted((p for p in found if wanted is None or p.axis is wanted), key=lambda p: p.index)


def run_paper(key: str, scale: str = "tiny") -> Result:
    """Reproduce paper `key` at `scale` (one of "tiny", "small", "full") and return its `Result`.

    Raises:
        ValueError: unknown scale.
        KeyError: unknown key, with "did you mean" suggestions.
        NotImplementedError: the paper is planned, i.e. has no reproduction yet.
    """
    check_scale(scale)
    return get_paper(key).run(scale)
