"""`crmrules worker`: real processes on a SQLite file, stopped and reloaded by signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from crmrules import Client, Deal, Engine
from crmrules.adapters import SQLAlchemyStore
from crmrules.model import TaskStatus

REGULATION = """\
version: 1
calendar: {timezone: Europe/Moscow}
fields:
  deal.delivered_at: {type: datetime}
pipelines:
  - id: sales
    stages: [{id: new}, {id: won, final: true}]
rules:
  - id: feedback
    on: {after: 15 days, since: deal.delivered_at}
    then: [{create_task: {title: Попросить отзыв}}]
"""


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, str]:
    """A regulation and a SQLite database with one timer that fell due 5 days ago."""
    regulation = tmp_path / "regulation.yaml"
    regulation.write_text(REGULATION, encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'crm.sqlite3'}"
    engine = Engine.from_path(regulation, store=SQLAlchemyStore(url), entry_points=False)
    engine.create_client(Client(id="c1", name="ООО Ромашка"))
    delivered = datetime.now(UTC) - timedelta(days=20)
    engine.create_deal(
        Deal(
            id="d1", client="c1", pipeline="sales", stage="new", fields={"delivered_at": delivered}
        )
    )
    engine.store.close()
    return regulation, url


def worker(regulation: Path, url: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "crmrules", "worker", str(regulation), "--database", url, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(process: subprocess.Popen[str], text: str, timeout: float = 30) -> str:
    """Read the worker's log until ``text`` appears."""
    assert process.stderr is not None
    seen = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        seen += line
        if text in line:
            return seen
        if not line and process.poll() is not None:
            break
    raise AssertionError(f"never saw {text!r}; log so far:\n{seen}")


def open_tasks(url: str, regulation: Path) -> list[str]:
    engine = Engine.from_path(regulation, store=SQLAlchemyStore(url), entry_points=False)
    try:
        return [t.title for t in engine.tasks(status=TaskStatus.OPEN)]
    finally:
        engine.store.close()


def test_once_fires_the_due_timer_late_and_only_once(setup: tuple[Path, str]) -> None:
    regulation, url = setup
    first = worker(regulation, url, "--once")
    _, log = first.communicate(timeout=60)
    assert first.returncode == 0, log
    assert "1 timer(s) handled, 1 rule(s) fired" in log
    assert open_tasks(url, regulation) == ["Попросить отзыв"]
    again = worker(regulation, url, "--once")
    _, log = again.communicate(timeout=60)
    assert "0 timer(s) handled" in log
    assert open_tasks(url, regulation) == ["Попросить отзыв"]


def test_sigterm_stops_gracefully_and_sighup_reloads(setup: tuple[Path, str]) -> None:
    regulation, url = setup
    process = worker(regulation, url, "--interval", "0.2")
    try:
        wait_for(process, "started")
        wait_for(process, "1 rule(s) fired")
        regulation.write_text(REGULATION.replace("15 days", "30 days"), encoding="utf-8")
        process.send_signal(signal.SIGHUP)
        wait_for(process, "regulation reloaded")
        process.send_signal(signal.SIGTERM)
        wait_for(process, "stopped")
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)


def test_a_reload_that_re_plans_timers_says_how_many(tmp_path: Path) -> None:
    regulation = tmp_path / "regulation.yaml"
    regulation.write_text(REGULATION, encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'crm.sqlite3'}"
    engine = Engine.from_path(regulation, store=SQLAlchemyStore(url), entry_points=False)
    engine.create_client(Client(id="c1", name="ООО Ромашка"))
    delivered = datetime.now(UTC) - timedelta(days=2)  # the feedback timer is 13 days away
    engine.create_deal(
        Deal(
            id="d1", client="c1", pipeline="sales", stage="new", fields={"delivered_at": delivered}
        )
    )
    engine.store.close()
    process = worker(regulation, url, "--interval", "0.2")
    try:
        wait_for(process, "started")
        labelled = REGULATION.replace("version: 1\n", "version: 1\nrevision: 2\n")
        regulation.write_text(labelled.replace("15 days", "30 days"), encoding="utf-8")
        process.send_signal(signal.SIGHUP)
        line = wait_for(process, "regulation reloaded").splitlines()[-1]
        assert "(version revision 2 (" in line
        assert line.endswith("0 timers planned, 1 re-planned, 0 cancelled")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)


def test_sqlite_allows_one_worker_at_a_time(setup: tuple[Path, str]) -> None:
    regulation, url = setup
    first = worker(regulation, url, "--interval", "0.2")
    try:
        wait_for(first, "started")
        second = worker(regulation, url, "--once")
        _, log = second.communicate(timeout=60)
        assert second.returncode == 1
        assert "Another crmrules worker is already running on" in log
        assert "SQLite runs one worker at a time" in log
        assert "Traceback" not in log
    finally:
        os.kill(first.pid, signal.SIGTERM)
        first.communicate(timeout=30)
