"""The headless-Chromium harness itself: it sees text, catches script errors and network use."""

from __future__ import annotations

from pathlib import Path

from browser import Browser, browser

__all__ = ["browser"]


def test_a_page_renders_and_its_errors_are_caught(browser: Browser, tmp_path: Path) -> None:
    good = tmp_path / "good.html"
    good.write_text("<html><body><h1>Отчёт</h1><p id='n'>1 527</p></body></html>", "utf-8")
    shown = browser.render(good, name="harness-good")
    assert "Отчёт" in shown.text and shown.errors == []
    assert shown.screenshot is not None and shown.screenshot.stat().st_size > 0

    bad = tmp_path / "bad.html"
    bad.write_text(
        "<html><body><script>console.error('broken chart'); missing();</script>"
        "<img src='https://cdn.example.com/x.png'></body></html>",
        "utf-8",
    )
    errors = " | ".join(browser.render(bad, name="harness-bad").errors)
    assert "broken chart" in errors
    assert "missing is not defined" in errors
    assert "cdn.example.com" in errors
