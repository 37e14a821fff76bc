"""The bench report: leaderboard ranking and aggregation, and the HTML page's sections and links."""

from __future__ import annotations

import json
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from sparsetorch.bench.report import format_level, leaderboard, run_level, write_report
from sparsetorch.bench.store import BenchError, RunRecord, Store
from tests.bench.report_testutil import ENV, TRACEBACK, make_bench, spec


def record(
    task: str, method: str, value: float, *, seed: int = 0, sparsity: float | None = 0.5, **kw
) -> RunRecord:
    s = spec(task, method, sparsity, kw.pop("pattern", "unstructured"), seed, kw.pop("version", 1))
    metric = s["config"]["metric"]
    return RunRecord(
        **s,
        status=kw.pop("status", "complete"),
        metrics={metric: value},
        environment=ENV,
        **kw,
    )


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> tuple[Path, list[RunRecord], str]:
    directory = make_bench(tmp_path_factory.mktemp("bench"))
    path = write_report(directory)
    assert path == directory / "report.html"
    with Store(directory, create=False) as store:
        records = store.records()
    return directory, records, path.read_text(encoding="utf-8")


def by(rows, **where):
    return [r for r in rows if all(r[k] == v for k, v in where.items())]


# --- leaderboard --------------------------------------------------------------------------------


def test_leaderboard_ranks_higher_is_better_and_aggregates_seeds():
    records = [
        record("fmnist-mlp", "magnitude", 0.80, seed=0),
        record("fmnist-mlp", "magnitude", 0.84, seed=1),
        record("fmnist-mlp", "random", 0.70, seed=0),
        record("fmnist-mlp", "wanda", 0.90, seed=0),
    ]
    rows = leaderboard(records)
    assert [r["method"] for r in rows] == ["wanda", "magnitude", "random"]
    assert [r["rank"] for r in rows] == [1, 2, 3]
    (mag,) = by(rows, method="magnitude")
    assert mag["mean"] == pytest.approx(0.82)
    assert mag["std"] == pytest.approx(math.sqrt(2 * 0.02**2 / (2 - 1)))  # sample std over the 2 seeds
    assert mag["n"] == 2
    assert (by(rows, method="wanda")[0]["std"], by(rows, method="wanda")[0]["n"]) == (0.0, 1)
    assert set(mag) >= {"task", "level", "method", "metric", "mean", "std", "n", "rank"}
    assert mag["metric"] == "test_accuracy" and mag["level"] == 0.5


def test_leaderboard_lower_is_better_ties_and_nan():
    records = [
        record("shakespeare-gpt-prune", "magnitude", 40.0),
        record("shakespeare-gpt-prune", "wanda", 25.0),
        record("shakespeare-gpt-prune", "sparsegpt", 25.0),
        record("shakespeare-gpt-prune", "random", float("nan")),
        record("shakespeare-gpt-prune", "dsnot", 30.0),
    ]
    rows = leaderboard(records)
    assert [(r["method"], r["rank"]) for r in rows] == [
        ("sparsegpt", 1),
        ("wanda", 1),
        ("dsnot", 3),
        ("magnitude", 4),
        ("random", 5),
    ]
    assert all(r["higher_is_better"] is False for r in rows)


def test_leaderboard_levels_versions_and_statuses():
    records = [
        record("fmnist-mlp", "magnitude", 0.8, sparsity=None, pattern="2:4"),
        record("fmnist-mlp", "random", 0.9, sparsity=None, pattern="2:4"),
        record("fmnist-mlp", "magnitude", 0.7, pattern="block4x16"),
        record("fmnist-mlp", "magnitude", 0.6, sparsity=0.9),
        record("fmnist-mlp", "dense", 0.95, sparsity=0.0),
        record("fmnist-mlp", "random", 0.99, sparsity=0.9, version=0),  # older task version: dropped
        record("fmnist-mlp", "wanda", 0.99, sparsity=0.9, status="failed"),
        record("fmnist-mlp", "rigl", 0.99, sparsity=0.9, status="pending"),
    ]
    rows = leaderboard(records)
    assert [(r["level"], r["method"], r["rank"]) for r in rows] == [
        (0.0, "dense", 1),
        (0.9, "magnitude", 1),
        ("2:4", "random", 1),
        ("2:4", "magnitude", 2),
        ("block4x16@0.5", "magnitude", 1),  # a block pattern at 0.5 is its own level, not unstructured 0.5
    ]
    assert [format_level(run_level(r)) for r in records[:3]] == ["2:4", "2:4", "block4x16@0.5"]
    assert leaderboard([]) == []


