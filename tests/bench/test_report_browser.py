"""The report in a real headless Chromium (Debian's, driven by Playwright), served over HTTP.

Checks what a reader sees: the page loads with no console error and no request leaving the
local server, the plots render with a size and are not blank, the leaderboards have their rows,
a traceback unfolds, and a run's config link opens that run's config.

Skips when Chromium or Playwright is missing, unless SPARSETORCH_REQUIRE_BROWSER is set (as in
CI), where it fails instead: CI never passes by skipping.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from sparsetorch.bench.report import leaderboard, write_report
from sparsetorch.bench.store import Store
from tests.bench.report_testutil import config_hash, make_bench
from tests.browser_testutil import browsing, serving


@pytest.fixture
def served(tmp_path) -> Iterator[tuple[str, Path]]:
    """A bench directory with its report, served on 127.0.0.1 from a thread."""
    directory = make_bench(tmp_path / "bench")
    write_report(directory)
    with serving(directory) as base:
        yield base, directory


def _colors(png: bytes) -> int:
    """How many distinct colours a screenshot has (a blank one has one)."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    return len(image.getcolors(maxcolors=1 << 20) or [])


def test_report_renders_in_headless_chromium(served):
    base, directory = served
    with Store(directory, create=False) as store:
        records = store.records()
    with browsing(base) as (page, errors, outside):
        response = page.goto(f"{base}/report.html", wait_until="load")
        assert response is not None and response.ok

        # the plots: every one an SVG with a size, drawn (paths), and not blank on screen
        plots = page.locator("figure.plot svg")
        assert plots.count() == 5
        for i in range(plots.count()):
            box = plots.nth(i).bounding_box()
            assert box is not None and box["width"] > 200 and box["height"] > 100, box
            assert plots.nth(i).locator("path").count() > 10
        assert _colors(plots.first.screenshot()) > 20
        assert _colors(page.screenshot(full_page=True)) > 50

        # the leaderboards: one row per ranked (task, method, level), under a header row each
        tables = page.locator("table.leaderboard")
        assert tables.count() == 3
        assert tables.locator("tr").count() - tables.count() == len(leaderboard(records))
        best = page.locator('table.leaderboard[data-task="shakespeare-gpt-prune"] tr.best')
        cells = [best.nth(i).locator("td").nth(2).inner_text() for i in range(best.count())]
        assert cells == ["dense", "wanda"]  # the lowest perplexity at 0 and at 0.5

        # a failed run's traceback is folded, and unfolds on a click
        failure = page.locator("details.failure").first
        assert not failure.locator("pre").is_visible()
        failure.locator("summary").click()
        traceback = failure.locator("pre")
        assert traceback.is_visible() and "RuntimeError" in traceback.inner_text()

        assert not errors, errors
        assert not outside, outside

        # a run's config link opens that run's config
        run = next(r for r in records if r.status == "complete" and r.task == "kernel-speed")
        link = page.locator(f'a.config[href="runs/{run.config_hash}/config.json"]')
        assert link.count() == 1
        with page.expect_navigation() as nav:
            link.click()
        assert nav.value is not None and nav.value.ok
        assert page.url == f"{base}/runs/{run.config_hash}/config.json"
        shown = json.loads(page.locator("body").inner_text())
        assert shown == run.config and config_hash(shown) == run.config_hash
