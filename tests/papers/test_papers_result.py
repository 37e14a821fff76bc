"""Check, Result and Paper.run: verdicts are computed from measurements, never set by hand."""

from __future__ import annotations

import datetime
import importlib
import json
import math
import sys

import pytest

from sparsetorch.papers import Axis, Check, Paper, Result
from sparsetorch.papers.base import OPS, BrokenArm


def test_check_passed_is_computed() -> None:
    assert Check("acc", 0.9, ">=", 0.9).passed
    assert not Check("acc", 0.9, ">", 0.9).passed
    assert Check("loss", 0.1, "<", 0.2).passed
    assert not Check("loss", 0.3, "<=", 0.2).passed
    assert not Check("acc", math.nan, ">=", 0.0).passed
    assert not Check("acc", 1.0, "<=", math.nan).passed


@pytest.mark.parametrize("op", ["==", "=>", "!=", ""])
def test_check_rejects_unknown_op(op: str) -> None:
    with pytest.raises(ValueError, match="op"):
        Check("acc", 1.0, op, 0.0)


def test_holds_requires_all_claim_checks() -> None:
    metrics = {"acc_dense": 0.92, "acc_sparse": 0.915, "sparsity": 0.5}
    ok = Result.from_comparisons(
        metrics,
        checks={
            "close_to_dense": ("acc_sparse", ">=", metrics["acc_dense"] - 0.01),
            "half_sparse": ("sparsity", ">=", 0.5),
        },
    )
    assert ok.holds
    assert ok.passed == {"close_to_dense": True, "half_sparse": True}

    failing = Result.from_comparisons(
        metrics,
        checks={"close_to_dense": ("acc_sparse", ">=", 0.95), "half_sparse": ("sparsity", ">=", 0.5)},
    )
    assert not failing.holds
    assert failing.passed == {"close_to_dense": False, "half_sparse": True}


def test_no_checks_does_not_hold() -> None:
    assert not Result(metrics={"acc": 1.0}).holds
    assert not Result.from_comparisons({"acc": 1.0}, checks={}).holds


def test_holds_cannot_be_set_by_hand() -> None:
    with pytest.raises(TypeError):
        Result(metrics={}, holds=True)  # type: ignore[call-arg]
    result = Result.from_comparisons({"acc": 0.1}, checks={"acc": ("acc", ">", 0.5)})
    with pytest.raises(AttributeError):
        result.holds = True  # type: ignore[misc]
    with pytest.raises(TypeError, match="Check"):
        Result(checks=({"name": "x", "passed": True},))  # type: ignore[arg-type]


def test_comparison_sides_may_name_metrics() -> None:
    result = Result.from_comparisons({"a": 2.0, "b": 1.0}, checks={"a_beats_b": ("a", ">", "b")})
    (check,) = result.checks
    assert (check.measured, check.threshold, check.passed) == (2.0, 1.0, True)
    with pytest.raises(KeyError, match="unknown metric 'c'"):
        Result.from_comparisons({"a": 1.0}, checks={"x": ("c", ">", 0.0)})


def test_duplicate_check_names_rejected() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        Result(checks=(Check("x", 1, ">", 0), Check("x", 2, ">", 0)))


def test_json_round_trip_recomputes_verdicts() -> None:
    result = Result.from_comparisons(
        {"acc": 0.8, "speedup": 1.7},
        checks={"fast": ("speedup", ">=", 1.5)},
        sanity={"accurate": ("acc", ">", 0.5)},
        paper={"fast": "2x"},
        note="tiny scale",
    )
    data = json.loads(json.dumps(result.to_dict()))
    assert data["holds"] is True
    assert data["checks"][0] == {
        "name": "fast",
        "kind": "claim",
        "measured": 1.7,
        "op": ">=",
        "threshold": 1.5,
        "interval": None,
        "seeds": 1,
        "paper": "2x",
        "passed": True,
    }
    assert data["checks"][1]["kind"] == "sanity" and data["checks"][1]["paper"] == ""
    data["holds"] = False  # a stored verdict is ignored: it is recomputed from the numbers
    data["checks"][0]["passed"] = False
    again = Result.from_dict(data)
    assert again == result
    assert again.holds


