"""The SQL store itself: round trips, transactions in a host's session, errors a person reads.

SQLite always runs (a file in tmp_path). PostgreSQL runs when
CRMRULES_TEST_POSTGRES_URL is set, each test in a fresh schema that the
fixture creates and drops. The behaviour every store shares is in
test_store_contract.py; this file covers what only the SQL store has.
"""

from __future__ import annotations

import math
import os
import socket
import sqlite3
import threading
import time as clock
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.orm import Session

from crmrules import Client, Deal, Engine, Event, SimulatedClock
from crmrules.adapters import migrate
from crmrules.adapters.sqlalchemy import (
    VERSION_TABLE,
    SQLAlchemyStore,
    default_store,
    make_engine,
    metadata,
)
from crmrules.errors import SchemaError, StoreError
from crmrules.model import (
    Contact,
    ContactRole,
    Interaction,
    Mailing,
    Manager,
    MembershipSource,
    Task,
    TaskStatus,
    TerritoryMembership,
)
from crmrules.store import AuditEntry, ConflictError, OutboxMessage, Timer, TimerStatus

POSTGRES = os.environ.get("CRMRULES_TEST_POSTGRES_URL")
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "client-service"
MSK = ZoneInfo("Europe/Moscow")
T0 = datetime(2026, 3, 2, 10, 15, 30, 123456, tzinfo=MSK)
PASSWORD = "s3cret-pw"


@dataclass(frozen=True)
class Database:
    """A migrated database: its URL and the schema holding the crmrules tables."""

    url: str
    schema: str | None

    def table(self, name: str) -> str:
        return name if self.schema is None else f'"{self.schema}".{name}'


def _admin(url: str) -> sa.Engine:
    """A plain engine for looking from outside: it sees only what was committed."""
    return sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'crm.sqlite3'}"
        migrate.upgrade(url)
        yield Database(url, None)
        return
    if not POSTGRES:
        pytest.skip(
            "PostgreSQL tests need CRMRULES_TEST_POSTGRES_URL (e.g. postgresql+psycopg://…)"
        )
    schema = f"crmrules_test_{uuid.uuid4().hex[:8]}"
    admin = _admin(POSTGRES)
    try:
        migrate.upgrade(POSTGRES, schema=schema)  # creates the schema too
        yield Database(POSTGRES, schema)
    finally:
        with admin.begin() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture
def store(database: Database) -> Iterator[SQLAlchemyStore]:
    opened = SQLAlchemyStore(database.url, schema=database.schema)
    try:
        yield opened
    finally:
        opened.close()


def committed_count(database: Database, table: str) -> int:
    """Rows of ``table`` another connection sees, i.e. what has been committed."""
    admin = _admin(database.url)
    try:
        with admin.connect() as connection:
            count = connection.exec_driver_sql(f"SELECT count(*) FROM {database.table(table)}")
            return int(count.scalar_one())
    finally:
        admin.dispose()


def one_paragraph(error: BaseException) -> str:
    text = str(error)
    assert "\n" not in text, text
    assert PASSWORD not in text, text
    return text


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def with_password(url: str) -> str:
    """``url`` with a password, to check it is never shown (trust auth ignores it)."""
    parsed = sa.make_url(url)
    if parsed.password is None:
        parsed = parsed.set(password=PASSWORD)
    return parsed.render_as_string(hide_password=False)


# -- records


def romashka() -> Client:
    return Client(
        id="c-romashka",
        name="ООО Ромашка",
        email="info@romashka.ru",
        region="Москва",
        tags=frozenset({"vip", "опт"}),
        territories=frozenset({"msk"}),
        responsible="m-ivanova",
        created_at=T0,
        last_contact_at=T0.astimezone(UTC),
        fields={
            "limit": Decimal("250000.10"),
            "big": Decimal("1E+3"),
            "signed": datetime(2025, 12, 30, 17, 45, 1, 500, tzinfo=MSK),
            "naive": datetime(2025, 12, 30, 17, 45),
            "birthday": date(1990, 5, 17),
            "opens": time(9, 30),
            "grace": timedelta(days=2, seconds=5, microseconds=7),
            "segments": frozenset({"A", "B"}),
            "a set": {1, 2},
            "pair": (1, "two"),
            "ratio": 0.1,
            "infinite": math.inf,
            "employees": 42,
            "partner": True,
            "nothing": None,
            "nested": {"list": [Decimal("1.5"), {"when": T0}]},
            "looks like a tag": {"$decimal": "not a decimal"},
            "int keys": {1: "one", 2: "two"},
        },
    )


