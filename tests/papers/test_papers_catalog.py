"""The catalog: all 53 papers of papers.md (plus the RigL reference), their entry points and the docs."""

from __future__ import annotations

import datetime
import importlib
import re
from pathlib import Path

import pytest
from rich.console import Console

from sparsetorch.papers import (
    PAPERS,
    SCALES,
    Axis,
    entry_points,
    get_paper,
    list_papers,
    paper_statuses,
    papers_markdown,
    papers_table,
    results_dir,
    run_paper,
)

REPO = Path(__file__).parents[2]
# The list of papers the catalog follows: a verbatim copy, in the repository, of the project's
# shared papers.md (which lives outside it, in ../shared, where there is one).
PAPERS_MD = Path(__file__).parent / "data" / "papers.md"
SHARED_PAPERS_MD = REPO.parent / "shared" / "papers.md"
DOCS = REPO / "docs" / "papers.md"
ROW = re.compile(r"^\| (\d+) \| `([^`]+)` \| (.+) \| ([A-Z][a-z]{2} \d{1,2}, \d{4}) \|$")


def _papers_md_rows() -> dict[str, tuple[int, str, datetime.date]]:
    rows = {}
    for line in PAPERS_MD.read_text(encoding="utf-8").splitlines():
        if m := ROW.match(line):
            date = datetime.datetime.strptime(m.group(4), "%b %d, %Y").date()
            rows[m.group(2)] = (int(m.group(1)), m.group(3), date)
    return rows


def test_exactly_53_seed_papers_indexed_1_to_53_then_the_references() -> None:
    seeds = [p for p in list_papers() if p.seed]
    assert [p.index for p in seeds] == list(range(1, 54))
    assert [p.key for p in list_papers() if not p.seed] == ["rigl"]
    assert get_paper("rigl").index == 54 and get_paper("rigl").status == "implemented"


def test_catalog_matches_papers_md() -> None:
    rows = _papers_md_rows()
    assert len(rows) == 53
    assert {p.key for p in list_papers() if p.seed} == set(rows)
    for key, (index, title, date) in rows.items():
        paper = get_paper(key)
        assert (paper.index, paper.title, paper.date) == (index, title, date), key


@pytest.mark.skipif(
    not SHARED_PAPERS_MD.is_file(),
    reason=f"{SHARED_PAPERS_MD} not present: {PAPERS_MD} is the copy to test against; refresh "
    "that copy from the shared papers.md wherever it is available",
)
def test_papers_md_copy_is_verbatim() -> None:
    assert PAPERS_MD.read_bytes() == SHARED_PAPERS_MD.read_bytes(), (
        f"{PAPERS_MD} differs from {SHARED_PAPERS_MD}; refresh the copy from the repository root "
        f"with: cp {SHARED_PAPERS_MD} {PAPERS_MD.relative_to(REPO)}"
    )


@pytest.mark.parametrize("key", PAPERS.list())
def test_every_paper_is_well_formed(key: str) -> None:
    paper = get_paper(key)
    assert paper.key == key
    assert isinstance(paper.axis, Axis)
    assert paper.claim.strip() and paper.claim.endswith(".") and "\n" not in paper.claim
    # A paper is planned until it has a reproduction, and then it names the modules implementing it.
    if paper.reproduce is None:
        assert paper.status == "planned" and paper.modules == ()
    else:
        assert paper.status == "implemented" and paper.modules
        for module in paper.modules:
            importlib.import_module(module)


def test_every_axis_is_used() -> None:
    assert {p.axis for p in list_papers()} == set(Axis)


def test_list_papers_filters() -> None:
    assert [p.key for p in list_papers("spik*")] == ["spikingbrain", "spiking-delays"]
    time = list_papers(axis="time")
    assert time == list_papers(axis=Axis.TIME)
    assert {p.axis for p in time} == {Axis.TIME}
    assert [p.key for p in list_papers(axis=Axis.EXECUTION)] == ["flightllm"]
    with pytest.raises(ValueError):
        list_papers(axis="space")


