"""Headless Chromium for the tests of HTML output: render, collect console errors, screenshot.

The browser is Debian's Chromium (``CRMRULES_TEST_CHROMIUM``, its path; .ci/run
installs it and sets it), driven by Playwright's Python package, which never
downloads a browser of its own here. Without the variable the tests skip, as
the PostgreSQL ones do on a user's machine. Screenshots go to
``CRMRULES_TEST_ARTIFACTS`` when it is set (CI keeps them in
``.ci/artifacts``), else to the test's temporary directory.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CRMRULES_TEST_CHROMIUM")

#: Flags the sandbox needs: no sandbox as root, no GPU, and no background
#: connections, which this machine's closed network refuses.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass
class Rendered:
    """A page as the browser showed it."""

    text: str
    """The visible text of the body."""
    errors: list[str] = field(default_factory=list)
    """Console errors, uncaught exceptions and failed requests."""
    screenshot: Path | None = None
    page: object = None
    """The Playwright page, still open, for queries of the DOM."""


class Browser:
    """One Chromium for a test module; ``render`` opens a file in a fresh page."""

    def __init__(self, browser: object, artifacts: Path) -> None:
        self._browser = browser
        self.artifacts = artifacts

    def render(self, html: Path, *, name: str, width: int = 1280) -> Rendered:
        """Open ``html`` offline (any request leaving the file is an error) and screenshot it."""
        page = self._browser.new_page(viewport={"width": width, "height": 900})  # type: ignore[attr-defined]
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
        page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))

        def offline(route: object) -> None:
            url = route.request.url  # type: ignore[attr-defined]
            if url.startswith(("file:", "data:", "blob:")):
                route.continue_()  # type: ignore[attr-defined]
            else:
                errors.append(f"request to the network: {url}")
                route.abort()  # type: ignore[attr-defined]

        page.route("**/*", offline)
        page.goto(html.resolve().as_uri())
        page.wait_for_load_state("load")
        shot = self.artifacts / f"{name}.png"
        page.screenshot(path=str(shot), full_page=True)
        return Rendered(page.inner_text("body"), errors, shot, page)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """Headless Chromium, or a skip when CRMRULES_TEST_CHROMIUM is not set."""
    if not CHROMIUM:
        pytest.skip("HTML tests need CRMRULES_TEST_CHROMIUM (a Chromium executable)")
    sync_api = pytest.importorskip("playwright.sync_api")
    wanted = os.environ.get("CRMRULES_TEST_ARTIFACTS")
    artifacts = Path(wanted) if wanted else tmp_path_factory.mktemp("screenshots")
    artifacts.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield Browser(chromium, artifacts)
        finally:
            chromium.close()
