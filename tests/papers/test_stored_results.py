"""Every implemented paper ships its small-scale result, measured on the code as it is now.

Fails when a paper has no `results/papers/KEY.json`, when the stored result is stale (its code
changed since it was measured: re-run `sparsetorch papers run KEY --scale small --store`), or when
it rests on fewer than 3 seeds. Reading is strict, so a hand-edited file fails too.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sparsetorch.papers import list_papers, paper_status, read_result
from sparsetorch.papers.results import result_path

RESULTS = Path(__file__).parents[2] / "results" / "papers"
IMPLEMENTED = [p for p in list_papers() if p.status == "implemented"]


@pytest.mark.parametrize("paper", IMPLEMENTED, ids=[p.key for p in IMPLEMENTED])
def test_an_implemented_paper_ships_its_small_scale_result(paper) -> None:
    path = result_path(paper.key, RESULTS)
    rerun = f"sparsetorch papers run {paper.key} --scale small --store"
    assert path.is_file(), f"{paper.key} has no stored result: run `{rerun}`"
    stored = read_result(path, key=paper.key)
    assert stored.scale == "small" and len(stored.seeds) >= 3, f"{path}: {stored.scale}, seeds {stored.seeds}"
    status = paper_status(paper, folder=RESULTS)  # the full-scale result, where one is stored
    assert status.status == "reproduced", f"{paper.key}'s stored result is stale: run `{rerun}`"
    assert stored.result.claims, f"{path}: no claim check"
    assert all(c.seeds == len(stored.seeds) and c.interval is not None for c in stored.result.checks)


@pytest.mark.parametrize("paper", IMPLEMENTED, ids=[p.key for p in IMPLEMENTED])
def test_every_claim_check_of_the_small_result_has_a_broken_arm(paper) -> None:
    """The tiny broken-arm test cannot see claim checks that exist only from `small` on (a second
    model, more layers): here every claim check of the stored small result is named by some broken
    arm. That the arm makes it fail is shown at tiny scale for the checks that exist there."""
    path = result_path(paper.key, RESULTS)
    if not path.is_file():
        pytest.fail(f"{paper.key} has no stored result")
    claims = {c.name for c in read_result(path, key=paper.key).result.claims}
    named = {name for arm in paper.broken_arms.values() for name in arm.fails}
    assert claims <= named, f"{paper.key}: no broken arm names {sorted(claims - named)}"


def test_no_result_without_a_paper() -> None:
    keys = {p.key for p in IMPLEMENTED}
    assert {p.name.split(".")[0] for p in RESULTS.glob("*.json")} <= keys