def test_leaderboard_of_the_synthetic_bench(bench):
    _, records, _ = bench
    rows = leaderboard(records)
    # minilm-prune has only a failed run: nothing to rank
    assert {r["task"] for r in rows} == {"fmnist-mlp", "shakespeare-gpt-prune", "kernel-speed"}
    top = by(rows, task="shakespeare-gpt-prune", level=0.5)
    assert [(r["method"], r["rank"], r["mean"]) for r in top] == [("wanda", 1, 26.0), ("magnitude", 2, 42.0)]
    (mag,) = by(rows, task="fmnist-mlp", level=0.5, method="magnitude")
    assert (mag["mean"], mag["n"]) == (pytest.approx(0.87), 2)  # the v0 run (0.1) is not averaged in


# --- the page -----------------------------------------------------------------------------------


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.hrefs: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.append(a["id"])
        if tag == "a" and a.get("href"):
            self.hrefs.append(a["href"])


def test_report_has_its_sections_plots_and_tables(bench):
    directory, records, html = bench
    page = _Collect()
    page.feed(html)
    for section in (
        "summary",
        "task-fmnist-mlp",
        "task-kernel-speed",
        "task-shakespeare-gpt-prune",
        "failed",
    ):
        assert section in page.ids
    assert {"environment", "runs", "task-minilm-prune"} <= set(page.ids)
    # metric + size plots for fmnist and kernel-speed (speedup is its speed plot); perplexity has no size metric
    assert html.count('<figure class="plot"><svg') == 5
    assert "kernel-speed: speed vs sparsity" in html and "fmnist-mlp: size vs sparsity" in html
    assert html.count('<table class="leaderboard"') == 3
    assert html.count('<tr class="best">') == len([r for r in leaderboard(records) if r["rank"] == 1])
    counts = dict(re.findall(r'data-status="(\w+)">(\d+)<', html))
    assert counts == {"complete": "29", "failed": "2", "running": "0", "pending": "1"}
    for value in ENV.values():
        assert f"<code>{value}</code>" in html
    # self-contained: no script, no external resource
    assert "<script" not in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert not list(directory.glob(".report.html.*"))  # the atomic write left no temporary


def test_failed_runs_have_escaped_collapsible_tracebacks(bench):
    _, records, html = bench
    failed = [r for r in records if r.status == "failed"]
    assert len(failed) == 2
    assert html.count('<details class="failure"') == 2
    escaped = TRACEBACK.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&#34;")
    assert escaped in html and "<memory>" not in html
    start = html.index('id="task-minilm-prune"')
    section = html[start : html.index("</section>", start)]
    assert "No completed runs" in section and "<svg" not in section


def test_every_started_run_links_to_its_config(bench):
    directory, records, html = bench
    page = _Collect()
    page.feed(html)
    config_links = {h for h in page.hrefs if h.startswith("runs/")}
    started = [r for r in records if r.status != "pending"]
    assert config_links == {f"runs/{r.config_hash}/config.json" for r in started}
    for r in started:
        assert json.loads((directory / "runs" / r.config_hash / "config.json").read_text()) == r.config
    (pending,) = [r for r in records if r.status == "pending"]
    assert pending.config_hash in html  # listed, without a dead link


def test_empty_store_and_not_a_bench(tmp_path):
    Store(tmp_path / "empty").close()
    html = write_report(tmp_path / "empty").read_text()
    assert "No runs yet" in html and 'id="runs"' in html and "<svg" not in html
    with pytest.raises(BenchError, match="not a bench directory"):
        write_report(tmp_path / "nothing")
    assert not (tmp_path / "nothing").exists()


def test_task_with_only_failed_runs(tmp_path):
    with Store(tmp_path) as store:
        run = spec("minilm-prune", "wanda", 0.5, "unstructured", 0)
        store.add([run])
        assert store.claim(run["config_hash"], "me")
        assert store.fail(run["config_hash"], "me", TRACEBACK, ENV)
        records = store.records()
    html = write_report(tmp_path).read_text()
    assert leaderboard(records) == []
    assert 'id="task-minilm-prune"' in html and "No completed runs for this task: 1 failed" in html
    assert '<details class="failure"' in html and f'href="runs/{run["config_hash"]}/config.json"' in html
