"""Selecting clients by a condition: engine.select vs hand-written SQL vs load-and-filter.

Run: python benchmarks/bench_select.py [--clients 100000] [--postgres URL]

Bulk-loads the clients (their JSON rows and typed values, a few thousand
rows per INSERT, as the store writes them) into a fresh SQLite file and, with
``--postgres``, a fresh PostgreSQL schema; then counts the clients a
condition takes (about 1.5% of them) three ways, measured in the same run:

- ``engine.select`` (the compiled SQL, exact here: no leaf needs Python);
- the floor: the same condition hand-written as SQL over the same tables;
- loading every client and running the Python condition on it.

Prints the times and the ratios against the floor.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from crmrules.adapters import client_values, migrate
from crmrules.adapters.sqlalchemy import SQLAlchemyStore, _dump, make_engine
from crmrules.adapters.tables import tables_in
from crmrules.clock import SimulatedClock
from crmrules.engine import Engine
from crmrules.model import Client
from crmrules.rules.conditions import Facts
from crmrules.rules.regulation import load_regulation

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
REGULATION = """\
version: 1
calendar: {timezone: Europe/Moscow}
fields:
  client.segment: {type: enum, values: [A, B, C]}
  client.employees: {type: integer}
  client.revenue: {type: decimal}
territories:
  - {id: msk, when: {field: client.region, eq: Москва}}
rules:
  - id: call-a-segment
    on: {every: 1 day, at: "09:00"}
    if:
      all:
        - {field: client.segment, eq: A}
        - {territory: msk}
        - {field: client.last_contact_at, older_than: 30 days}
        - {field: client.employees, gte: 50}
    then:
      - create_task: {kind: call, title: "Позвонить {{ client.name }}"}
"""
REGIONS = ["Москва", "Санкт-Петербург", "Казань", "Новосибирск"]


def make_clients(n: int) -> list[Client]:
    rng = random.Random(11)
    return [
        Client(
            id=f"c{i:07}",
            name=f"ООО Клиент {i}",
            region=rng.choice(REGIONS),
            tags=frozenset(rng.sample(["vip", "new", "b2b", "retail"], 2)),
            territories=frozenset(),
            created_at=NOW - timedelta(days=rng.randint(0, 900)),
            last_contact_at=NOW - timedelta(days=rng.randint(0, 40)),
            fields={
                "segment": rng.choice("AAABBBBCCC"),
                "employees": rng.randint(1, 400),
                "revenue": rng.randint(0, 10**7),
            },
        )
        for i in range(n)
    ]


def load(url: str, schema: str | None, clients: list[Client]) -> None:
    """Insert the clients as the store writes them, a batch per statement."""
    t = tables_in(schema)
    engine = make_engine(url)
    with engine.begin() as connection:
        for start in range(0, len(clients), 2_000):
            batch = clients[start : start + 2_000]
            rows = [{"id": c.id, "data": _dump(c)} for c in batch]
            connection.execute(sa.insert(t.clients), rows)
            client_values.write(connection, t.client_values, batch, replace=False)
    engine.dispose()


def hand_written(url: str, schema: str | None) -> int:
    """The floor: the condition written by hand over the same tables."""
    prefix = f'"{schema}".' if schema else ""
    threshold = NOW - timedelta(days=30)
    sql = f"""
        SELECT count(*) FROM {prefix}crmrules_clients c
        WHERE EXISTS (SELECT 1 FROM {prefix}crmrules_client_values v WHERE v.client_id = c.id
                      AND v.key = 'segment' AND v.seq = 0 AND v.text_key = 'A' AND v.text = 'A')
          AND EXISTS (SELECT 1 FROM {prefix}crmrules_client_values v WHERE v.client_id = c.id
                      AND v.key = 'territories' AND v.seq > 0 AND v.text_key = 'msk'
                      AND v.text = 'msk')
          AND EXISTS (SELECT 1 FROM {prefix}crmrules_client_values v WHERE v.client_id = c.id
                      AND v.key = 'last_contact_at' AND v.seq = 0 AND v.moment < :threshold)
          AND EXISTS (SELECT 1 FROM {prefix}crmrules_client_values v WHERE v.client_id = c.id
                      AND v.key = 'employees' AND v.seq = 0 AND v.number >= 50)
    """
    engine = make_engine(url)
    moment = sa.bindparam("threshold", threshold, type_=tables_in(None).timers.c.due_at.type)
    with engine.connect() as connection:
        count = connection.execute(sa.text(sql).bindparams(moment)).scalar_one()
    engine.dispose()
    return int(count)


def timed(what: Callable[[], int]) -> tuple[float, int]:
    start = time.perf_counter()
    result = what()
    return time.perf_counter() - start, result


def run(name: str, url: str, schema: str | None, clients: list[Client], folder: Path) -> None:
    migrate.upgrade(url, schema=schema)
    started = time.perf_counter()
    load(url, schema, clients)
    loaded = time.perf_counter() - started
    path = folder / "regulation.yaml"
    path.write_text(REGULATION, encoding="utf-8")
    regulation = load_regulation(path)
    store = SQLAlchemyStore(url, schema=schema)
    engine = Engine(regulation, store, SimulatedClock(NOW), entry_points=False)
    rule = regulation.rules[0]

    def by_select() -> int:
        return sum(1 for _ in engine.select(rule="call-a-segment"))

    def by_loop() -> int:
        with store.transaction() as tx:
            return sum(
                1 for c in tx.iter_clients() if rule.condition(Facts({"client": c.record()}, NOW))
            )

    floor, expected = timed(lambda: hand_written(url, schema))
    selected, got = timed(by_select)
    looped, by_python = timed(by_loop)
    store.close()
    assert got == expected == by_python, (got, expected, by_python)
    print(f"{name}: {len(clients)} clients loaded in {loaded:.1f} s; {got} selected")
    print(f"  hand-written SQL (floor) {floor:8.2f} s   1.00x")
    print(f"  engine.select            {selected:8.2f} s   {selected / floor:5.2f}x floor")
    print(f"  load and filter          {looped:8.2f} s   {looped / floor:5.2f}x floor")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=100_000)
    parser.add_argument("--postgres", default=os.environ.get("CRMRULES_TEST_POSTGRES_URL"))
    args = parser.parse_args()
    clients = make_clients(args.clients)
    # The territory is what the store would compute on write: region Москва.
    clients = [
        c.model_copy(update={"territories": frozenset({"msk"})}) if c.region == "Москва" else c
        for c in clients
    ]
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        run("sqlite", f"sqlite:///{folder / 'bench.sqlite3'}", None, clients, folder)
        if args.postgres:
            schema = f"bench_{uuid.uuid4().hex[:8]}"
            try:
                run("postgresql", args.postgres, schema, clients, folder)
            finally:
                engine = make_engine(args.postgres)
                with engine.begin() as connection:
                    connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
                engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
