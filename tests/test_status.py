"""``crmrules.status`` and ``crmrules status``: counts of timers and messages by state.

The SQL store counts with grouped queries, the memory store by reading the
records; random timers and messages in both must give the same counts, and
a hand-made example gives the numbers a person expects.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import test_store_contract as contract
from crmrules.adapters.memory import MemoryStore
from crmrules.adapters.sqlalchemy import SQLAlchemyStore
from crmrules.cli import main
from crmrules.status import WorkCounts, work_status
from crmrules.store import MessageStatus, OutboxMessage, Store, Timer, TimerStatus

store = contract.store  # memory, SQLite and PostgreSQL
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

row = st.tuples(
    st.sampled_from(["pending", "failed", "done"]),
    st.integers(-300, 300),  # due, seconds from NOW
    st.sampled_from([None, "w1", "w2"]),
    st.integers(-120, 120),  # lease end, seconds from NOW
)


def timer(key: str, state: str, due: int, owner: str | None, until: int) -> Timer:
    statuses = {"pending": TimerStatus.PENDING, "failed": TimerStatus.FAILED}
    return Timer(
        key=key,
        kind="rule",
        due_at=NOW + timedelta(seconds=due),
        created_at=NOW,
        status=statuses.get(state, TimerStatus.FIRED),
        lease_owner=owner,
        lease_until=None if owner is None else NOW + timedelta(seconds=until),
    )


def message(key: str, state: str, due: int, owner: str | None, until: int) -> OutboxMessage:
    statuses = {"pending": MessageStatus.PENDING, "failed": MessageStatus.FAILED}
    return OutboxMessage(
        key=key,
        channel="email",
        to="info@romashka.ru",
        next_attempt_at=NOW + timedelta(seconds=due),
        created_at=NOW,
        status=statuses.get(state, MessageStatus.SENT),
        lease_owner=owner,
        lease_until=None if owner is None else NOW + timedelta(seconds=until),
    )


def fill(target: Store, rows: list[tuple[str, int, str | None, int]], prefix: str) -> None:
    with target.transaction() as tx:
        for n, values in enumerate(rows):
            tx.put_timer(timer(f"{prefix}t{n}", *values))
            tx.put_message(message(f"{prefix}m{n}", *values))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(row, max_size=15))
def test_sql_counts_agree_with_reading_the_records(
    rows: list[tuple[str, int, str | None, int]],
) -> None:
    memory = MemoryStore()
    fill(memory, rows, "")
    with (
        tempfile.TemporaryDirectory() as folder,
        SQLAlchemyStore(f"sqlite:///{folder}/status.sqlite3") as sqlite,
    ):
        fill(sqlite, rows, "")
        assert work_status(sqlite, NOW).to_dict() == work_status(memory, NOW).to_dict()


def test_the_counts_of_a_small_store(store: Store) -> None:
    rows = [
        ("pending", -10, None, 0),  # due now
        ("pending", -300, None, 0),  # late: due 5 minutes ago
        ("pending", 60, None, 0),  # not due yet
        ("pending", -10, "w1", 30),  # leased by a live worker
        ("pending", -10, "w2", -30),  # its worker's lease ended: due again
        ("failed", -10, None, 0),
        ("done", -10, None, 0),
    ]
    fill(store, rows, "")
    found = work_status(store, NOW)
    expected = WorkCounts(pending=5, due=3, late=1, leased=1, failed=1)
    assert found.timers == expected
    assert found.messages == expected
    assert [(lease.worker, lease.timers, lease.messages) for lease in found.leases] == [
        ("w1", 1, 1),
        ("w2", 1, 1),
    ]
    lines = found.lines()
    assert lines[0] == "timers: 5 pending (3 due now, 1 late, 1 leased), 1 failed"
    assert "worker w2: 1 timer(s), 1 message(s), lease expired" in lines[3]


def test_the_status_command_prints_the_counts(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/crm.sqlite3"
    with SQLAlchemyStore(url) as sqlite:
        fill(sqlite, [("pending", -3600, None, 0), ("failed", 0, None, 0)], "")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["status", "--store", url]) == 0
    assert out.getvalue().splitlines() == [
        "timers: 1 pending (1 due now, 1 late, 0 leased), 1 failed",
        "messages: 1 pending (1 due now, 1 late, 0 leased), 1 failed",
    ]