def test_json_round_trip_keeps_the_interval() -> None:
    check = Check("beats", 0.9, ">", 0.8, interval=(0.05, 0.15), seeds=3, paper="+10 points")
    data = json.loads(json.dumps(check.to_dict()))
    assert data["interval"] == [0.05, 0.15] and data["seeds"] == 3 and data["passed"] is True
    data["passed"] = False  # ignored: recomputed
    assert Check.from_dict(data) == check and Check.from_dict(data).passed


def test_render_is_short_text() -> None:
    result = Result.from_comparisons(
        {"acc": 0.5, "sparsity": 0.9},
        checks={"accurate": ("acc", ">=", 0.9)},
        sanity={"sparse": ("sparsity", ">=", 0.9)},
        paper={"accurate": "0.93"},
        note="claim fails at tiny scale",
    )
    text = str(result)
    lines = text.splitlines()
    assert lines[0] == "does not hold (0/1 claim checks passed)"
    assert "accurate: 0.5 >= 0.9 (FAIL); paper: 0.93" in lines[1]
    assert "sanity (1/1 passed):" in text and "sparse: 0.9 >= 0.9 (pass)" in text
    assert "claim fails at tiny scale" in text
    assert len(lines) <= 6


def test_render_shows_the_interval_over_seeds() -> None:
    text = Check("beats", 0.9, ">", 0.8, interval=(0.05, 0.15), seeds=3).render()
    assert text == "beats: 0.9 > 0.8, margin +0.1 [+0.05, +0.15] over 3 seeds (pass)"


# --- claim and sanity checks ---------------------------------------------------------------------


def test_holds_counts_claim_checks_only() -> None:
    metrics = {"acc": 0.9, "base": 0.8, "sparsity": 0.4}
    failing_guard = Result.from_comparisons(
        metrics, checks={"beats": ("acc", ">", "base")}, sanity={"sparse": ("sparsity", ">=", 0.5)}
    )
    assert [c.name for c in failing_guard.claims] == ["beats"]
    assert [c.name for c in failing_guard.sanity] == ["sparse"]
    assert [c.kind for c in failing_guard.checks] == ["claim", "sanity"]
    assert failing_guard.holds  # a failing sanity check does not unmake the claim
    assert failing_guard.passed == {"beats": True, "sparse": False}

    passing_guard = Result.from_comparisons(
        metrics, checks={"beats": ("acc", "<", "base")}, sanity={"sane": ("sparsity", ">=", 0.1)}
    )
    assert not passing_guard.holds  # and a passing one does not make it


def test_only_sanity_checks_do_not_hold() -> None:
    result = Result.from_comparisons({"a": 1.0}, checks={}, sanity={"ok": ("a", ">", 0.0)})
    assert result.claims == () and result.passed == {"ok": True}
    assert not result.holds
    assert str(result).splitlines()[0] == "does not hold (0/0 claim checks passed)"


def test_paper_text_must_name_a_claim_check() -> None:
    metrics = {"a": 1.0}
    with pytest.raises(KeyError, match=r"\['ok'\], which are not claim checks"):
        Result.from_comparisons(metrics, checks={}, sanity={"ok": ("a", ">", 0.0)}, paper={"ok": "1.0"})
    with pytest.raises(KeyError, match="not claim checks"):
        Result.from_comparisons(metrics, checks={"x": ("a", ">", 0.0)}, paper={"y": "1.0"})
    result = Result.from_comparisons(metrics, checks={"x": ("a", ">", 0.0)}, paper={"x": "paper: 2.0"})
    assert result.checks[0].paper == "paper: 2.0"


def test_duplicate_names_across_claim_and_sanity_rejected() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        Result.from_comparisons({"a": 1.0}, checks={"x": ("a", ">", 0.0)}, sanity={"x": ("a", ">", 0.0)})


@pytest.mark.parametrize("kind", ["", "Claim", "guard", "sanity "])
def test_check_rejects_unknown_kind(kind: str) -> None:
    with pytest.raises(ValueError, match=r"kind .* is not one of claim, sanity"):
        Check("acc", 1.0, ">", 0.0, kind=kind)


def test_check_validates_name_and_seeds() -> None:
    with pytest.raises(ValueError, match="needs a name"):
        Check("", 1.0, ">", 0.0)
    for seeds in (0, -1, True, 2.0):
        with pytest.raises(ValueError, match="seeds must be a positive integer"):
            Check("acc", 1.0, ">", 0.0, seeds=seeds)  # type: ignore[arg-type]
    assert Check("acc", 1, ">", 0, kind="sanity").kind == "sanity"