def every_record() -> dict[str, Any]:
    return {
        "client": romashka(),
        "deal": Deal(
            id="d-1",
            client="c-romashka",
            pipeline="works",
            stage="offer",
            stage_entered_at=T0,
            amount=Decimal("1500000.50"),
            created_at=T0,
            fields={"discount": Decimal("7.25")},
        ),
        "manager": Manager(
            id="m-ivanova", name="Мария", skills=frozenset({"b2b"}), capacity=5, active=False
        ),
        "contact": Contact(
            id="p-1",
            name="Алексей",
            roles=[
                ContactRole(client="c-romashka", role="director", primary=True),
                ContactRole(client="c-lyutik", role="buyer"),
            ],
        ),
        "interaction": Interaction(
            id="i-1", kind="call", client="c-romashka", occurred_at=T0, note="Перезвонить"
        ),
        "task": Task(
            id="t-1",
            kind="call",
            title="Позвонить",
            due=T0 + timedelta(days=1),
            assignee="m-ivanova",
            priority="high",
            client="c-romashka",
            deal="d-1",
            rule="follow-up",
            idempotency_key="follow-up:d-1",
            created_at=T0,
        ),
        "mailing": Mailing(
            id="ml-1",
            template="offer",
            to="info@romashka.ru",
            subject="КП",
            client="c-romashka",
            idempotency_key="offer:d-1",
            created_at=T0,
        ),
        "message": OutboxMessage(
            key="msg-1",
            channel="email",
            to="info@romashka.ru",
            data={"amount": Decimal("10.00"), "at": T0},
            mailing="ml-1",
            next_attempt_at=T0,
            created_at=T0,
        ),
        "membership": TerritoryMembership(
            client="c-romashka", territory="msk", source=MembershipSource.MANUAL_ADD, since=T0
        ),
        "audit": AuditEntry(
            at=T0,
            event_id="ev-1",
            event_type="client.created",
            kind="fired",
            rule="welcome",
            message="сработало",
            data={"amount": Decimal("1.10")},
        ),
    }


def test_every_record_type_round_trips_exactly_through_a_new_store(database: Database) -> None:
    records = every_record()
    result = {"effects": [{"amount": Decimal("3.30"), "when": T0}], "ok": True}
    first = SQLAlchemyStore(database.url, schema=database.schema)
    with first, first.transaction() as tx:
        tx.put_client(records["client"])
        tx.put_deal(records["deal"])
        tx.put_manager(records["manager"])
        tx.put_contact(records["contact"])
        tx.add_interaction(records["interaction"])
        assert tx.add_task(records["task"])
        assert tx.add_mailing(records["mailing"])
        assert tx.enqueue(records["message"])
        tx.set_memberships("c-romashka", [records["membership"]])
        tx.add_audit(records["audit"])
        tx.save_event_result("ev-1", result)
        tx.set_rotation("round-robin:msk", 7)
        tx.record_fired("follow-up", "client:c-romashka", T0)
    # A second store (a new engine, a new connection) reads only what the database kept.
    second = SQLAlchemyStore(database.url, schema=database.schema)
    with second, second.transaction() as tx:
        client = tx.get_client("c-romashka")
        assert client == records["client"]
        assert tx.get_deal("d-1") == records["deal"]
        assert tx.get_manager("m-ivanova") == records["manager"]
        assert tx.get_contact("p-1") == records["contact"]
        assert tx.contacts_of("c-lyutik") == [records["contact"]]
        assert tx.get_task("t-1") == records["task"]
        assert tx.get_mailing("ml-1") == records["mailing"]
        assert tx.get_message("msg-1") == records["message"]
        assert tx.memberships("c-romashka") == [records["membership"]]
        assert tx.audit_log() == [records["audit"]]
        assert tx.event_result("ev-1") == result
        assert tx.get_rotation("round-robin:msk") == 7
        fired = tx.last_fired("follow-up", "client:c-romashka")
    assert client is not None
    fields = client.fields
    expected = records["client"].fields
    for name, value in expected.items():
        if name == "infinite":
            assert fields[name] == math.inf
            continue
        assert fields[name] == value, name
        assert type(fields[name]) is type(value), name
    assert str(fields["big"]) == "1E+3"
    assert type(fields["nested"]["list"][0]) is Decimal
    assert fields["nested"]["list"][1]["when"] == T0
    # Moments keep their offset, not just their instant.
    assert fields["signed"].utcoffset() == timedelta(hours=3)
    assert fields["naive"].tzinfo is None
    assert client.created_at is not None and client.created_at.utcoffset() == timedelta(hours=3)
    assert client.last_contact_at is not None and client.last_contact_at.utcoffset() == timedelta()
    assert fired == T0 and fired.utcoffset() == timedelta(hours=3)
    assert type(client.tags) is frozenset


