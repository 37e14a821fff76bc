"""The seed papers of sparsetorch: each paper's claim, its reproduction and the verdict.

    >>> from sparsetorch.papers import get_paper, list_papers, run_paper
    >>> get_paper("g2gnet").axis
    <Axis.CONNECTIONS: 'connections'>
    >>> len(list_papers(axis="time"))
    8

`entry_points(paper=key)` lists what a user calls for a paper (its registered methods, gates,
activations, drivers, and declared functions). `run_paper(key, scale)` returns a `Result` whose
`holds` is computed from its checks; planned papers raise `NotImplementedError`.
`python -m sparsetorch.papers` prints the markdown of docs/papers.md.
"""

from __future__ import annotations

from sparsetorch.papers import catalog  # noqa: F401  (registers the catalog entries)
from sparsetorch.papers.base import (
    AXIS_DESCRIPTIONS,
    SCALES,
    Axis,
    Check,
    Paper,
    Result,
    Scale,
    Status,
    check_scale,
)
from sparsetorch.papers.registry import (
    PAPERS,
    entry_points,
    get_paper,
    list_papers,
    register_paper,
    run_paper,
)
from sparsetorch.papers.render import papers_markdown, papers_table

__all__ = [
    "AXIS_DESCRIPTIONS",
    "PAPERS",
    "SCALES",
    "Axis",
    "Check",
    "Paper",
    "Result",
    "Scale",
    "Status",
    "check_scale",
    "entry_points",
    "get_paper",
    "list_papers",
    "papers_markdown",
    "papers_table",
    "register_paper",
    "run_paper",
]
