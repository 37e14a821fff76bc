"""Views of the paper registry and its stored verdicts: a rich table for the terminal, the markdown
of docs/papers.md (an overview over every paper, then one section per reproduced paper) and the
same verdicts as an HTML page (`papers_html`)."""

from __future__ import annotations

import importlib
import inspect
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from sparsetorch.papers.base import AXIS_DESCRIPTIONS, Check, Paper
from sparsetorch.papers.registry import entry_points, list_papers
from sparsetorch.papers.results import PaperStatus, StoredResult, repository, verdict
from sparsetorch.papers.stats import RULE

if TYPE_CHECKING:
    from rich.table import Table

__all__ = ["docs_path", "entry_names", "overview", "papers_html", "papers_markdown", "papers_table"]

REGENERATE = "sparsetorch papers report"
VERDICTS = ("holds", "partial", "does not hold", "stale", "not run", "planned")


def _truncate(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def entry_names(papers: Iterable[Paper] | None = None) -> dict[str, list[str]]:
    """Each paper's entry point names (registered names, or function / class names), by key."""
    names: dict[str, list[str]] = {}
    for entry in entry_points():
        names.setdefault(entry.paper, []).append(entry.name)
    return {p.key: names.get(p.key, []) for p in (list_papers() if papers is None else papers)}


def papers_table(
    papers: Iterable[Paper] | None = None,
    *,
    title_width: int = 60,
    entries_width: int = 32,
    statuses: Mapping[str, PaperStatus] | None = None,
) -> Table:
    """A rich table of `papers` (all registered papers by default): #, key, axis, status, entry
    points (what to call, see `entry_points`), title. With `statuses` (`results.paper_statuses`),
    the status column shows reproduced / stale and a verdict column the stored verdict."""
    from rich.table import Table
    from rich.text import Text

    papers = list(list_papers() if papers is None else papers)
    names = entry_names(papers)
    table = Table(title="sparsetorch papers")
    table.add_column("#", justify="right")
    table.add_column("key", no_wrap=True)
    # Only the title gives way on a narrow console; the other cells keep their width.
    table.add_column("axis", min_width=11)
    table.add_column("status", min_width=11)
    if statuses is not None:
        table.add_column("verdict", no_wrap=True)
    table.add_column("entry points", no_wrap=True)
    table.add_column("title")  # shrinks first; its cells end in "…" instead of wrapping
    for p in papers:
        # Text cells: titles are never parsed as rich markup.
        stored = None if statuses is None else statuses.get(p.key)
        cells = [Text(p.status if stored is None else stored.status)]
        if statuses is not None:
            cells.append(Text(stored.verdict if stored is not None else ""))
        table.add_row(
            str(p.index),
            Text(p.key),
            Text(p.axis.value),
            *cells,
            Text(_truncate(", ".join(names[p.key]) or "-", entries_width)),
            Text(_truncate(p.title, title_width), no_wrap=True, overflow="ellipsis"),
        )
    return table


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def docs_path() -> Path | None:
    """docs/papers.md of the checkout this package runs from; None for an installed package."""
    root = repository()
    return None if root is None else root / "docs" / "papers.md"


def overview(paper: Paper, status: PaperStatus | None) -> str:
    """One of `VERDICTS` for `paper`: its stored verdict's class, or why it has none."""
    if paper.reproduce is None:
        return "planned"
    if status is None or status.stored is None:
        return "not run"
    if status.status == "stale":
        return "stale"
    text = verdict(status.stored.result)
    return "partial" if text.startswith("partial") else text


def _num(value: float) -> str:
    return "nan" if math.isnan(value) else f"{value:.4g}"


def _ours(check: Check) -> str:
    text = f"{_num(check.measured)} {check.op} {_num(check.threshold)}"
    if check.interval is not None:
        low, high = check.interval
        text += f"; margin {check.margin:+.3g} [{low:+.3g}, {high:+.3g}]"
    return text


def _verdict_cell(paper: Paper, status: PaperStatus | None) -> str:
    if status is None or status.stored is None:
        return overview(paper, status)
    return f"{status.verdict}" + (" — stale" if status.status == "stale" else "")


def _check_rows(checks: Iterable[Check], *, claims: bool) -> list[str]:
    rows = []
    for c in checks:
        cells = [f"`{c.name}`", _cell(_ours(c)), "pass" if c.passed else "**fail**"]
        if claims:
            cells.insert(2, _cell(c.paper or "-"))
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def _section(paper: Paper, stored: StoredResult, status: str) -> list[str]:
    result = stored.result
    doc = inspect.getdoc(importlib.import_module(paper.reproduce.__module__)) or ""
    lines = [
        f"### {paper.index}. `{paper.key}` — {_verdict_cell(paper, PaperStatus(status, stored))}",
        "",
        f"**Claim.** {paper.claim}",
        "",
        f"**Run.** scale `{stored.scale}`, seeds {list(stored.seeds)}, {stored.wall_time_s / 60:.1f} min of runs; "
        f"commit `{(stored.commit or 'unknown')[:12]}`; {stored.cpu or 'unknown CPU'}; "
        + ", ".join(f"{k} {v}" for k, v in stored.versions.items())
        + ".",
        "",
        "| claim check | ours (mean; paired margin [±2 SE]) | paper | verdict |",
        "|---|---|---|---|",
        *_check_rows(result.claims, claims=True),
        "",
    ]
    if result.sanity:
        lines += [
            "| sanity check | ours | result |",
            "|---|---|---|",
            *_check_rows(result.sanity, claims=False),
            "",
        ]
    lines += [f"**Setup.** {_cell(result.note)}", ""]
    if doc:
        lines += ["<details><summary>Setup and deviations (from the reproduction's docstring)</summary>", ""]
        lines += [doc, "", "</details>", ""]
    lines += [f"Re-run: `sparsetorch papers run {paper.key} --scale {stored.scale} --store`", ""]
    return lines


def papers_markdown(*, statuses: Mapping[str, PaperStatus] | None = None) -> str:
    """The text of docs/papers.md: the verdict overview, the axis legend, one row per registered
    paper, then one section per paper with a stored result (`statuses`, from
    `results.paper_statuses`; without it, as if nothing were stored)."""
    statuses = statuses or {}
    papers = list_papers()
    axes = Counter(p.axis for p in papers)
    seeds = sum(p.seed for p in papers)
    kinds = Counter(overview(p, statuses.get(p.key)) for p in papers)
    lines = [
        "# Papers",
        "",
        f"<!-- Generated by `{REGENERATE}`; do not edit by hand. -->",
        "",
        f"The {seeds} seed papers of sparsetorch and {len(papers) - seeds} reference reproduction(s), each",
        "with the claim sparsetorch sets out to reproduce at small scale. A verdict rests on the stored",
        "result of `sparsetorch papers run KEY --scale small --store` (`results/papers/KEY.json`). Each",
        f"claim check compares means over seeds, paired by seed; the rule: {RULE}",
        "(with 3 seeds, ±2 SE is roughly an 82% t interval). Only claim checks decide the verdict;",
        "sanity checks (guards, construction invariants) are listed apart. `stale`: the code changed",
        "since the stored run; `not run`: implemented, no stored result.",
        "",
        "| verdict | papers |",
        "|---|---|",
        *[f"| {v} | {kinds[v]} |" for v in VERDICTS],
        "",
        "| axis | what is sparse | papers |",
        "|---|---|---|",
    ]
    lines += [f"| {a.value} | {_cell(d)} | {axes[a]} |" for a, d in AXIS_DESCRIPTIONS.items()]
    lines += ["", "| # | key | title | axis | verdict | claim |", "|---|---|---|---|---|---|"]
    lines += [
        f"| {p.index} | `{p.key}` | {_cell(p.title)} | {p.axis.value} | "
        f"{_cell(_verdict_cell(p, statuses.get(p.key)))} | {_cell(p.claim)} |"
        for p in papers
    ]
    sections = [
        _section(p, st.stored, st.status)
        for p in papers
        if (st := statuses.get(p.key)) and st.stored is not None
    ]
    if sections:
        lines += ["", "## Reproductions", ""]
        for section in sections:
            lines += section
    return "\n".join(lines).rstrip("\n") + "\n"


def papers_html(*, statuses: Mapping[str, PaperStatus]) -> str:
    """The verdicts as one static HTML page (no script, no network): overview and claim checks."""
    import jinja2

    from sparsetorch.papers._report_html import TEMPLATE

    papers = list_papers()
    rows = []
    for p in papers:
        status = statuses.get(p.key)
        stored = status.stored if status is not None else None
        rows.append(
            {
                "paper": p,
                "overview": overview(p, status),
                "verdict": _verdict_cell(p, status),
                "stored": stored,
                "claims": [] if stored is None else [(c, _ours(c)) for c in stored.result.claims],
                "sanity": [] if stored is None else [(c, _ours(c)) for c in stored.result.sanity],
            }
        )
    counts = Counter(r["overview"] for r in rows)
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(TEMPLATE).render(rows=rows, counts={v: counts[v] for v in VERDICTS}, rule=RULE)
