"""The SQL store's fast paths against the plain ones they replace.

``crmrules.adapters.direct`` sends the hot statements to the driver's cursor
with their SQL rendered once: the rows must be exactly those
``Connection.execute`` writes (the same JSON text, the same UTC moments), a
driver error must come out as SQLAlchemy's (so the store's ConflictError),
and a host's statement listeners must still see every statement.
``json_values.audit_data`` writes an audit line without pydantic's
serializer: it must give what ``dump`` gives.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmrules.adapters import direct, json_values, statements
from crmrules.adapters.sqlalchemy import SQLAlchemyStore
from crmrules.adapters.tables import tables_in
from crmrules.store import AuditEntry, ConflictError, Timer
from databases import Database, open_database

#: text a database keeps, whichever way it is sent (no NUL, no lone surrogate)
text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12
)
values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=False, allow_infinity=False),
    text,
    st.datetimes(timezones=st.just(UTC)),
)
data = st.dictionaries(text, st.one_of(values, st.lists(values, max_size=3)), max_size=4)
offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
moments = st.one_of(
    st.datetimes(timezones=st.just(UTC)),
    st.datetimes(timezones=offsets),
)
entries = st.builds(
    AuditEntry,
    at=moments,
    event_id=text,
    event_type=text,
    kind=st.sampled_from(["fired", "not_matched", "held", "effect"]),
    rule=st.none() | text,
    message=text,
    data=data,
    regulation=st.none() | text,
    client=st.none() | text,
)


@given(entries)
def test_an_audit_line_is_written_as_pydantic_writes_it(entry: AuditEntry) -> None:
    assert json_values.audit_data(entry) == json_values.dump(entry)
    assert list(json_values.audit_data(entry)) == list(json_values.dump(entry))


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    with open_database(request.param, tmp_path) as found:
        yield found


def _audit_rows(connection: sa.Connection, table: sa.Table) -> list[tuple[Any, ...]]:
    """The rows as the database keeps them: the JSON as text."""
    query = sa.select(table.c.event_id, sa.cast(table.c.data, sa.Text), table.c.client_id)
    return [tuple(row) for row in connection.execute(query.order_by(table.c.id))]


rows = st.lists(
    st.fixed_dictionaries(
        {"event_id": text, "data": data.map(json_values.encode), "client_id": st.none() | text}
    ),
    min_size=1,
    max_size=4,
)


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=rows)
def test_direct_writes_the_rows_core_writes(database: Database, rows: list[dict[str, Any]]) -> None:
    engine = sa.create_engine(database.url)
    audit = tables_in(database.schema).audit
    insert = statements.insert(audit)
    keys = ("event_id", "data", "client_id")
    try:
        with engine.begin() as connection:
            connection.execute(sa.delete(audit))
            connection.execute(insert, rows)
            core = _audit_rows(connection, audit)
            connection.execute(sa.delete(audit))
            direct.execute_many(connection, insert, rows, keys=keys)
            for row in rows:
                direct.execute(connection, insert, row, keys=keys)
            fast = _audit_rows(connection, audit)
            connection.execute(sa.delete(audit))
        assert fast == core + core
    finally:
        engine.dispose()


def test_direct_reads_what_core_reads_and_counts_rows(database: Database) -> None:
    engine = sa.create_engine(database.url)
    timers = tables_in(database.schema).timers
    due = datetime(2026, 3, 2, 10, 30, tzinfo=timezone(timedelta(hours=3)))
    row = {
        "key": "t1",
        "kind": "k",
        "rule": None,
        "client_id": "c1",
        "deal_id": None,
        "status": "pending",
        "due_at": due,
        "lease_owner": None,
        "lease_until": None,
        "data": {"a": [1, "б"], "b": None},
    }
    try:
        with engine.begin() as connection:
            direct.execute(connection, statements.insert(timers), row, keys=tuple(row))
            query = sa.select(timers.c.due_at, timers.c.data).where(timers.c.key == "t1")
            core = tuple(connection.execute(query).one())
            assert direct.execute(connection, query, {})[1] == [core]
            update = statements.update_by_key(timers, ("key",), ("status",))
            params = {statements.key_param("key"): "t1", statements.value_param("status"): "x"}
            assert direct.execute(connection, update, params)[0] == 1
            params[statements.key_param("key")] = "none"
            assert direct.execute(connection, update, params)[0] == 0
            connection.execute(sa.delete(timers))
    finally:
        engine.dispose()


def test_a_listening_host_sees_every_statement(tmp_path: Path) -> None:
    store = SQLAlchemyStore(f"sqlite:///{tmp_path / 'crm.sqlite3'}")
    assert store.engine is not None
    seen: list[str] = []

    def listen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement.split()[0].upper())

    sa.event.listen(store.engine, "after_cursor_execute", listen)
    at = datetime(2026, 3, 2, tzinfo=UTC)
    with store.transaction() as tx:
        tx.add_audit(AuditEntry(at=at, event_id="e", event_type="t", kind="effect", message="m"))
        tx.save_event_result("e", {"ok": Decimal("1.5")})
    assert seen.count("INSERT") == 2
    with store.transaction() as tx:
        assert tx.event_result("e") == {"ok": Decimal("1.5")}
        assert tx.audit_log(event_id="e")[0].message == "m"
    store.close()


def test_a_duplicate_key_sent_directly_is_a_conflict(database: Database) -> None:
    store = SQLAlchemyStore(database.url, schema=database.schema)
    try:
        with store.transaction() as tx:
            tx.save_event_result("e1", {"first": True})
        with pytest.raises(ConflictError), store.transaction() as tx:
            tx.save_event_result("e1", {"second": True})
        with store.transaction() as tx:
            assert tx.event_result("e1") == {"first": True}
            at = datetime(2026, 3, 2, tzinfo=UTC)
            timer = Timer(key="t", kind="k", due_at=at, created_at=at)
            assert tx.plan_timer(timer)
            assert not tx.plan_timer(timer)
    finally:
        store.close()
