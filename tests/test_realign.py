"""Realignment: every client's territories and segments recomputed, once, even across a kill."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from crmrules.adapters.memory import MemoryStore
from crmrules.adapters.sqlalchemy import SQLAlchemyStore, metadata
from crmrules.clock import SimulatedClock
from crmrules.engine import Engine
from crmrules.model import Client, MembershipSource, TerritoryMembership
from crmrules.realign import realign_chunk
from crmrules.rules.regulation import load_regulation
from crmrules.store import Store
from databases import open_database

ROOT = Path(__file__).parent.parent
MSK = ZoneInfo("Europe/Moscow")
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=MSK)
REGULATION = """\
version: 1
calendar: {timezone: Europe/Moscow}
fields:
  client.segment: {type: enum, values: [A, B, C]}
  client.employees: {type: integer}
  event.territory: {type: string}
territories:
  - {id: msk, when: {field: client.region, eq: Москва}}
  - {id: msk-key, parent: msk, when: {field: client.segment, eq: A}}
  - {id: spb, when: {field: client.region, eq: Санкт-Петербург}}
segments:
  - {id: big, when: {field: client.employees, gte: 250}}
rules:
  - id: entered
    on: territory.entered
    then: [{create_task: {kind: call, title: "Вход в {{ event.territory }}"}}]
  - id: left
    on: territory.left
    then: [{create_task: {kind: call, title: "Выход из {{ event.territory }}"}}]
"""
REGIONS = ["Москва", "Санкт-Петербург", "Казань", "Москва"]


def stale_clients(n: int) -> list[Client]:
    """Clients stored before the territories existed: none of them has any."""
    return [
        Client(
            id=f"c{i:03}",
            region=REGIONS[i % 4],
            territories=frozenset({"spb"}) if i % 7 == 0 else frozenset(),
            fields={"segment": "ABC"[i % 3], "employees": i * 10},
        )
        for i in range(n)
    ]


def expected_territories(client: Client) -> frozenset[str]:
    found = set()
    if client.region == "Москва":
        found.add("msk")
        if client.fields["segment"] == "A":
            found.add("msk-key")
    if client.region == "Санкт-Петербург":
        found.add("spb")
    return frozenset(found)


def fill(store: Store, clients: list[Client]) -> None:
    with store.transaction() as tx:
        for client in clients:
            tx.put_client(client)
        # A manual removal the realignment must honour.
        removal = TerritoryMembership(
            client="c003", territory="msk", source=MembershipSource.MANUAL_REMOVE, since=NOW
        )
        tx.set_memberships("c003", [removal])


def engine_on(store: Store, tmp_path: Path) -> Engine:
    path = tmp_path / "regulation.yaml"
    path.write_text(REGULATION, encoding="utf-8")
    return Engine(load_regulation(path), store, SimulatedClock(NOW), entry_points=False)


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    with (
        open_database(request.param, tmp_path) as db,
        SQLAlchemyStore(db.url, schema=db.schema) as opened,
    ):
        yield opened


def raised(engine: Engine) -> Counter[str]:
    """How often each territory event was handled, by "<type>:<client>:<territory>"."""
    with engine.store.transaction() as tx:
        entries = tx.audit_log()
    return Counter(
        e.event_id.rsplit("/", 1)[1]
        for e in entries
        if e.rule in ("entered", "left") and e.kind in ("fired", "held")
    )


def check_aligned(engine: Engine, clients: list[Client]) -> None:
    """Each client in the territories its fields give, and each move's event raised once."""
    events = raised(engine)
    for client in clients:
        stored = engine.get_client(client.id)
        assert stored is not None
        want = expected_territories(client) - ({"msk", "msk-key"} if client.id == "c003" else set())
        assert stored.territories == want, client.id
        assert stored.segments == ({"big"} if client.fields["employees"] >= 250 else set())
        for territory in want - client.territories:
            assert events[f"territory.entered:{client.id}:{territory}"] == 1, client.id
        for territory in client.territories - want:
            assert events[f"territory.left:{client.id}:{territory}"] == 1, client.id
    assert sum(events.values()) == sum(
        len(expected_territories(c) ^ c.territories) - (2 if c.id == "c003" else 0) for c in clients
    )


def test_realign_recomputes_every_client_once(store: Store, tmp_path: Path) -> None:
    clients = stale_clients(60)
    fill(store, clients)
    engine = engine_on(store, tmp_path)
    dry = engine.realign(dry_run=True)
    assert engine.tasks() == []
    report = engine.realign()
    assert dry.to_dict() | {"dry_run": False} == report.to_dict()
    assert report.clients == 60 and report.changed > 0
    assert report.territories["msk"].entered == 30 - 1  # c003 is kept out by hand
    assert report.segments["big"].entered == 35
    check_aligned(engine, clients)
    again = engine.realign()
    assert again.changed == 0 and again.territories == {} and again.segments == {}
    check_aligned(engine, clients)


