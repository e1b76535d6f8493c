"""engine.impact / crmrules diff: read-only, and its counts are what applying NEW does."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from browser import Browser, browser
from crmrules import Client, Engine, SimulatedClock, load_regulation
from crmrules.adapters.sqlalchemy import SQLAlchemyStore
from crmrules.impact.html import render
from crmrules.store import Timer, TimerStatus
from databases import Database, database

ROOT = Path(__file__).parent.parent
OLD = ROOT / "examples" / "territories" / "regulation.yaml"
START = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)


def new_regulation(tmp_path: Path) -> Path:
    """OLD with Moscow's key clients redrawn, a renewal moved, a rule removed and one added."""
    text = OLD.read_text(encoding="utf-8")
    edits = [
        ("when: {field: client.segment, eq: A}", "when: {field: client.segment, in: [A, B]}"),
        (
            "  - id: renewal-reminder\n    description: За 30 дней до окончания договора — звонок "
            "о продлении\n    on: {before: 30 days, of: client.contract_end}",
            "  - id: renewal-reminder\n    description: За 45 дней до окончания договора — звонок "
            "о продлении\n    on: {before: 45 days, of: client.contract_end}",
        ),
    ]
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new)
    start = text.index("  - id: renewal-letter")
    end = text.index("  - id: no-contact-30-days")
    added = (
        "  - id: welcome-spb\n    on: client.updated\n"
        "    if: {field: client.region, eq: Санкт-Петербург}\n"
        "    then:\n      - create_task: {kind: call, title: Привет}\n\n"
        "  - id: key-manager\n    on: territory.entered\n"
        "    if: {field: event.territory, eq: msk-key}\n"
        "    then:\n      - assign_manager: {strategy: territory}\n\n"
    )
    text = text[:start] + added + text[end:]
    text = text.replace("version: 1\n", "version: 1\nname: Территории\nrevision: 2\n", 1)
    path = tmp_path / "new.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def fill(url: str) -> None:
    engine = Engine(load_regulation(OLD), url, SimulatedClock(START), entry_points=False)
    regions = ["Москва", "Санкт-Петербург", "Казань"]
    for i in range(30):
        fields: dict[str, object] = {"segment": "ABC"[i // 3 % 3], "employees": 10 * i}
        if i % 2 == 0:
            fields["contract_end"] = (date(2026, 6, 1) + timedelta(days=i)).isoformat()
        engine.create_client(
            Client(id=f"c{i:02}", name=f"Клиент {i}", region=regions[i % 3], fields=fields)
        )
    engine.store.close()


def timers_of(url: str, schema: str | None) -> dict[str, Timer]:
    store = SQLAlchemyStore(url, schema=schema)
    try:
        with store.transaction() as tx:
            return {t.key: t for t in tx.find_timers()}
    finally:
        store.close()


def actual_changes(before: dict[str, Timer], after: dict[str, Timer]) -> dict[str, int]:
    counts = {"planned": 0, "replanned": 0, "cancelled": 0}
    for key, timer in after.items():
        old = before.get(key)
        was = old is not None and old.status is TimerStatus.PENDING
        now = timer.status is TimerStatus.PENDING
        if now and not was:
            counts["planned"] += 1
        elif was and not now and timer.status is TimerStatus.CANCELLED:
            counts["cancelled"] += 1
        elif was and now and old is not None and old.due_at != timer.due_at:
            counts["replanned"] += 1
    return counts


def snapshot(db: Database, path: Path) -> str:
    """The SQLite file's hash, or the PostgreSQL schema's dump."""
    if db.schema is None:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    url = sa.make_url(db.url)
    dump = subprocess.run(
        [
            "pg_dump",
            "--no-owner",
            "-n",
            db.schema,
            "-h",
            url.host or "127.0.0.1",
            "-p",
            str(url.port or 5432),
            "-U",
            url.username or "postgres",
            url.database or "postgres",
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PGPASSWORD": url.password or ""},
    )
    # pg_dump guards its output with a random \restrict key each run: not the data.
    return "\n".join(
        line
        for line in dump.stdout.splitlines()
        if not line.startswith(("\\restrict", "\\unrestrict"))
    )


def test_impact_changes_nothing_and_its_counts_are_what_applying_does(
    database: Database,
    tmp_path: Path,
) -> None:
    url = database.search_path_url
    fill(url)
    new = load_regulation(new_regulation(tmp_path))
    sqlite_file = tmp_path / "crm.sqlite3"
    before_snapshot = snapshot(database, sqlite_file)
    clock = SimulatedClock(START + timedelta(hours=1))
    engine = Engine(load_regulation(OLD), url, clock, entry_points=False)
    report = engine.impact(new)
    engine.store.close()
    assert snapshot(database, sqlite_file) == before_snapshot

    summary = report.summary()
    assert report.new_version["revision"] == "2" and report.new_version["name"] == "Территории"
    assert summary["territory_entries"] > 0 and summary["timers_replanned"] > 0
    assert summary["timers_cancelled"] > 0
    assert {r.rule: r.change for r in report.rules} == {
        "renewal-reminder": "changed",
        "renewal-letter": "removed",
        "welcome-spb": "added",
        "key-manager": "added",
    }
    assert summary["managers_reassigned"] == summary["territory_entries"]
    welcome = next(r for r in report.rules if r.rule == "welcome-spb")
    assert (welcome.clients_old, welcome.clients_new) == (None, 10)

    # Apply NEW for real: the timer sync, then the realignment.
    timers_before = timers_of(database.url, database.schema)
    applied = Engine(new, url, clock, entry_points=False)
    changes = applied.reload(new)
    timers_after = timers_of(database.url, database.schema)
    expected = actual_changes(timers_before, timers_after)
    assert expected == {
        "planned": report.timers.planned,
        "replanned": report.timers.replanned,
        "cancelled": report.timers.cancelled,
    }
    assert changes.summary() == report.timers.summary()
    realigned = applied.realign()
    applied.store.close()
    assert realigned.to_dict()["territories"] == report.to_dict()["territories"]
    assert realigned.to_dict()["segments"] == report.to_dict()["segments"]
    assert realigned.changed == summary["clients_moved"]
    store = SQLAlchemyStore(database.url, schema=database.schema)
    try:
        with store.transaction() as tx:
            audit = tx.audit_log()
    finally:
        store.close()
    fired = [e for e in audit if e.kind == "fired" and e.rule == "key-manager"]
    assert len({e.client for e in fired}) == summary["managers_reassigned"]


def crmrules(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "crmrules", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


@pytest.fixture
def base(tmp_path: Path) -> str:
    from crmrules.adapters import migrate

    url = f"sqlite:///{tmp_path / 'crm.sqlite3'}"
    migrate.upgrade(url)
    fill(url)
    return url


def test_diff_prints_text_json_and_html(base: str, tmp_path: Path) -> None:
    new = new_regulation(tmp_path)
    text = crmrules("diff", str(OLD), str(new), "--store", base)
    assert text.returncode == 0, text.stderr
    assert "rule welcome-spb added" in text.stdout
    assert "territory msk-key: +" in text.stdout
    as_json = crmrules("diff", str(OLD), str(new), "--store", base, "--format", "json")
    assert '"timers_replanned"' in as_json.stdout
    out = tmp_path / "report.html"
    html = crmrules("diff", str(OLD), str(new), "--store", base, "--format", "html", "-o", str(out))
    assert html.returncode == 0, html.stderr
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_the_html_report_renders_in_chromium_with_its_numbers(
    browser: Browser, base: str, tmp_path: Path
) -> None:
    new = load_regulation(new_regulation(tmp_path))
    engine = Engine(load_regulation(OLD), base, SimulatedClock(START), entry_points=False)
    report = engine.impact(new)
    engine.store.close()
    out = tmp_path / "impact.html"
    out.write_text(render(report), encoding="utf-8")
    shown = browser.render(out, name="impact-report")
    assert shown.errors == []
    assert "Impact of switching the regulation" in shown.text
    page: Any = shown.page
    for name, value in report.summary().items():
        assert page.inner_text(f"#sum-{name}") == str(value), name
    assert page.locator("svg rect").count() >= 2
    assert "welcome-spb" in page.inner_text("#rules")
    # Sorting: a click on "clients NEW" orders the rules by it, twice reverses.
    header = page.locator("#rules th", has_text="clients NEW")
    header.click()
    first = page.locator("#rules tbody tr").first.inner_text()
    header.click()
    assert page.locator("#rules tbody tr").first.inner_text() != first
    assert shown.screenshot is not None and shown.screenshot.stat().st_size > 0


__all__ = ["browser", "database"]