def test_idempotency_keys_refuse_a_second_task_mailing_and_message(
    store: SQLAlchemyStore,
) -> None:
    records = every_record()
    with store.transaction() as tx:
        assert tx.add_task(records["task"]) is True
        assert tx.add_mailing(records["mailing"]) is True
        assert tx.enqueue(records["message"]) is True
    twin_task = records["task"].model_copy(update={"id": "t-2", "title": "Дубликат"})
    twin_mailing = records["mailing"].model_copy(update={"id": "ml-2"})
    with store.transaction() as tx:
        assert tx.add_task(twin_task) is False
        assert tx.add_mailing(twin_mailing) is False
        assert tx.enqueue(records["message"].model_copy(update={"to": "x@y.z"})) is False
        assert tx.add_task(twin_task.model_copy(update={"idempotency_key": None})) is True
    with store.transaction() as tx:
        assert [t.id for t in tx.find_tasks()] == ["t-1", "t-2"]
        assert tx.get_task("t-2") == twin_task.model_copy(update={"idempotency_key": None})
        assert tx.get_mailing("ml-2") is None
        assert tx.get_message("msg-1") == records["message"]


def test_the_same_event_result_saved_twice_is_a_conflict(store: SQLAlchemyStore) -> None:
    # Two processes that handle one event both try to save its result: the loser's
    # transaction ends in ConflictError (which the engine retries), and nothing of it stays.
    with store.transaction() as tx:
        tx.save_event_result("ev-1", {"winner": True})
    with pytest.raises(ConflictError, match="retried"), store.transaction() as tx:
        tx.put_client(Client(id="c-loser"))
        tx.save_event_result("ev-1", {"winner": False})
    with store.transaction() as tx:
        assert tx.event_result("ev-1") == {"winner": True}
        assert tx.get_client("c-loser") is None


class Boom(Exception):
    """Raised inside a transaction by the tests."""


def test_an_exception_rolls_back_everything_and_nothing_reaches_the_database(
    database: Database, store: SQLAlchemyStore
) -> None:
    records = every_record()
    with pytest.raises(Boom), store.transaction() as tx:
        tx.put_client(records["client"])
        tx.put_contact(records["contact"])
        tx.add_task(records["task"])
        tx.enqueue(records["message"])
        tx.add_audit(records["audit"])
        tx.save_event_result("ev-1", {})
        assert tx.get_client("c-romashka") == records["client"]
        raise Boom
    for table in ("crmrules_clients", "crmrules_contacts", "crmrules_contact_clients"):
        assert committed_count(database, table) == 0
    for table in ("crmrules_tasks", "crmrules_outbox", "crmrules_audit", "crmrules_event_results"):
        assert committed_count(database, table) == 0
    with store.transaction() as tx:
        assert tx.add_task(records["task"]) is True  # the key is free again


# -- the host's own transaction


def host_engine(database: Database) -> sa.Engine:
    """The host's engine; on SQLite it needs make_engine's set-up for SAVEPOINTs to work."""
    return make_engine(database.url)


def orders_table(database: Database) -> sa.Table:
    return sa.Table(
        "host_orders",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        schema=database.schema,
    )


@pytest.mark.parametrize("outcome", ["commit", "rollback"])
def test_a_host_session_commits_or_rolls_back_its_row_and_crmrules_rows_together(
    database: Database, outcome: str
) -> None:
    engine = host_engine(database)
    orders = orders_table(database)
    orders.metadata.create_all(engine)
    try:
        with Session(engine) as session:
            store = SQLAlchemyStore(session, schema=database.schema)
            session.execute(sa.insert(orders).values(id=1))
            with store.transaction() as tx:
                tx.put_client(Client(id="c1", name="ООО Ромашка"))
                assert tx.add_task(Task(id="t1", kind="call", title="Позвонить", client="c1"))
            # The block has ended, but only the host commits.
            assert committed_count(database, "crmrules_clients") == 0
            if outcome == "commit":
                session.commit()
            else:
                session.rollback()
            store.close()
        expected = 1 if outcome == "commit" else 0
        assert committed_count(database, "host_orders") == expected
        assert committed_count(database, "crmrules_clients") == expected
        assert committed_count(database, "crmrules_tasks") == expected
    finally:
        engine.dispose()


