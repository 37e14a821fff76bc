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

Stored results (`sparsetorch.papers.results`): `record_run` runs a paper and records its result with
a hash of the code it measured, `store_result` writes ``results/papers/KEY.json``, and
`paper_status` reads it back: ``reproduced`` when the code is unchanged, ``stale`` when it changed.
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
from sparsetorch.papers.results import (
    ResultFileError,
    StoredResult,
    paper_status,
    paper_statuses,
    read_result,
    record_run,
    results_dir,
    store_result,
    verdict,
)

__all__ = [
    "AXIS_DESCRIPTIONS",
    "PAPERS",
    "SCALES",
    "Axis",
    "Check",
    "Paper",
    "Result",
    "ResultFileError",
    "Scale",
    "Status",
    "StoredResult",
    "check_scale",
    "entry_points",
    "get_paper",
    "list_papers",
    "paper_status",
    "paper_statuses",
    "papers_markdown",
    "papers_table",
    "read_result",
    "record_run",
    "register_paper",
    "results_dir",
    "run_paper",
    "store_result",
    "verdict",
]
