"""Check, Result and Paper.run: verdicts are computed from measurements, never set by hand."""

from __future__ import annotations

import datetime
import json
import math

import pytest

from sparsetorch.papers import Axis, Check, Paper, Result


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


def test_holds_requires_all_checks() -> None:
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
        {"acc": 0.8, "speedup": 1.7}, checks={"fast": ("speedup", ">=", 1.5)}, note="tiny scale"
    )
    data = json.loads(json.dumps(result.to_dict()))
    assert data["holds"] is True
    assert data["checks"][0] == {
        "name": "fast",
        "measured": 1.7,
        "op": ">=",
        "threshold": 1.5,
        "passed": True,
    }
    data["holds"] = False  # a stored verdict is ignored: it is recomputed from the numbers
    data["checks"][0]["passed"] = False
    again = Result.from_dict(data)
    assert again == result
    assert again.holds


def test_render_is_short_text() -> None:
    result = Result.from_comparisons(
        {"acc": 0.5}, checks={"accurate": ("acc", ">=", 0.9)}, note="claim fails at tiny scale"
    )
    text = str(result)
    assert text.splitlines()[0] == "does not hold (0/1 checks passed)"
    assert "accurate: 0.5 >= 0.9 (FAIL)" in text
    assert "claim fails at tiny scale" in text
    assert len(text.splitlines()) <= 5


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
    assert planned.status == "planned"
    with pytest.raises(NotImplementedError, match=r"paper 'toy' has no reproduction yet \(status: planned\)"):
        planned.run("tiny")

    seen: list[str] = []

    def reproduce(scale: str) -> Result:
        seen.append(scale)
        return Result.from_comparisons({"x": 1.0}, checks={"x": ("x", ">", 0.0)})

    implemented = _paper(reproduce)
    assert implemented.status == "implemented"
    assert implemented.run("small").holds
    assert seen == ["small"]
    with pytest.raises(ValueError, match="unknown scale 'huge'"):
        implemented.run("huge")
    with pytest.raises(TypeError, match="not Result"):
        _paper(lambda scale: {"holds": True}).run("tiny")


def test_paper_validates_fields() -> None:
    with pytest.raises(ValueError, match="claim"):
        Paper(index=1, key="x", title="T", date=datetime.date(2020, 1, 1), axis=Axis.TIME, claim="")
    with pytest.raises(ValueError):
        Paper(index=1, key="x", title="T", date=datetime.date(2020, 1, 1), axis="space", claim="C.")  # type: ignore[arg-type]
    paper = Paper(index=1, key="x", title="T", date=datetime.date(2020, 1, 1), axis="time", claim="C.")  # type: ignore[arg-type]
    assert paper.axis is Axis.TIME