@pytest.mark.parametrize(
    ("op", "measured", "threshold", "margin"),
    [(">=", 0.9, 0.7, 0.2), (">", 0.5, 0.7, -0.2), ("<=", 0.1, 0.4, 0.3), ("<", 0.6, 0.4, -0.2)],
)
def test_margin_is_signed_in_the_claimed_direction(
    op: str, measured: float, threshold: float, margin: float
) -> None:
    check = Check("c", measured, op, threshold)
    assert check.margin == pytest.approx(margin)
    assert check.passed == (margin > 0)


# --- checks over seeds: the interval of the paired margin ---------------------------------------


@pytest.mark.parametrize("op", [">", "<"])
def test_strict_interval_needs_its_low_end_above_zero(op: str) -> None:
    assert Check("c", 1.0, op, 1.0, interval=(1e-9, 0.2), seeds=3).passed
    assert not Check("c", 1.0, op, 1.0, interval=(0.0, 0.2), seeds=3).passed
    assert not Check("c", 1.0, op, 1.0, interval=(-0.01, 0.2), seeds=3).passed


@pytest.mark.parametrize("op", [">=", "<="])
def test_inclusive_interval_passes_at_zero(op: str) -> None:
    assert Check("c", 1.0, op, 1.0, interval=(0.0, 0.2), seeds=3).passed
    assert Check("c", 1.0, op, 1.0, interval=(0.0, 0.0), seeds=3).passed
    assert not Check("c", 1.0, op, 1.0, interval=(-1e-9, 0.2), seeds=3).passed


def test_interval_decides_over_the_means() -> None:
    # the means clear the threshold, but the margin's interval does not clear 0: it fails
    assert not Check("c", 0.9, ">", 0.8, interval=(-0.05, 0.25), seeds=3).passed
    # and an interval clearing 0 passes whatever the means say (the interval is the verdict)
    assert Check("c", 0.8, ">=", 0.8, interval=(0.01, 0.02), seeds=3).passed


@pytest.mark.parametrize(
    "interval",
    [
        (math.nan, math.nan),  # what `stats.interval` gives for a NaN in any run
        (math.nan, 0.5),
        (0.1, math.nan),
    ],
)
def test_nan_interval_fails(interval: tuple[float, float]) -> None:
    for op in OPS:
        assert not Check("c", 1.0, op, 0.0, interval=interval, seeds=3).passed


def test_a_nan_mean_beside_a_clearing_interval_fails() -> None:
    assert not Check("c", math.nan, ">=", 0.0, interval=(0.1, 0.2), seeds=3).passed
    assert not Check("c", 1.0, ">=", math.nan, interval=(0.1, 0.2), seeds=3).passed


def test_reversed_interval_raises() -> None:
    with pytest.raises(ValueError, match=r"interval \(0.2, 0.1\) is reversed"):
        Check("c", 1.0, ">", 0.0, interval=(0.2, 0.1), seeds=3)
    assert Check("c", 1.0, ">", 0.0, interval=(0.1, 0.1), seeds=3).interval == (0.1, 0.1)


def _paper(reproduce=None) -> Paper:
    return Paper(
        index=99,
        key="toy",
        title="A toy paper",
        date=datetime.date(2020, 1, 1),
        axis=Axis.CONNECTIONS,
        claim="Toys hold.",
        reproduce=reproduce,
    )


def test_paper_status_and_run() -> None:
    planned = _paper()
    assert planned.status == "planned" and planned.broken_arms == {}
    with pytest.raises(NotImplementedError, match=r"paper 'toy' has no reproduction yet \(status: planned\)"):
        planned.run("tiny")

    seen: list[tuple[str, int, str | None]] = []

    def reproduce(scale: str, *, seed: int = 0, broken: str | None = None) -> Result:
        seen.append((scale, seed, broken))
        return Result.from_comparisons({"x": 1.0}, checks={"x": ("x", ">", 0.0)})

    implemented = _paper(reproduce)
    assert implemented.status == "implemented"
    assert implemented.run("small").holds
    assert implemented.run("tiny", seed=2).holds
    assert seen == [("small", 0, None), ("tiny", 2, None)]
    with pytest.raises(ValueError, match="unknown scale 'huge'"):
        implemented.run("huge")
    with pytest.raises(TypeError, match="not Result"):
        _paper(lambda scale, *, seed, broken: {"holds": True}).run("tiny")


