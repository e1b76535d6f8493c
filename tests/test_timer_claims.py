"""Claiming due timers on PostgreSQL in one ``UPDATE ... RETURNING`` (adapters.timer_claims).

The oracle is the claim it replaced, which is still SQLite's: select the due
rows, then write each one's lease. On any set of timers (due or not, pending
or not, leased to this worker, to another, or expired) both claim the same
timers in the same order, and leave the same rows stored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmrules.adapters.sqlalchemy import SQLAlchemyStore, SQLAlchemyTransaction
from crmrules.store import Timer, TimerStatus
from databases import open_database

NOW = datetime(2026, 3, 2, 9, tzinfo=UTC)
LEASE = NOW + timedelta(seconds=30)
Claim = Callable[[SQLAlchemyTransaction, datetime, int, str, datetime], list[Timer]]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SQLAlchemyStore]:
    with open_database("postgresql", tmp_path_factory.mktemp("claims")) as db:
        made = SQLAlchemyStore(db.url, schema=db.schema)
        yield made
        made.close()


timer_specs = st.lists(
    st.tuples(
        st.integers(-3, 2),  # due, in minutes from now
        st.sampled_from(list(TimerStatus)),
        st.sampled_from([None, "w0", "w1"]),  # the lease's owner
        st.integers(-2, 2),  # the lease's end, in minutes from now
        st.sampled_from([None, "late", "a \x00 in the note", "Ünïcode ✓"]),
    ),
    max_size=12,
)


def timers_of(specs: list[tuple[int, TimerStatus, str | None, int, str | None]]) -> list[Timer]:
    return [
        Timer(
            key=f"rule:r:client:c{index:02d}:{'é' if index % 3 == 0 else 'e'}",
            kind="rule",
            rule="r",
            client=f"c{index}",
            due_at=NOW + timedelta(minutes=due),
            status=status,
            lease_owner=owner,
            lease_until=None if owner is None else NOW + timedelta(minutes=until),
            note=note,
            created_at=NOW - timedelta(days=1),
            data={"anchor": "client.created_at", "n": index, "x": 1.5},
        )
        for index, (due, status, owner, until, note) in enumerate(specs)
    ]


class _Undo(Exception):
    pass


def claimed_and_stored(
    store: SQLAlchemyStore, timers: list[Timer], claim: Claim, limit: int
) -> tuple[list[Timer], list[Any]]:
    """What ``claim`` gives and the rows then stored; every write undone after."""
    seen: tuple[list[Timer], list[Any]] = ([], [])
    try:
        with store.transaction() as tx:
            for timer in timers:
                tx.put_timer(timer)
            got = claim(tx, NOW, limit, "w0", LEASE)
            t = tx.tables.timers
            rows = tx.connection.execute(sa.select(t).order_by(t.c.key)).all()
            seen = (got, [tuple(row) for row in rows])
            raise _Undo()
    except _Undo:
        pass
    return seen


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(specs=timer_specs, limit=st.integers(1, 8))
def test_one_statement_claims_what_the_select_and_updates_did(
    store: SQLAlchemyStore, specs: list[Any], limit: int
) -> None:
    timers = timers_of(specs)
    fast = claimed_and_stored(store, timers, SQLAlchemyTransaction.claim_timers, limit)
    slow = claimed_and_stored(store, timers, SQLAlchemyTransaction._claim_selected, limit)
    assert fast == slow
    assert all(t.lease_owner == "w0" and t.lease_until == LEASE for t in fast[0])


def test_a_timer_whose_json_jsonb_refuses_is_claimed_all_the_same(
    store: SQLAlchemyStore, tmp_path: Path
) -> None:
    """``\\u0000`` in a note: the server leaves the row's JSON, the store writes it."""
    (timer,) = timers_of([(-1, TimerStatus.PENDING, None, 0, "a \x00 in the note")])
    got, rows = claimed_and_stored(store, [timer], SQLAlchemyTransaction.claim_timers, 5)
    assert [t.key for t in got] == [timer.key] and got[0].lease_owner == "w0"
    assert rows[0][-1]["lease_owner"] == "w0" and rows[0][-1]["note"] == "a \x00 in the note"


def test_two_workers_claiming_at_once_never_claim_the_same_timer(
    tmp_path: Path,
) -> None:
    """The first claim's rows stay locked until it commits; the second skips them."""
    with open_database("postgresql", tmp_path) as db:
        first, second = (SQLAlchemyStore(db.url, schema=db.schema) for _ in range(2))
        timers = timers_of([(-1, TimerStatus.PENDING, None, 0, None)] * 5)
        with first.transaction() as tx:
            for timer in timers:
                tx.plan_timer(timer)
        with first.transaction() as one:
            mine = one.claim_timers(NOW, 3, "w0", LEASE)
            with second.transaction() as two:
                theirs = two.claim_timers(NOW, 3, "w1", LEASE)
        assert len(mine) == 3 and len(theirs) == 2
        assert not {t.key for t in mine} & {t.key for t in theirs}
        with first.transaction() as tx:
            owners = {t.key: t.lease_owner for t in tx.find_timers()}
        assert owners == {
            **dict.fromkeys((t.key for t in mine), "w0"),
            **dict.fromkeys((t.key for t in theirs), "w1"),
        }
        first.close()
        second.close()