def test_a_failed_crmrules_transaction_rolls_back_to_its_savepoint_only(
    database: Database,
) -> None:
    engine = host_engine(database)
    orders = orders_table(database)
    orders.metadata.create_all(engine)
    try:
        with engine.connect() as connection:
            connection.begin()
            store = SQLAlchemyStore(connection, schema=database.schema)
            connection.execute(sa.insert(orders).values(id=1))
            with store.transaction() as tx:
                tx.put_client(Client(id="kept"))
            with pytest.raises(Boom), store.transaction() as tx:
                tx.put_client(Client(id="undone"))
                raise Boom
            with pytest.raises(ConflictError), store.transaction() as tx:
                tx.save_event_result("ev-1", {})
                tx.save_event_result("ev-1", {})
            # The host's transaction is still usable after both rollbacks.
            connection.execute(sa.insert(orders).values(id=2))
            connection.commit()
            store.close()
        assert committed_count(database, "host_orders") == 2
        reader = SQLAlchemyStore(database.url, schema=database.schema)
        with reader, reader.transaction() as tx:
            assert [c.id for c in tx.iter_clients()] == ["kept"]
            assert tx.event_result("ev-1") is None
    finally:
        engine.dispose()


def test_close_disposes_of_the_stores_own_engine_but_never_of_a_hosts(
    database: Database,
) -> None:
    engine = host_engine(database)
    disposed: list[sa.Engine] = []
    sa.event.listen(engine, "engine_disposed", disposed.append)
    try:
        hosted = SQLAlchemyStore(engine, schema=database.schema)
        with hosted.transaction() as tx:
            tx.put_client(Client(id="c1"))
        hosted.close()
        assert disposed == []
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT 1").scalar_one() == 1
    finally:
        engine.dispose()

    owned = SQLAlchemyStore(database.url, schema=database.schema)
    assert owned.engine is not None
    own_disposed: list[sa.Engine] = []
    sa.event.listen(owned.engine, "engine_disposed", own_disposed.append)
    owned.close()
    assert own_disposed == [owned.engine]
    with pytest.raises(StoreError, match="closed"), owned.transaction():
        pass


# -- errors a person reads


def test_a_malformed_url_says_what_a_url_looks_like() -> None:
    with pytest.raises(StoreError) as raised:
        SQLAlchemyStore(f"localhost:{PASSWORD}@5432")
    text = one_paragraph(raised.value)
    assert "is not a database URL" in text
    assert "sqlite:///crmrules.sqlite3" in text
    assert "postgresql+psycopg://" in text


def test_an_unknown_driver_is_named() -> None:
    with pytest.raises(StoreError) as raised:
        SQLAlchemyStore(f"nosuchdb://admin:{PASSWORD}@localhost/crm")
    text = one_paragraph(raised.value)
    assert "no database driver called 'nosuchdb'" in text
    assert "nosuchdb://admin:***@localhost/crm" in text


def test_an_unreachable_server_says_so_without_the_password() -> None:
    port = free_port()
    with pytest.raises(StoreError) as raised:
        SQLAlchemyStore(f"postgresql+psycopg://postgres:{PASSWORD}@127.0.0.1:{port}/test")
    text = one_paragraph(raised.value)
    assert f"postgresql+psycopg://postgres:***@127.0.0.1:{port}/test" in text
    assert "the connection was refused" in text
    assert "Check that the server is running" in text


def test_a_sqlite_file_in_a_missing_folder_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder" / "crm.sqlite3"
    with pytest.raises(StoreError) as raised:
        SQLAlchemyStore(f"sqlite:///{missing}")
    text = one_paragraph(raised.value)
    assert str(missing) in text
    assert "Check that its folder exists" in text


def test_a_schema_for_sqlite_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError) as raised:
        SQLAlchemyStore(f"sqlite:///{tmp_path / 'crm.sqlite3'}", schema="crm")
    assert "A SQLite database has no schemas" in one_paragraph(raised.value)