def _dump(url: str, schema: str | None) -> list[object]:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    rows: list[object] = []
    with engine.connect() as connection:
        for table in metadata.sorted_tables:
            name = f'"{schema}".{table.name}' if schema else table.name
            query = f"SELECT * FROM {name} ORDER BY 1"
            rows.append([tuple(map(str, r)) for r in connection.exec_driver_sql(query)])
    engine.dispose()
    return rows


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_dry_run_changes_nothing(kind: str, tmp_path: Path) -> None:
    with open_database(kind, tmp_path) as db:
        with SQLAlchemyStore(db.url, schema=db.schema) as store:
            fill(store, stale_clients(40))
        file = tmp_path / "crm.sqlite3"

        def state() -> object:
            if kind == "sqlite":
                return hashlib.sha256(file.read_bytes()).hexdigest()
            return _dump(db.url, db.schema)

        before = state()
        with SQLAlchemyStore(db.url, schema=db.schema) as store:
            report = engine_on(store, tmp_path).realign(dry_run=True)
        assert report.changed > 0
        assert state() == before


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_killed_realignment_started_again_raises_each_event_once(
    kind: str, tmp_path: Path
) -> None:
    """A real process killed (SIGKILL) mid-run, then a second run: each event exactly once."""
    with open_database(kind, tmp_path) as db:
        clients = stale_clients(300)
        with SQLAlchemyStore(db.url, schema=db.schema) as store:
            fill(store, clients)
        regulation = tmp_path / "regulation.yaml"
        regulation.write_text(REGULATION, encoding="utf-8")
        paths = os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")])
        env = {**os.environ, "PYTHONPATH": paths}
        worker = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "tests" / "realign_worker.py"),
                str(regulation),
                db.search_path_url,
            ],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert worker.stdout is not None
        for _ in range(3):  # three chunks committed, then a kill in the middle of the run
            assert worker.stdout.readline().strip() == "10"
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
        worker.stdout.close()
        with SQLAlchemyStore(db.url, schema=db.schema) as store:
            engine = engine_on(store, tmp_path)
            done = raised(engine)
            assert 0 < sum(done.values()) < 300
            report = engine.realign()
            assert report.changed > 0
            check_aligned(engine, clients)


def test_the_realign_command_reports_per_territory(tmp_path: Path) -> None:
    with open_database("sqlite", tmp_path) as db:
        with SQLAlchemyStore(db.url) as store:
            fill(store, stale_clients(20))
        regulation = tmp_path / "regulation.yaml"
        regulation.write_text(REGULATION, encoding="utf-8")
        command = [sys.executable, "-m", "crmrules", "realign", str(regulation), "--store", db.url]
        dry = subprocess.run([*command, "--dry-run"], capture_output=True, text=True, check=False)
        assert dry.returncode == 0, dry.stderr
        lines = dry.stdout.splitlines()
        assert "territory msk: +9 -0 (e.g. c000, c004, c007, c008, c011)" in lines
        assert lines[-1].startswith("dry run: 20 clients, would change ")
        applied = subprocess.run([*command, "--json"], capture_output=True, text=True, check=False)
        data = json.loads(applied.stdout)
        assert data["dry_run"] is False and data["territories"]["msk"]["entered"] == 9
        again = subprocess.run(command, capture_output=True, text=True, check=False)
        assert again.stdout.splitlines() == ["20 clients, changed 0 (0 entries and exits)"]


def test_a_chunk_run_again_reports_the_moves_its_first_run_made(tmp_path: Path) -> None:
    """A chunk redelivered after its worker died (committed, report lost) reports the same moves."""
    with SQLAlchemyStore(f"sqlite:///{tmp_path / 'crm.sqlite3'}") as store:
        clients = stale_clients(30)
        fill(store, clients)
        engine = engine_on(store, tmp_path)
        ids = sorted(c.id for c in clients)
        first = realign_chunk(engine, "run1", ids)
        again = realign_chunk(engine, "run1", ids)
        assert {k: vars(v) for k, v in again.territories.items()} == {
            k: vars(v) for k, v in first.territories.items()
        }
        moved = {c for m in first.territories.values() for c in m.entering + m.leaving}
        assert again.changed >= len(moved) > 0