@pytest.mark.parametrize("seed", [-1, True, False, 1.0, "0", None])
def test_paper_run_rejects_a_bad_seed(seed: object) -> None:
    paper = _paper(lambda scale, *, seed, broken: Result())
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        paper.run("tiny", seed=seed)  # type: ignore[arg-type]


TOY_MODULE = """
from sparsetorch.papers.base import BrokenArm, Result

BROKEN_ARMS = {
    "random-mask": BrokenArm("a random mask in place of the method", fails=("beats",)),
    "baseline-twice": BrokenArm("the baseline run twice", fails=("beats",)),
}


def reproduce(scale, *, seed=0, broken=None):
    acc = 0.8 if broken else 0.9
    return Result.from_comparisons({"acc": acc, "base": 0.8}, checks={"beats": ("acc", ">", "base")})
"""


@pytest.fixture
def toy_module(tmp_path, monkeypatch: pytest.MonkeyPatch):
    """A temporary reproduction module that declares `BROKEN_ARMS`."""
    (tmp_path / "toy_reproduction_17.py").write_text(TOY_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "toy_reproduction_17", raising=False)
    module = importlib.import_module("toy_reproduction_17")
    yield module
    sys.modules.pop("toy_reproduction_17", None)


def test_paper_run_with_a_broken_arm(toy_module) -> None:
    paper = _paper(toy_module.reproduce)
    assert list(paper.broken_arms) == ["random-mask", "baseline-twice"]
    assert paper.broken_arms["random-mask"].fails == ("beats",)
    assert paper.run("tiny").holds
    broken = paper.run("tiny", broken="random-mask")
    assert not broken.holds and broken.passed == {"beats": False}


def test_paper_run_rejects_an_unknown_broken_arm(toy_module) -> None:
    paper = _paper(toy_module.reproduce)
    with pytest.raises(ValueError, match=r"no broken arm 'random-masks'; did you mean 'random-mask'\?"):
        paper.run("tiny", broken="random-masks")
    with pytest.raises(ValueError, match=r"no broken arm 'zzz' \(have: random-mask, baseline-twice\)"):
        paper.run("tiny", broken="zzz")


def test_broken_arms_are_read_from_the_reproduction_module(monkeypatch: pytest.MonkeyPatch) -> None:
    def reproduce(scale: str, *, seed: int = 0, broken: str | None = None) -> Result:
        return Result()

    paper = _paper(reproduce)
    assert paper.broken_arms == {}  # this module declares none
    with pytest.raises(ValueError, match=r"no broken arm 'swap' \(have: none\)"):
        paper.run("tiny", broken="swap")
    arms = {"swap": BrokenArm("the arms swapped", fails=("x",))}
    monkeypatch.setattr(sys.modules[reproduce.__module__], "BROKEN_ARMS", arms, raising=False)
    assert paper.broken_arms == arms


def test_broken_arm_validates() -> None:
    arm = BrokenArm("the baseline run twice", fails=["beats", "close"])  # type: ignore[arg-type]
    assert arm.fails == ("beats", "close")
    for description in ("", "   "):
        with pytest.raises(ValueError, match="needs a description"):
            BrokenArm(description, fails=("beats",))
    with pytest.raises(ValueError, match="names no claim check"):
        BrokenArm("a random mask", fails=())
    with pytest.raises(AttributeError):
        arm.fails = ()  # type: ignore[misc]


def test_paper_validates_fields() -> None:
    with pytest.raises(ValueError, match="claim"):
        Paper(index=1, key="x", title="T", date=datetime.date(2020, 1, 1), axis=Axis.TIME, claim="")
    with pytest.raises(ValueError):
        Paper(index=1, key="x", title="T", date=datetime.date(2020, 1, 1), axis="space", claim="C.")  # type: ignore[arg-type]
    paper = Paper(index=1, key="x", title="T", date=datetime.date(2020, 1, 1), axis="time", claim="C.")  # type: ignore[arg-type]
    assert paper.axis is Axis.TIME
