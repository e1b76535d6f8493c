"""A claimed batch of due timers fires in one transaction, and one bad timer falls back alone.

``run_due`` fires the timers it claimed together (in one transaction,
one commit for the batch); if one of them cannot fire, the batch
is rolled back and every timer fires alone, so the bad one gets its usual
retry and the others fire all the same. The oracle for "the same as one at
a time" is a batch of one (``limit=1`` a call), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import hashlib
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from crmrules import Client, Engine, SimulatedClock, Task
from crmrules.adapters.sqlalchemy import SQLAlchemyStore
from crmrules.store import TimerStatus
from databases import Database, database, open_database

__all__ = ["database"]

START = datetime(2026, 3, 2, 7, tzinfo=UTC)
REGULATION = """\
version: 1
calendar: {timezone: Europe/Moscow}
fields:
  client.credit: {type: integer}
rules:
  - id: day-after
    on: {after: 1 day, since: client.created_at}
    on_error: refuse
    then:
      - create_task: {title: "Позвонить {{ client.name }}: {{ client.credit * 2 }}"}
"""


def engine(db: Database, folder: Path) -> tuple[Engine, SimulatedClock]:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "regulation.yaml"
    path.write_text(textwrap.dedent(REGULATION), encoding="utf-8")
    clock = SimulatedClock(START)
    store = SQLAlchemyStore(db.url, schema=db.schema)
    made = Engine.from_path(path, store=store, clock=clock, entry_points=False)
    for index in range(6):
        fields = {} if index == 3 else {"credit": index}  # c3's template fails: no credit
        made.create_client(Client(id=f"c{index}", name=f"Клиент {index}", fields=fields))
    clock.advance(timedelta(days=2))
    return made, clock


def state(made: Engine) -> list[Any]:
    with made.store.transaction() as tx:
        timers = sorted(
            (t.key, t.status.value, t.attempts, (t.note or "").split(";")[0])
            for t in tx.find_timers()
        )
    tasks = sorted((t.client, t.title) for t in made.tasks())
    return [timers, tasks]


def test_a_batch_fires_as_timers_fired_one_at_a_time(database: Database, tmp_path: Path) -> None:
    together, _ = engine(database, tmp_path / "together")
    report = together.run_due()
    assert report.fired == 5 and len(report.failed) == 1  # c3 is retried later
    (tmp_path / "alone").mkdir()
    kind = "sqlite" if database.schema is None else "postgresql"
    with open_database(kind, tmp_path / "alone") as db:
        alone, _ = engine(db, tmp_path / "alone-regulation")
        while alone.run_due(limit=1).handled:
            pass
        assert state(together) == state(alone)
        alone.store.close()
    together.store.close()


def test_good_timers_fire_in_one_commit(database: Database, tmp_path: Path) -> None:
    made, _ = engine(database, tmp_path)
    with made.store.transaction() as tx:  # c3's timer out of the way: the batch is all good
        bad = next(t for t in tx.find_timers() if t.client == "c3")
        tx.put_timer(bad.model_copy(update={"status": TimerStatus.CANCELLED}))
    commits: list[int] = []
    assert made.store.engine is not None
    sa.event.listen(made.store.engine, "commit", lambda conn: commits.append(1))
    report = made.run_due()
    assert report.fired == 5
    assert len(commits) == 2  # the claim, then the five timers together
    assert made.run_due().handled == 0
    made.store.close()


def plant_task(made: Engine, client: str) -> None:
    """The task the client's timer would create, there already (as if made by an earlier run);
    c3's timer (whose template fails) out of the way, so only the task stops the batch."""
    with made.store.transaction() as tx:
        bad = next(t for t in tx.find_timers() if t.client == "c3")
        tx.put_timer(bad.model_copy(update={"status": TimerStatus.CANCELLED}))
        timer = next(t for t in tx.find_timers() if t.client == client)
        key = f"timer:{timer.key}:day-after:0"  # the action's idempotency key
        task_id = f"task-{hashlib.sha256(key.encode()).hexdigest()[:20]}"
        task = Task(
            id=task_id,
            kind="call",
            title="planted",
            client=client,
            idempotency_key=key,
            created_at=START,
        )
        assert tx.add_task(task)


def test_a_batch_that_meets_a_stored_row_fires_as_one_at_a_time(
    database: Database, tmp_path: Path
) -> None:
    """The batch holds its tasks back as new; one there already undoes the batch, and the
    timers fire alone, as they would have: the planted task stays, the others are created."""
    together, _ = engine(database, tmp_path / "together")
    plant_task(together, "c1")
    report = together.run_due()
    assert report.fired == 5 and not report.failed
    (tmp_path / "alone").mkdir()
    kind = "sqlite" if database.schema is None else "postgresql"
    with open_database(kind, tmp_path / "alone") as db:
        alone, _ = engine(db, tmp_path / "alone-regulation")
        plant_task(alone, "c1")
        while alone.run_due(limit=1).handled:
            pass
        assert state(together) == state(alone)
        assert ("c1", "planted") in state(together)[1]
        alone.store.close()
    together.store.close()


def test_a_timer_whose_result_is_kept_already_settles_and_the_batch_fires(
    database: Database, tmp_path: Path
) -> None:
    """The batch does not read the timers' results: one kept from before (the timer fired,
    its status was written back by a stale copy) fails the batch's INSERT of the results,
    and every timer fires alone: that one is settled as fired, without firing again."""
    from crmrules.result import Result

    made, _ = engine(database, tmp_path)
    with made.store.transaction() as tx:
        (timer,) = tx.find_timers(client="c1")
        kept = Result(f"timer:{timer.key}", regulation=made.regulation.release.id)
        tx.save_event_result(kept.event_id, kept.to_dict())
        (broken,) = tx.find_timers(client="c3")
    report = made.run_due()
    assert report.fired == 5 and [key for key, _ in report.failed] == [broken.key]
    duplicate = [r for r in report.results if r.duplicate]
    assert [r.event_id for r in duplicate] == [kept.event_id]
    with made.store.transaction() as tx:
        settled = tx.get_timer(timer.key)
    assert settled is not None and settled.status is TimerStatus.FIRED
    assert (settled.note or "").startswith("fired before")
    assert sorted(t.client for t in made.tasks()) == ["c0", "c2", "c4", "c5"]  # not c1 again
    made.store.close()
