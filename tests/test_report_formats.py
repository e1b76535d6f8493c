"""``crmrules report``: text, CSV (BOM, for Excel), JSON and HTML (in headless Chromium)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from examples.campaigns.season import generate

from browser import Browser, browser
from crmrules.adapters.sqlalchemy import SQLAlchemyStore
from crmrules.reports import REPORTS, Span, report
from crmrules.reports.formats import BOM, columns, csv_text, duration_text, text

__all__ = ["browser"]

ROOT = Path(__file__).parent.parent
SPAN = ["--from", "2026-03-01", "--to", "2026-05-31", "--regulation", "examples/campaigns"]


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path = tmp_path_factory.mktemp("season") / "season.sqlite3"
    season = generate(f"sqlite:///{path}", seed=3)
    season.engine.store.close()
    yield f"sqlite:///{path}"


def crmrules(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "crmrules", *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        cwd=ROOT,
        check=False,
    )


@pytest.mark.parametrize("name", list(REPORTS))
def test_json_holds_the_api_rows(url: str, name: str) -> None:
    run = crmrules("report", name, "--store", url, *SPAN, "--by", "week", "--format", "json")
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    assert (data["report"], data["from"], data["zone"]) == (name, "2026-03-01", "Europe/Moscow")
    span = Span(date(2026, 3, 1), date(2026, 5, 31), "week", ZoneInfo("Europe/Moscow"))
    with SQLAlchemyStore(url) as store:
        made = report(name, store, span, catalogue=["kitchen", "wardrobe"])
    for table, rows in made.tables.items():
        assert len(data["tables"][table]) == len(rows)
        if rows:
            first = data["tables"][table][0]
            assert list(first) == columns(rows)


@pytest.mark.parametrize("name", list(REPORTS))
def test_csv_starts_with_a_bom_and_parses_back(url: str, name: str, tmp_path: Path) -> None:
    out = tmp_path / f"{name}.csv"
    run = crmrules("report", name, "--store", url, *SPAN, "--format", "csv", "-o", str(out))
    assert run.returncode == 0, run.stderr
    raw = out.read_bytes()
    assert raw.startswith(BOM.encode("utf-8"))
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    assert rows[0] and all(cell.isidentifier() for cell in rows[0])
    assert "\r\n" in raw.decode("utf-8")


def test_text_tables_are_aligned(url: str) -> None:
    run = crmrules("report", "conversion", "--store", url, *SPAN)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[:2] == ["Lead conversion by campaign", "2026-03-01 .. 2026-05-31, by month, "
                         "Europe/Moscow"]  # fmt: skip
    rule = next(line for line in lines if line.startswith("----------"))
    header = lines[lines.index(rule) - 1]
    starts = [i for i, ch in enumerate(rule) if ch == "-" and (i == 0 or rule[i - 1] == " ")]
    for word in ("period", "campaign", "channel"):
        assert header.index(word) in starts
    body = lines[lines.index(rule) + 1 :]
    requests_end = header.index("requests") + len("requests")
    for line in body[:5]:
        assert line[requests_end - 1].isdigit()  # numbers right-aligned under their heading


def test_durations_read_as_days_and_hours() -> None:
    assert duration_text(59) == "00:00"
    assert duration_text(3 * 3600 + 15 * 60) == "03:15"
    assert duration_text(2 * 86_400 + 3600) == "2d 01:00"


@pytest.mark.parametrize("name", list(REPORTS))
def test_html_renders_offline_with_its_charts_and_numbers(
    url: str, name: str, browser: Browser, tmp_path: Path
) -> None:
    out = tmp_path / f"{name}.html"
    run = crmrules("report", name, "--store", url, *SPAN, "--format", "html", "-o", str(out))
    assert run.returncode == 0, run.stderr
    page = out.read_text(encoding="utf-8")
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org", "")
    shown = browser.render(out, name=f"report-{name}")
    assert shown.errors == []
    assert shown.screenshot is not None and shown.screenshot.stat().st_size > 10_000
    span = Span(date(2026, 3, 1), date(2026, 5, 31), "month", ZoneInfo("Europe/Moscow"))
    with SQLAlchemyStore(url) as store:
        made = report(name, store, span, catalogue=["kitchen", "wardrobe", "measurement",
                                                    "assembly"])  # fmt: skip
    assert made.title in shown.text
    charts = shown.page.locator("svg").count()  # type: ignore[attr-defined]
    assert charts >= 1
    first = next(iter(made.tables.values()))[0]
    for value in text(made).splitlines()[5].split()[:3]:  # the first row's first cells
        assert value in shown.text
    assert str(getattr(first, columns([first])[1])) in shown.text


def test_conversion_chart_bars_carry_the_totals(url: str, tmp_path: Path) -> None:
    span = Span(date(2026, 3, 1), date(2026, 5, 31), "month", ZoneInfo("Europe/Moscow"))
    with SQLAlchemyStore(url) as store:
        made = report("conversion", store, span)
    from crmrules.reports.html import html

    page = html(made)
    total = sum(r.requests for r in made.tables["conversion"] if r.campaign == "search-ads")
    assert f"<title>requests: {total}</title>" in page


def test_bad_arguments_are_one_line(url: str) -> None:
    backwards = crmrules("report", "funnel", "--store", url, "--from", "2026-05-01",
                         "--to", "2026-04-01")  # fmt: skip
    assert backwards.returncode == 1
    assert backwards.stderr == (
        "error: the report ends (2026-04-01) before it starts (2026-05-01)\n"
    )
    zone = crmrules("report", "funnel", "--store", url, *SPAN[:4], "--tz", "Mars/Olympus")
    assert zone.returncode == 1 and "unknown time zone 'Mars/Olympus'" in zone.stderr
    bad_date = crmrules("report", "funnel", "--store", url, "--from", "March", "--to", "2026-04-01")
    assert bad_date.returncode == 2 and "expected a date YYYY-MM-DD, got 'March'" in bad_date.stderr
    unknown = crmrules("report", "sales", "--store", url, *SPAN)
    assert unknown.returncode == 2 and "invalid choice: 'sales'" in unknown.stderr


def test_csv_text_of_an_empty_report_is_its_header(tmp_path: Path) -> None:
    path = tmp_path / "empty.sqlite3"
    with SQLAlchemyStore(f"sqlite:///{path}") as store:
        made = report("compliance", store, Span(date(2026, 1, 1), date(2026, 1, 31)))
    assert made.tables["compliance"] == []
    assert csv_text(made) == BOM + "\r\n"
    assert "(no rows)" in text(made)