def test_a_database_without_crmrules_tables_is_never_created_implicitly(tmp_path: Path) -> None:
    # A SQLite file the store did not open by URL (here: a host's engine) is not migrated.
    engine = make_engine(f"sqlite:///{tmp_path / 'host.sqlite3'}")
    try:
        with pytest.raises(SchemaError) as raised:
            SQLAlchemyStore(engine)
        text = one_paragraph(raised.value)
        assert "has no crmrules tables" in text
        assert text.endswith(f"Run: crmrules db upgrade sqlite:///{tmp_path / 'host.sqlite3'}")
        assert migrate.current(engine) is None
    finally:
        engine.dispose()


def test_a_postgresql_schema_without_tables_asks_for_db_upgrade() -> None:
    if not POSTGRES:
        pytest.skip("PostgreSQL tests need CRMRULES_TEST_POSTGRES_URL")
    url = with_password(POSTGRES)
    schema = f"crmrules_test_{uuid.uuid4().hex[:8]}"  # never created
    with pytest.raises(SchemaError) as raised:
        SQLAlchemyStore(url, schema=schema)
    text = one_paragraph(raised.value)
    shown = sa.make_url(url).render_as_string(hide_password=True)
    assert f"The database {shown} (schema {schema}) has no crmrules tables" in text
    assert f"Run: crmrules db upgrade {shown} --schema {schema}" in text
    assert "(with the real password in place of ***)" in text


