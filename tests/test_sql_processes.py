"""Real processes against one SQL database: no lost update, no duplicate, no half-write.

PostgreSQL runs when CRMRULES_TEST_POSTGRES_URL is set (CI sets it); SQLite
always runs (one file, WAL, writers take turns).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

pytest.importorskip("crmrules.adapters.sqlalchemy")


import processes
from crmrules import Client, Engine
from crmrules.adapters import migrate
from crmrules.model import TaskStatus

POSTGRES = os.environ.get("CRMRULES_TEST_POSTGRES_URL")
SPAWN = multiprocessing.get_context("spawn")


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str | None]]:
    """A migrated database: (url, schema)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'shared.sqlite3'}"
        migrate.upgrade(url)
        yield url, None
        return
    if not POSTGRES:
        pytest.skip("set CRMRULES_TEST_POSTGRES_URL to run against PostgreSQL")
    schema = f"crmrules_proc_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(POSTGRES)
    with admin.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    migrate.upgrade(POSTGRES, schema=schema)
    try:
        yield POSTGRES, schema
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def regulation(tmp_path: Path) -> str:
    path = tmp_path / "regulation.yaml"
    path.write_text(processes.REGULATION, encoding="utf-8")
    return str(path)


def run_all(*targets: tuple[object, tuple[object, ...]], timeout: float = 120) -> None:
    children = [SPAWN.Process(target=target, args=args) for target, args in targets]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout)
        assert child.exitcode == 0, f"a child process failed (exit code {child.exitcode})"


def open_engine(regulation: str, url: str, schema: str | None) -> Engine:
    return processes.engine(regulation, url, schema)


def test_two_processes_on_one_client_lose_no_update_and_duplicate_nothing(
    database: tuple[str, str | None], regulation: str
) -> None:
    url, schema = database
    engine = open_engine(regulation, url, schema)
    engine.create_client(Client(id="c1", name="ООО Ромашка"))
    count = 40
    run_all(
        (processes.touch, (regulation, url, schema, "a", count)),
        (processes.touch, (regulation, url, schema, "b", count)),
    )
    client = engine.get_client("c1")
    assert client is not None
    # Each process's last write survives: neither overwrote the other's field.
    assert (client.fields["mark_a"], client.fields["mark_b"]) == (str(count), str(count))
    tasks = engine.tasks(client="c1", status=TaskStatus.OPEN)
    assert sorted(t.title for t in tasks) == sorted(
        f"{who} {n}" for who in "ab" for n in range(1, count + 1)
    )
    engine.store.close()


def test_round_robin_hands_out_each_turn_once_across_processes(
    database: tuple[str, str | None], regulation: str
) -> None:
    url, schema = database
    run_all(
        (processes.create_clients, (regulation, url, schema, "x", 30)),
        (processes.create_clients, (regulation, url, schema, "y", 30)),
    )
    engine = open_engine(regulation, url, schema)
    with engine.store.transaction() as tx:
        responsible = [c.responsible for c in tx.iter_clients()]
    assert len(responsible) == 60
    assert responsible.count("ivanov") == responsible.count("petrova") == 30
    engine.store.close()


def test_sigkill_in_the_middle_of_an_event_leaves_no_half_written_effects(
    database: tuple[str, str | None], regulation: str, tmp_path: Path
) -> None:
    url, schema = database
    engine = open_engine(regulation, url, schema)
    engine.create_client(Client(id="c1", name="ООО Ромашка"))
    marker = tmp_path / "marker"
    child = SPAWN.Process(target=processes.hang, args=(regulation, url, schema, str(marker)))
    child.start()
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline and child.is_alive():
        time.sleep(0.05)
    assert marker.exists(), "the child never reached the middle of the event"
    assert child.pid is not None
    os.kill(child.pid, signal.SIGKILL)
    child.join(30)
    assert child.exitcode == -signal.SIGKILL
    # The task the event had created before the kill was never committed.
    assert engine.tasks(client="c1") == []
    with engine.store.transaction() as tx:
        assert tx.event_result("crash-1") is None
        assert tx.audit_log(event_id="crash-1") == []
    engine.store.close()
