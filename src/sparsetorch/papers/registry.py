"""The paper registry and what a key leads to: `get_paper`, `list_papers`, `run_paper`, `entry_points`.

`PAPERS` is a `sparsetorch.registry.Registry[Paper]` keyed by paper key. The catalog modules
(`papers/catalog/<axis>.py`, one per axis) hold every entry and register them at import; a paper
with a reproduction keeps its catalog entry and points `reproduce=` at its module
`papers/<key>.py`, which holds only the reproduction.

A paper key resolves to its entry points (`entry_points(paper=key)`): the registered methods, gates,
activations and drivers whose `paper` names it, plus the ones its catalog entry declares in
`entry_points` (registered `"kind:name"`s, or `"module:attribute"` paths). Each registered entry is
claimed by at most one paper.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import importlib

from sparsetorch import discovery
from sparsetorch.discovery import Entry
from sparsetorch.papers.base import Axis, Paper, Result, check_scale
from sparsetorch.registry import Registry

__all__ = ["PAPERS", "entry_points", "get_paper", "list_papers", "register_paper", "run_paper"]

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


def _declared(paper: Paper) -> list[Entry]:
    """The entries `paper` declares: registered `"kind:name"`s and `"module:attribute"` paths."""
    found = []
    for point in paper.entry_points:
        if "." in point:  # "module:attribute": a function or class that is no registered method
            module, _, attribute = point.partition(":")
            obj = getattr(importlib.import_module(module), attribute)
            kind = "class" if isinstance(obj, type) else "function"
            found.append(Entry(attribute, kind, paper.axis, paper.key, point))
            continue
        kind, _, name = point.partition(":")
        (entry,) = discovery.entries(name, kind=kind)
        if entry.paper not in ("", paper.key):
            raise ValueError(f"paper {paper.key!r} claims {point!r}, which names paper {entry.paper!r}")
        found.append(dataclasses.replace(entry, paper=paper.key))
    return found


def entry_points(pattern: str = "*", *, kind: str | None = None, paper: str | None = None) -> list[Entry]:
    """Registered entries (as `discovery.entries`) with the paper that claims each, and the declared
    `"module:attribute"` entry points of the papers; only those of `paper`, if given.

    Raises:
        KeyError: unknown `paper` key or `kind`, with the closest names suggested.
        ValueError: two papers claim the same entry.
    """
    keys = [get_paper(paper).key] if paper is not None else PAPERS.list()
    claimed: dict[tuple[str, str], Entry] = {}
    paths: list[Entry] = []
    for key in PAPERS.list():
        for entry in _declared(PAPERS.get(key)):
            if entry.kind in ("class", "function"):
                paths.append(entry)
            elif claimed.setdefault((entry.kind, entry.name), entry).paper != key:
                raise ValueError(f"{entry.kind} {entry.name!r} is claimed by two papers")
    rows = [claimed.get((e.kind, e.name), e) for e in discovery.entries(pattern, kind=kind)]
    if kind is None:
        rows += [e for e in paths if fnmatch.fnmatchcase(e.name, pattern)]
    return [e for e in rows if paper is None or e.paper in keys]