def test_tables_at_an_older_revision_ask_for_db_upgrade(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pretend this crmrules has a newer head than the tables' revision (the current head).
    head = migrate.head()
    assert migrate.current(database.url, schema=database.schema) == head
    monkeypatch.setattr(migrate, "head", lambda: "0099_newer")
    url = with_password(database.url) if database.schema else database.url
    with pytest.raises(SchemaError) as raised:
        SQLAlchemyStore(url, schema=database.schema)
    text = one_paragraph(raised.value)
    shown = sa.make_url(url).render_as_string(hide_password=True)
    where = shown if database.schema is None else f"{shown} (schema {database.schema})"
    assert f"The crmrules tables in {where} are at revision {head} but this crmrules needs " in text
    assert "needs 0099_newer" in text
    assert f"Run: crmrules db upgrade {shown}" in text


def test_tables_of_a_newer_crmrules_ask_to_upgrade_the_package(database: Database) -> None:
    admin = _admin(database.url)
    try:
        with admin.begin() as connection:
            version = database.table(VERSION_TABLE)
            connection.exec_driver_sql(f"UPDATE {version} SET version_num = '0099'")
    finally:
        admin.dispose()
    with pytest.raises(SchemaError) as raised:
        SQLAlchemyStore(database.url, schema=database.schema)
    text = one_paragraph(raised.value)
    needs = f"are at revision 0099, which this crmrules does not know (it needs {migrate.head()})"
    assert needs in text
    assert "pip install --upgrade crmrules" in text


# -- the embedded SQLite default


def test_a_new_sqlite_file_is_created_and_migrated(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite3"
    url = f"sqlite:///{path}"
    assert migrate.current(url) is None
    assert not path.exists()  # looking does not create it
    with SQLAlchemyStore(url) as store, store.transaction() as tx:
        tx.put_client(Client(id="c1"))
    assert migrate.current(url) == migrate.head()


def test_an_existing_sqlite_file_without_crmrules_tables_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "app.sqlite3"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE app_users (id INTEGER PRIMARY KEY)")
    connection.close()
    with SQLAlchemyStore(f"sqlite:///{path}") as store, store.transaction() as tx:
        assert tx.get_client("c1") is None
    with sqlite3.connect(path) as connection:
        names = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    connection.close()
    assert {"app_users", "crmrules_clients", VERSION_TABLE} <= names


def test_default_store_uses_the_environment_or_a_file_in_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CRMRULES_DATABASE_URL", raising=False)
    default_store().close()
    assert (tmp_path / "crmrules.sqlite3").exists()
    monkeypatch.setenv("CRMRULES_DATABASE_URL", f"sqlite:///{tmp_path / 'other.sqlite3'}")
    default_store().close()
    assert (tmp_path / "other.sqlite3").exists()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    path = tmp_path / "crm.sqlite3"
    with SQLAlchemyStore(f"sqlite:///{path}") as store:
        assert store.engine is not None
        with store.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar_one() == 30000
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    connection.close()


def test_two_threads_write_through_one_sqlite_store_and_lose_nothing(tmp_path: Path) -> None:
    count = 40
    errors: list[BaseException] = []
    with SQLAlchemyStore(f"sqlite:///{tmp_path / 'crm.sqlite3'}") as store:

        def work(who: str) -> None:
            try:
                for n in range(count):
                    with store.transaction() as tx:
                        # read-modify-write: a lost update would show in the counter
                        turn = tx.get_rotation("shared")
                        tx.set_rotation("shared", turn + 1)
                        tx.add_task(Task(id=f"{who}-{n}", kind="call", title=f"{who} {n}"))
            except BaseException as error:  # reported by the main thread
                errors.append(error)

        threads = [threading.Thread(target=work, args=(who,)) for who in ("a", "b")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []
        with store.transaction() as tx:
            assert tx.get_rotation("shared") == 2 * count
            assert len(tx.find_tasks()) == 2 * count


# -- timers on PostgreSQL


def due_timer(key: str, due_at: datetime) -> Timer:
    return Timer(key=key, kind="rule", rule="follow-up", client="c1", due_at=due_at, created_at=T0)


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_two_workers_claiming_at_once_get_different_timers(store: SQLAlchemyStore) -> None:
    with store.transaction() as tx:
        for n in range(10):
            assert tx.plan_timer(due_timer(f"t-{n:02}", T0 + timedelta(minutes=n)))
    now = T0 + timedelta(hours=1)
    lease = now + timedelta(minutes=5)
    both_in = threading.Barrier(2, timeout=10)
    both_claimed = threading.Barrier(2, timeout=10)
    claimed: dict[str, list[str]] = {}
    errors: list[BaseException] = []

    def work(worker: str) -> None:
        try:
            with store.transaction() as tx:
                both_in.wait()
                claimed[worker] = [t.key for t in tx.claim_timers(now, 4, worker, lease)]
                # Hold the transaction (and its row locks) open until the other has claimed
                # too: without SKIP LOCKED the second claim would wait here for the first.
                both_claimed.wait()
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=work, args=(worker,)) for worker in ("w-1", "w-2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert len(claimed["w-1"]) == len(claimed["w-2"]) == 4
    assert set(claimed["w-1"]).isdisjoint(claimed["w-2"])
    # together they took the 8 earliest timers, each worker its own earliest first
    assert sorted(claimed["w-1"] + claimed["w-2"]) == [f"t-{n:02}" for n in range(8)]
    for worker in ("w-1", "w-2"):
        assert claimed[worker] == sorted(claimed[worker])
    with store.transaction() as tx:
        for worker, keys in claimed.items():
            for key in keys:
                got = tx.get_timer(key)
                assert got is not None
                assert (got.lease_owner, got.lease_until) == (worker, lease)
        pending = tx.find_timers(status=TimerStatus.PENDING)
        assert [t.key for t in pending if t.lease_owner is None] == ["t-08", "t-09"]


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_two_processes_planning_the_same_timer_both_succeed(store: SQLAlchemyStore) -> None:
    first_planned = threading.Event()
    planned: dict[str, bool] = {}
    errors: list[BaseException] = []

    def plan(who: str, wait: threading.Event | None) -> None:
        try:
            if wait is not None:
                assert wait.wait(10)
            with store.transaction() as tx:
                planned[who] = tx.plan_timer(due_timer("t-same", T0.replace(minute=0)))
                if wait is None:
                    first_planned.set()
                    clock.sleep(0.3)  # the other INSERT now waits for this one to commit
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    threads = [
        threading.Thread(target=plan, args=("first", None)),
        threading.Thread(target=plan, args=("second", first_planned)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert planned == {"first": True, "second": False}
    with store.transaction() as tx:
        assert [t.key for t in tx.find_timers()] == ["t-same"]


# -- migrations


def test_the_migrations_create_exactly_the_declared_tables(database: Database) -> None:
    target = metadata
    if database.schema is not None:
        target = sa.MetaData(naming_convention=metadata.naming_convention)
        for table in metadata.sorted_tables:
            table.to_metadata(target, schema=database.schema)
    options: dict[str, Any] = {
        "version_table": VERSION_TABLE,
        "version_table_schema": database.schema,
        "compare_type": True,
        "compare_server_default": True,
    }
    if database.schema is not None:
        options["include_schemas"] = True
        options["include_name"] = lambda name, kind, parent: (
            kind != "schema" or name == database.schema
        )
    engine = make_engine(database.url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts=options)
            assert compare_metadata(context, target) == []
    finally:
        engine.dispose()


def test_upgrade_twice_changes_nothing(database: Database) -> None:
    migrate.upgrade(database.url, schema=database.schema)
    assert migrate.current(database.url, schema=database.schema) == migrate.head()


# -- the engine on the SQL store


def test_the_engine_acts_once_per_event_on_the_sql_store(database: Database) -> None:
    clock = SimulatedClock(datetime(2026, 6, 11, 10, 0, tzinfo=MSK))

    def engine() -> Engine:
        store = SQLAlchemyStore(database.url, schema=database.schema)
        return Engine.from_path(EXAMPLE, store=store, clock=clock, entry_points=False)

    invoice = Event(
        id="invoice-117",
        type="invoice.issued",
        occurred_at=clock.now(),
        deal="romashka-1",
        data={"invoice_number": "СЧ-117"},
    )
    first = engine()
    first.create_client(
        Client(
            id="romashka",
            name="ООО Ромашка",
            email="info@romashka.example",
            region="Москва",
            fields={"segment": "A", "employees": 40},
        ),
        event_id="new-romashka",
    )
    first.create_deal(
        Deal(id="romashka-1", client="romashka", pipeline="works", stage="consultation"),
        event_id="new-deal",
    )
    result = first.handle(invoice)
    assert "invoice-followup" in result.fired
    assert first.handle(invoice).duplicate is True
    first.store.close()

    # A restarted process sees the same store: the event is still handled once.
    second = engine()
    assert second.handle(invoice).duplicate is True
    tasks = [t for t in second.tasks(client="romashka") if t.rule == "invoice-followup"]
    assert [t.title for t in tasks] == ["Уточнить оплату счёта СЧ-117"]
    assert tasks[0].status is TaskStatus.OPEN
    with second.store.transaction() as tx:
        assert len(tx.find_mailings(client="romashka")) == 1
    second.store.close()


def test_each_read_of_a_client_is_its_own_copy(store: SQLAlchemyStore) -> None:
    """A client is validated once per transaction; a reader's change to it is never shared."""
    with store.transaction() as tx:
        tx.put_client(Client(id="c1", name="Acme", fields={"notes": ["first"], "n": 1}))
    with store.transaction() as tx:
        first = tx.get_client("c1")
        assert first is not None
        first.fields["notes"].append("changed in place")
        first.fields["n"] = 2
        first.name = "Changed"
        again = tx.get_client("c1")
        assert again is not None and again is not first
        assert (again.name, again.fields) == ("Acme", {"notes": ["first"], "n": 1})
        tx.put_client(first)
        assert tx.get_client("c1") == first
        (loaded,) = tx.load_clients(["c1"])  # type: ignore[attr-defined]
        loaded.fields["notes"].clear()
        assert tx.get_client("c1") == first


def test_audit_lines_past_one_batch_are_all_written_in_order(database: Database) -> None:
    """PostgreSQL takes the lines as multi-row INSERTs of ``audit_rows.BATCH`` rows each."""
    from crmrules.adapters import audit_rows

    at = datetime(2026, 12, 3, 9, tzinfo=UTC)
    lines = [
        AuditEntry(
            at=at,
            event_id=f"e{n % 3}",
            event_type="visit",
            kind="effect",
            rule=None if n % 5 == 0 else f"r{n}",
            message=f"line {n}",
            data={"n": n, "amount": Decimal(n) / 4},
            client=None if n % 2 else "c1",
        )
        for n in range(2 * audit_rows.BATCH + 7)
    ]
    store = SQLAlchemyStore(database.url, schema=database.schema)
    with store.transaction() as tx:
        for line in lines[:5]:
            tx.add_audit(line)
    with store.transaction() as tx:
        for line in lines[5:]:
            tx.add_audit(line)
    with store.transaction() as tx:
        assert tx.audit_log() == lines
        assert tx.audit_log(event_id="e1") == [line for line in lines if line.event_id == "e1"]
        assert tx.audit_log(client="c1") == [line for line in lines if line.client == "c1"]
    store.close()
