"""Stored paper results: round trip, stale detection, strict reading, and `papers run --store` (on
the bench: a process per seed, resume, a failed seed stores nothing)."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sparsetorch.cli import app
from sparsetorch.papers import Axis, Paper, Result, get_paper, results
from sparsetorch.papers.results import (
    ResultFileError,
    SeedRun,
    StoredResult,
    code_hash,
    load_result,
    paper_status,
    read_result,
    record_run,
    result_path,
    store_result,
    stored_result,
    verdict,
)

runner = CliRunner()
FAST = "bdwp"  # the fastest tiny reproduction (about 2 s)


def _result(measured: float = 0.9) -> Result:
    return Result.from_comparisons(
        {"acc": measured, "base": 0.8, "sparsity": 0.5},
        checks={"beats_base": ("acc", ">", "base"), "near_base": ("acc", ">=", 0.75)},
        sanity={"half_sparse": ("sparsity", ">=", 0.5)},
        paper={"beats_base": "0.95 vs 0.80"},
        note="tiny: a test",
    )


@pytest.fixture
def fake_paper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Paper:
    """A paper whose listed module is a temporary copy, so its source can change under the test."""
    package = tmp_path / "src"
    package.mkdir()
    (package / "fake_method_17.py").write_text("def prune():\n    return 1\n")
    monkeypatch.syspath_prepend(str(package))
    return Paper(
        index=999,
        key="fake-paper",
        title="A fake paper",
        date=datetime.date(2024, 1, 1),
        axis=Axis.CONNECTIONS,
        claim="Fake claims hold.",
        modules=("fake_method_17",),
        reproduce=lambda scale, *, seed, broken: _result(0.9 + seed / 100),
    )


def _stored(paper: Paper, measured: float = 0.9) -> StoredResult:
    runs = [SeedRun(s, _result(measured + s / 100), 0.5) for s in (0, 1, 2)]
    return stored_result(paper, "small", runs, commit="0" * 40, cpu="test cpu", versions={"torch": "2.0"})


def test_round_trip(tmp_path: Path, fake_paper: Paper) -> None:
    stored = _stored(fake_paper)
    path = store_result(stored, folder=tmp_path / "results")
    assert path == tmp_path / "results" / "fake-paper.json"
    back = read_result(path, key="fake-paper")
    assert back == stored and back.seeds == (0, 1, 2) and back.wall_time_s == 1.5
    assert back.result.holds and [c.passed for c in back.result.checks] == [True, True, True]
    claim = back.result.checks[0]
    assert claim.seeds == 3 and claim.paper == "0.95 vs 0.80" and claim.measured == pytest.approx(0.91)
    se = 0.01 / 3**0.5  # margins .10 .11 .12: sd 0.01
    assert claim.interval == pytest.approx((0.11 - 2 * se, 0.11 + 2 * se))
    assert not list(path.parent.glob(".*.tmp"))  # the atomic write left no temporary file


def test_record_run_measures_and_describes_the_run(fake_paper: Paper) -> None:
    stored = record_run(fake_paper, "tiny")
    assert stored.key == "fake-paper" and stored.scale == "tiny" and stored.result == _result()
    assert stored.seeds == (0,) and stored.runs[0].result == _result()
    assert stored.code_hash == code_hash(fake_paper) and stored.wall_time_s >= 0
    assert {"torch", "sparsetorch", "python"} <= set(stored.versions) and stored.cpu


def test_stale_when_a_listed_module_changes(tmp_path: Path, fake_paper: Paper) -> None:
    folder = tmp_path / "results"
    store_result(_stored(fake_paper), folder=folder)
    status = paper_status(fake_paper, folder=folder)
    assert status.status == "reproduced" and status.verdict == "holds (small)"
    (tmp_path / "src" / "fake_method_17.py").write_text(
        "def prune():\n    return 2\n"
    )  # the code the result measured changed
    assert paper_status(fake_paper, folder=folder).status == "stale"


def test_code_hash_covers_the_reproduction_module_and_each_listed_module() -> None:
    paper = get_paper(FAST)
    sources = results.code_sources(paper)
    assert set(paper.modules) <= set(sources) and paper.reproduce.__module__ in sources
    # the shared helper that trains the arms is code the result measured; the vocabulary is not
    assert "sparsetorch.papers.fashion_runs" in sources and "sparsetorch.papers.base" not in sources
    changed = {**sources, next(iter(sources)): Path(__file__)}
    assert code_hash(paper, sources=changed) != code_hash(paper)


def test_status_without_a_stored_result(tmp_path: Path, fake_paper: Paper) -> None:
    assert paper_status(fake_paper, folder=tmp_path).status == "implemented"
    assert paper_status(fake_paper, folder=None).status == "implemented"
    assert paper_status(get_paper("routing-transformer"), folder=tmp_path).status == "planned"


def test_verdicts_count_claim_checks_only() -> None:
    assert verdict(_result()) == "holds"
    assert verdict(_result(measured=0.78)) == "partial (1 of 2 claims)"
    none_pass = Result.from_comparisons({"a": 0.0}, checks={"x": ("a", ">", 1.0)})
    assert verdict(none_pass) == "does not hold" and verdict(Result()) == "does not hold"
    only_sanity = Result.from_comparisons({"a": 1.0}, checks={}, sanity={"ok": ("a", ">", 0.0)})
    assert verdict(only_sanity) == "does not hold"  # a guard that passes proves no claim
    failed_guard = Result.from_comparisons(
        {"a": 1.0}, checks={"x": ("a", ">", 0.0)}, sanity={"guard": ("a", "<", 0.0)}
    )
    assert verdict(failed_guard) == "holds" and not failed_guard.sanity[0].passed


def _corrupt(data: dict) -> list[tuple[str, dict | str]]:
    """Each case: what the error should say, and the file's content."""
    cases: list[tuple[str, dict | str]] = [
        ("Expecting", "{not json"),
        ("not a sparsetorch paper result", {"hello": "world"}),
        ("not a sparsetorch paper result", ["a", "list"]),
        ("unsupported version", {**data, "version": 99}),
        ("missing or unknown", {**data, "extra": 1}),
        ("missing or unknown", {k: v for k, v in data.items() if k != "cpu"}),
        ("unknown scale", {**data, "scale": "huge"}),
        ("code_hash", {**data, "code_hash": "abc"}),
        ("wall_time_s", {**data, "wall_time_s": -1}),
        ("rule", {**data, "rule": "one seed is enough"}),
        ("runs", {**data, "runs": []}),
        ("seed must be an integer", {**data, "runs": [{**data["runs"][0], "seed": "zero"}]}),
        ("not the aggregate", {**data, "runs": data["runs"][:2]}),
        ("holds", {**data, "result": {**data["result"], "holds": False}}),
    ]
    check = data["result"]["checks"][0]
    for needle, bad in [
        ("passed", {**check, "passed": False}),
        ("malformed", {**check, "op": "=="}),
        ("kind", {**check, "kind": "vibe"}),
        ("interval", {**check, "interval": [1.0]}),
        ("reversed", {**check, "interval": [1.0, 0.0]}),
    ]:
        result = {**data["result"], "checks": [bad, *data["result"]["checks"][1:]]}
        cases.append((needle, {**data, "result": result}))
    cases.append(("number", {**data, "result": {**data["result"], "metrics": {"acc": "high"}}}))
    return cases


