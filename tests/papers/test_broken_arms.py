"""Every claim check can fail: each reproduction's `BROKEN_ARMS`, run at tiny scale, make the claim
checks they name fail, and together they cover every claim check of the paper.

A check that no broken arm makes fail does not count as a claim check (issue 17): state it as a
sanity check instead. Some claim checks exist only from `small` on (a second model, more layers);
an arm may name them, and `test_stored_results.py` checks the names against the stored small result
and that every claim check there is named by some arm.
"""

from __future__ import annotations

import pytest

from sparsetorch.papers import list_papers
from tests.papers.papers_testutil import one_thread

IMPLEMENTED = [p for p in list_papers() if p.status == "implemented"]


@pytest.mark.data
@pytest.mark.parametrize("paper", IMPLEMENTED, ids=[p.key for p in IMPLEMENTED])
def test_every_claim_check_fails_on_a_broken_arm(paper):
    arms = paper.broken_arms
    assert arms, f"{paper.key}: its reproduction module declares no BROKEN_ARMS"
    covered: set[str] = set()
    claims: set[str] | None = None
    for name, arm in arms.items():
        result = one_thread(paper.run, "tiny", seed=0, broken=name)
        by_name = {c.name: c for c in result.claims}
        claims = set(by_name) if claims is None else claims
        assert set(by_name) == claims, f"{paper.key}/{name}: a broken arm changed the claim checks"
        for check in set(arm.fails) & claims:
            assert not by_name[check].passed, f"{paper.key}/{name}: {by_name[check].render()} passed"
        covered |= set(arm.fails)
        assert covered & claims, f"{paper.key}/{name}: names none of the tiny run's claim checks"
    assert claims and claims <= covered, f"{paper.key}: no broken arm makes {sorted(claims - covered)} fail"


@pytest.mark.parametrize("paper", IMPLEMENTED[:1], ids=[p.key for p in IMPLEMENTED[:1]])
def test_an_unknown_broken_arm_is_refused_before_running(paper):
    with pytest.raises(ValueError, match="has no broken arm"):
        paper.run("tiny", broken="no-such-arm")