def test_run_paper_on_planned_paper_says_so() -> None:
    with pytest.raises(
        NotImplementedError, match=r"paper 'routing-transformer' has no reproduction yet \(status: planned\)"
    ):
        run_paper("routing-transformer", scale="tiny")


def test_run_paper_validates_scale() -> None:
    assert SCALES == ("tiny", "small", "full")
    with pytest.raises(ValueError, match=r"unknown scale 'medium'.*'tiny', 'small', 'full'"):
        run_paper("routing-transformer", scale="medium")


def test_unknown_key_suggests_close_keys() -> None:
    with pytest.raises(KeyError, match="did you mean 'g2gnet'"):
        get_paper("g2gnett")
    with pytest.raises(KeyError, match="did you mean 'sr-ste'"):
        run_paper("srste")


def test_papers_table_renders() -> None:
    console = Console(width=200, record=True)
    console.print(papers_table())
    text = console.export_text()
    for header in ("#", "key", "axis", "status", "entry points", "title"):
        assert header in text
    assert "routing-transformer" in text and "planned" in text
    assert get_paper("elm-neuron").title not in text  # long titles are truncated
    assert "The Expressive Leaky Memory Neuron: an Efficient and Expres…" in text
    assert papers_table(list_papers(axis="execution")).row_count == 1


def test_markdown_has_one_row_per_paper() -> None:
    lines = papers_markdown().splitlines()
    assert "| # | key | title | axis | verdict | claim |" in lines
    rows = [line for line in lines if re.match(r"^\| \d+ \| `", line)]
    assert len(rows) == len(PAPERS) == 54
    # six columns: "|" inside a title or claim is escaped, so the unescaped separators count them
    assert all(len(re.findall(r"(?<!\\)\|", line)) == 7 for line in rows)
    by_key = {re.match(r"^\| \d+ \| `([^`]+)`", line).group(1): line for line in rows}
    # without stored results, a verdict says why there is none
    assert by_key["routing-transformer"].split(" | ")[4] == "planned"
    assert by_key["rigl"].split(" | ")[4] == "not run"


def test_docs_papers_md_in_sync() -> None:
    expected = papers_markdown(statuses=paper_statuses(list_papers(), folder=results_dir()))
    actual = DOCS.read_text(encoding="utf-8") if DOCS.exists() else ""
    assert actual == expected, (
        f"{DOCS} is out of date with the paper registry and the stored results; regenerate it from "
        "the repository root with: sparsetorch papers report"
    )


def test_axes_are_the_four_plus_foundations_and_execution() -> None:
    assert [a.value for a in Axis] == [
        "connections",
        "activations",
        "routes",
        "time",
        "foundations",
        "execution",
    ]
    for retired in ("representations", "architecture"):
        with pytest.warns(DeprecationWarning, match="foundations"):
            assert Axis(retired) is Axis.FOUNDATIONS
    assert get_paper("dass").axis is Axis.CONNECTIONS  # search lives on the connections axis


@pytest.mark.parametrize("key", [p.key for p in list_papers() if p.status == "implemented"])
def test_every_implemented_paper_resolves_to_its_entry_points(key: str) -> None:
    found = entry_points(paper=key)
    assert found, f"paper {key!r} has a reproduction but nothing a user can call"
    for entry in found:
        assert entry.paper == key
        module, _, name = entry.target.partition(":")
        obj = importlib.import_module(module)
        for part in name.split("."):
            obj = getattr(obj, part)


def test_each_entry_is_claimed_by_one_paper() -> None:
    claims = [(e.kind, e.name) for e in entry_points() if e.paper]
    assert len(claims) == len(set(claims))
    # The one-shot `random` pruner is a classic baseline; the paper's method is the training one.
    assert [(e.kind, e.name) for e in entry_points(paper="random-pruning")] == [
        ("training", "random-pruning")
    ]
    assert [e.name for e in entry_points(paper="rigl")] == ["rigl"]
    assert [e.kind for e in entry_points(paper="sparse-model-soups")] == ["driver"]
    assert [e.kind for e in entry_points(paper="sparse-ift")] == ["transform"]
    with pytest.raises(KeyError, match="did you mean 'rigl'"):
        entry_points(paper="rigll")