def test_corrupt_and_foreign_files_are_refused(tmp_path: Path, fake_paper: Paper) -> None:
    good = store_result(_stored(fake_paper), folder=tmp_path)
    data = json.loads(good.read_text())
    for i, (needle, content) in enumerate(_corrupt(data)):
        path = tmp_path / f"case{i}.json"
        path.write_text(content if isinstance(content, str) else json.dumps(content))
        with pytest.raises(ResultFileError, match=needle) as err:
            read_result(path)
        assert str(path) in str(err.value) and isinstance(err.value, ValueError)
    (tmp_path / "bytes.json").write_bytes(b"\xff\xfe{}")
    with pytest.raises(ResultFileError, match=r"bytes\.json"):
        read_result(tmp_path / "bytes.json")


def test_a_file_under_another_key_is_refused(tmp_path: Path, fake_paper: Paper) -> None:
    good = store_result(_stored(fake_paper), folder=tmp_path)
    good.rename(result_path("other-paper", tmp_path))
    with pytest.raises(ResultFileError, match="not 'other-paper'"):
        load_result("other-paper", folder=tmp_path)


def test_an_oversized_file_is_refused_before_it_is_read(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(results, "MAX_BYTES", 10)
    path = tmp_path / "big.json"
    path.write_text(" " * 11)
    with pytest.raises(ResultFileError, match="too large"):
        read_result(path)


def test_papers_run_store_writes_a_result_that_papers_list_shows(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(results.RESULTS_ENV, str(tmp_path / "results"))
    bench = tmp_path / "bench"
    args = ["papers", "run", FAST, "--scale", "tiny", "--seeds", "2", "--workers", "2", "--dir", str(bench)]
    out = runner.invoke(app, [*args, "--store"])
    assert out.exit_code == 0, out.output
    stored = read_result(tmp_path / "results" / f"{FAST}.tiny.json", key=FAST)
    assert stored.scale == "tiny" and stored.code_hash == code_hash(get_paper(FAST))
    assert stored.seeds == (0, 1) and all(c.seeds == 2 for c in stored.result.checks)
    assert stored.runs[0].result.metrics != stored.runs[1].result.metrics  # seeds differ
    assert "2 run(s) completed" in out.output
    again = runner.invoke(app, args)  # same code, scale and seeds: nothing runs again
    assert again.exit_code == 0 and "0 run(s) completed, 0 failed, 2 already done" in again.output
    listing = runner.invoke(app, ["papers", "list", "--pattern", FAST])
    assert listing.exit_code == 0 and "reproduced" in listing.output and "(tiny)" in listing.output
    assert "1 reproduced, 0 stale" in listing.output


def test_papers_run_checks_every_key_before_running(tmp_path: Path) -> None:
    out = runner.invoke(app, ["papers", "run", FAST, "bdwpp", "--store", "--results", str(tmp_path)])
    assert out.exit_code == 2 and "did you mean" in out.output and not list(tmp_path.iterdir())
    out = runner.invoke(app, ["papers", "run", "routing-transformer", "--results", str(tmp_path)])
    assert out.exit_code == 2 and "planned" in out.output
    out = runner.invoke(app, ["papers", "run", FAST, "--all"])
    assert out.exit_code == 2 and "not both" in out.output


def test_an_interrupted_sweep_writes_nothing(tmp_path: Path, monkeypatch) -> None:
    from sparsetorch.papers import sweep

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sweep, "run_sweep", interrupted)
    out = runner.invoke(
        app, ["papers", "run", FAST, "--scale", "tiny", "--store", "--results", str(tmp_path / "r")]
    )
    assert out.exit_code != 0 and not (tmp_path / "r").exists()


def test_a_failed_seed_stores_nothing_for_its_paper(tmp_path: Path) -> None:
    from sparsetorch.bench.runner import run_sweep
    from sparsetorch.papers.sweep import collect, paper_specs
    from tests.papers.papers_testutil import fail_seed_one

    papers = [get_paper(FAST)]
    specs = paper_specs(papers, scale="tiny", seeds=[0, 1])
    sweep = run_sweep(specs, tmp_path, workers=2, progress=False, executor=fail_seed_one)
    assert (sweep.completed, sweep.failed) == (1, 1)
    stored, missing = collect(papers, specs, tmp_path)
    assert stored == {} and "seed 1: failed" in missing[FAST] and "seed 1 fails on purpose" in missing[FAST]


def test_a_stale_stored_result_shows_in_papers_list(tmp_path: Path) -> None:
    paper = get_paper(FAST)  # no run needed: a result stored with another code hash
    runs = [SeedRun(0, _result(0.78), 1.0)]
    store_result(stored_result(paper, "small", runs, code="f" * 64), folder=tmp_path)
    assert paper_status(paper, folder=tmp_path).status == "stale"
    listing = runner.invoke(app, ["papers", "list", "--pattern", FAST, "--results", str(tmp_path)])
    assert (
        listing.exit_code == 0 and "stale" in listing.output and "partial (1 of 2 claims)" in listing.output
    )
    assert "0 reproduced, 1 stale" in listing.output


def test_store_without_a_results_folder_says_how_to_name_one(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(results.RESULTS_ENV, raising=False)
    monkeypatch.setattr(results, "_REPO", tmp_path)  # as an installed package: no checkout around it
    assert results.results_dir() is None
    out = runner.invoke(app, ["papers", "run", FAST, "--scale", "tiny", "--store"])
    assert out.exit_code == 2 and "SPARSETORCH_RESULTS" in out.output


def test_each_scale_has_its_own_file_and_the_largest_decides(tmp_path: Path, fake_paper: Paper) -> None:
    small = _stored(fake_paper)
    store_result(small, folder=tmp_path)
    tiny = stored_result(fake_paper, "tiny", [SeedRun(0, _result(0.1), 0.1)])
    assert store_result(tiny, folder=tmp_path).name == "fake-paper.tiny.json"
    assert load_result("fake-paper", folder=tmp_path) == small  # a tiny run never replaces small
    assert paper_status(fake_paper, folder=tmp_path).verdict == "holds (small)"
    full = stored_result(fake_paper, "full", [SeedRun(s, _result(0.78), 1.0) for s in (0, 1, 2)])
    store_result(full, folder=tmp_path)
    assert paper_status(fake_paper, folder=tmp_path).verdict == "partial (1 of 2 claims) (full)"
    assert load_result("fake-paper", folder=tmp_path, scale="small") == small
    (tmp_path / "fake-paper.full.json").write_text((tmp_path / "fake-paper.tiny.json").read_text())
    with pytest.raises(ResultFileError, match="holds a 'tiny' result, not 'full'"):
        load_result("fake-paper", folder=tmp_path)
