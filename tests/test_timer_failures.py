"""One bad timer, or one bad client of a schedule, never stops the others.

The worker runs as a real process (``crmrules worker --once``) on a SQLite
file and on PostgreSQL (a fresh schema, reached through ``search_path``).
"""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from crmrules import Client, Engine, SimulatedClock
from crmrules import store as stores
from crmrules.adapters.memory import MemoryStore
from crmrules.adapters.sqlalchemy import SQLAlchemyStore
from crmrules.store import TimerStatus
from databases import Database, database
from isolation_workers import fire_due
from outage import REGULATION as FAILING_FOR_NO_CREDIT

__all__ = ["database"]

#: One rule whose template fails for a client without a credit (the outage test's too).
TIMERS = FAILING_FOR_NO_CREDIT

SCHEDULE = """\
version: 1
calendar: {timezone: Europe/Moscow}
fields:
  client.credit: {type: integer}
rules:
  - id: weekly-review
    on: {every: 1 day, at: "09:00"}
    then:
      - create_task: {title: "Обзор {{ client.name }}: лимит {{ client.credit * 2 }}"}
"""


def engine(db: Database, regulation: Path) -> Engine:
    store = SQLAlchemyStore(db.url, schema=db.schema)
    return Engine.from_path(regulation, store=store, entry_points=False)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "regulation.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def run_worker(db: Database, regulation: Path) -> subprocess.CompletedProcess[str]:
    """``crmrules worker --once`` in a process of its own, as an admin starts it."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "crmrules",
            "worker",
            str(regulation),
            "--database",
            db.search_path_url,
            "--once",
            "--batch",
            "100",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def clients(runner: Engine, count: int, bad: set[int], created: datetime) -> None:
    for n in range(count):
        fields = {} if n in bad else {"credit": 100 + n}
        runner.create_client(
            Client(id=f"c{n:02d}", name=f"Клиент {n}", created_at=created, fields=fields)
        )


def test_a_failing_timer_is_recorded_and_the_rest_of_the_batch_fires(
    tmp_path: Path, database: Database
) -> None:
    regulation = write(tmp_path, TIMERS)
    setup = engine(database, regulation)
    clients(setup, 10, {3}, datetime.now(UTC) - timedelta(days=2))
    setup.store.close()

    first = run_worker(database, regulation)
    assert first.returncode == 0, first.stderr
    again = run_worker(database, regulation)  # starting again works too
    assert again.returncode == 0, again.stderr

    check = engine(database, regulation)
    titles = sorted(t.title for t in check.tasks())
    assert len(titles) == 9 and not any("Клиент 3:" in t for t in titles)
    with check.store.transaction() as tx:
        timers = {t.client: t for t in tx.find_timers(rule="day-after")}
    assert timers["c03"].status is TimerStatus.FAILED
    assert "rule day-after failed: action 1 (create_task)" in (timers["c03"].note or "")
    assert "empty" in (timers["c03"].note or "")
    assert all(t.status is TimerStatus.FIRED for c, t in timers.items() if c != "c03")
    (failure,) = check.failures(status=stores.FailureStatus.FAILED)
    assert failure.rule == "day-after" and failure.event["client"] == "c03"

    # The admin fixes the data; the failed run goes again, once.
    check.update_client("c03", {"credit": 5})
    assert [r.fired for r in check.retry_failed()] == [["day-after"]]
    assert check.retry_failed() == []
    assert len(check.tasks()) == 10
    with check.store.transaction() as tx:
        (timer,) = tx.find_timers(client="c03")
    assert timer.status is TimerStatus.FIRED  # its rule ran after all
    assert (timer.note or "").startswith("fired when its failed rule was run again")
    check.store.close()


def test_a_timer_whose_client_cannot_be_read_is_retried_never_fired(
    tmp_path: Path, database: Database
) -> None:
    regulation = write(tmp_path, TIMERS)
    setup = engine(database, regulation)
    clients(setup, 5, set(), datetime.now(UTC) - timedelta(days=2))
    setup.store.close()
    # The host's data for c02 is broken (a name that is not text).
    raw = sa.create_engine(database.url.replace("postgresql://", "postgresql+psycopg://", 1))
    table = (
        "crmrules_clients" if database.schema is None else f'"{database.schema}".crmrules_clients'
    )
    with raw.begin() as connection:
        connection.exec_driver_sql(
            f'UPDATE {table} SET data = \'{{"id": "c02", "name": 5}}\' WHERE id = \'c02\''
        )
    raw.dispose()

    result = run_worker(database, regulation)
    assert result.returncode == 0, result.stderr

    check = engine(database, regulation)
    assert len(check.tasks()) == 4
    with check.store.transaction() as tx:
        (timer,) = tx.find_timers(client="c02")
    assert timer.status is TimerStatus.PENDING and timer.attempts == 1
    assert timer.fired_at is None and timer.lease_owner is None
    assert timer.note is not None and timer.note.startswith("attempt 1 failed: ")
    assert "name" in timer.note and "ValidationError" not in timer.note
    assert timer.lease_until is not None and timer.lease_until > datetime.now(UTC)

    # Still broken at every retry: FAILED after the last attempt, with the reason.
    from crmrules.firing import TIMER_RETRY

    moment = datetime.now(UTC)
    for _ in range(TIMER_RETRY.max_attempts):
        moment += TIMER_RETRY.max_delay + timedelta(minutes=1)
        check.run_due(moment)
    with check.store.transaction() as tx:
        (timer,) = tx.find_timers(client="c02")
    assert timer.status is TimerStatus.FAILED
    assert timer.attempts == TIMER_RETRY.max_attempts
    assert (timer.note or "").startswith(f"could not fire after {TIMER_RETRY.max_attempts}")
    check.store.close()


def test_one_client_never_sinks_a_schedule(tmp_path: Path, database: Database) -> None:
    regulation = write(tmp_path, SCHEDULE)
    setup = engine(database, regulation)
    clients(setup, 30, {7}, datetime.now(UTC) - timedelta(days=3))
    setup.sync_timers(datetime.now(UTC) - timedelta(days=2))  # the schedule is due
    setup.store.close()

    # A worker process's batch (crmrules worker would re-plan the overdue schedule first).
    child = multiprocessing.get_context("spawn").Process(
        target=fire_due, args=(database.url, database.schema, str(regulation))
    )
    child.start()
    child.join(120)
    assert child.exitcode == 0

    check = engine(database, regulation)
    titles = [t.title for t in check.tasks()]
    assert len(titles) == 29 and not any("Клиент 7:" in t for t in titles)
    (failure,) = check.failures()
    assert failure.event["client"] == "c07"
    assert failure.reason.startswith("action 1 (create_task): ")
    with check.store.transaction() as tx:
        fired = [
            t for t in tx.find_timers(rule="weekly-review") if t.status is not TimerStatus.PENDING
        ]
    assert fired and fired[0].status is TimerStatus.FIRED
    assert "1 client(s) failed" in (fired[0].note or "")
    check.store.close()


def test_a_refusing_rule_in_a_schedule_refuses_only_its_client(tmp_path: Path) -> None:
    text = SCHEDULE.replace("    then:\n", "    on_error: refuse\n    then:\n")
    start = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
    clock = SimulatedClock(start)
    runner = Engine.from_path(
        write(tmp_path, text), store=MemoryStore(), clock=clock, entry_points=False
    )
    clients(runner, 3, {1}, start - timedelta(days=3))
    runner.sync_timers()
    clock.advance(timedelta(days=1))
    report = runner.run_due()
    assert report.fired == 1 and report.failed == []
    assert len(runner.tasks()) == 2
    (failure,) = runner.failures()
    assert failure.event["client"] == "c01"
    assert "on_error: refuse" in failure.reason
