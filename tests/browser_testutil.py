"""A real headless Chromium (Debian's, driven by Playwright) for the HTML tests: the bench report
(`tests/bench/test_report_browser.py`) and the papers' verdict page.

`browsing(base)` opens a page that records console errors and any request leaving `base`;
`serving(directory)` serves a folder on 127.0.0.1 from a thread. Without Chromium or Playwright
the test skips, unless SPARSETORCH_REQUIRE_BROWSER is set (as in CI): then it fails, so CI never
passes by skipping.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
# The network here refuses Chromium's background connections: turn them all off. Playwright's
# launch() gives each browser a fresh temporary --user-data-dir of its own.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REQUIRE = os.environ.get("SPARSETORCH_REQUIRE_BROWSER", "") not in ("", "0", "false")


def browser_or_skip():
    """Playwright's `sync_playwright`, or skip (fail under SPARSETORCH_REQUIRE_BROWSER) naming what is missing."""
    missing = []
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing.append("the playwright package")
        sync_playwright = None
    if not (os.access(CHROMIUM, os.X_OK) or shutil.which(CHROMIUM)):
        missing.append(CHROMIUM + " (apt-get install chromium)")
    if missing:
        reason = "browser test needs " + " and ".join(missing)
        if REQUIRE:
            pytest.fail(reason + " (SPARSETORCH_REQUIRE_BROWSER is set)")
        pytest.skip(reason)
    return sync_playwright


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # keep pytest's output clean
        pass


@contextmanager
def serving(directory: Path) -> Iterator[str]:
    """Serve `directory` on 127.0.0.1 from a thread; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextmanager
def browsing(base: str) -> Iterator[tuple[Any, list[str], list[str]]]:
    """A Chromium page (1280x900, 15 s timeouts) and the console errors and outside requests it
    records: `(page, errors, outside)`; anything not under `base` or a data: URL is outside."""
    sync_playwright = browser_or_skip()
    errors: list[str] = []
    outside: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(15_000)
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: None if r.url.startswith((base, "data:")) else outside.append(r.url))
            yield page, errors, outside
        finally:
            browser.close()
