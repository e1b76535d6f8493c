"""Events handled per second by the engine on the memory, SQLite and PostgreSQL stores.

Run: python benchmarks/bench_engine.py [--events 2000] [--postgres URL]

A 50-rule regulation (conditions on segment, region, territory and event
data; tasks, mailings, field changes and stage moves as actions) handles
the same stream of events on each store, in one run. Figures are events
per second and the ratio to the in-memory store, measured in the same run.
PostgreSQL is measured when --postgres (or CRMRULES_TEST_POSTGRES_URL) is
given; it runs in a fresh schema that is dropped afterwards.

The storage floor: while the engine runs on a SQL store (a run of its
own: the engine is timed in another, with nothing listening to its
statements), every INSERT, UPDATE and DELETE it sends that changes a row
is recorded, event by event
(one that changes nothing, an UPDATE of a row not there yet or an INSERT
that met its key, is counted apart and not replayed: the floor writes the
rows, not the engine's attempts). Then a second
database, set up with the same clients and deals, receives exactly those
statements, one bare SQLAlchemy Core transaction per event
(``Connection.exec_driver_sql``, no reads, nothing computed, a run of the
same statement sent as one executemany): the rows one event writes (its
idempotency record, its effects, its audit) at the least cost this
database allows. Printed: statements per event, the floor's
events per second and the engine's share of it.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from crmrules import Client, Deal, Engine, Event, SimulatedClock, Store
from crmrules.adapters import MemoryStore, migrate
from crmrules.adapters.sqlalchemy import SQLAlchemyStore
from crmrules.batch import CHUNK

HEADER = """\
version: 1
calendar: {timezone: Europe/Moscow, country: RU, working_hours: "09:00-18:00"}
fields:
  client.segment: {type: enum, values: [A, B, C]}
  client.score: {type: integer}
  event.amount: {type: decimal}
  event.number: {type: string}
pipelines:
  - id: sales
    stages: [{id: new}, {id: offer}, {id: invoice}, {id: won, final: true},
             {id: lost, final: true}]
managers:
  - {id: ivanov, email: ivanov@example.ru}
  - {id: petrova, email: petrova@example.ru}
territories:
  - {id: msk, when: {field: client.region, eq: Москва}, managers: [ivanov, petrova]}
templates:
  reminder: {subject: "Счёт {{ event.number }}", text: "Здравствуйте, {{ client.name }}!"}
rules:
"""

RULE = """\
  - id: rule-{n}
    on: {event}
    priority: {n}
    if:
      all:
        - {{field: client.segment, in: [{segments}]}}
        - {{field: event.amount, gte: {threshold}}}
        - any: [{{territory: msk}}, {{field: client.score, gt: {n}}}]
    then:
{actions}
"""

ACTIONS = [
    '      - create_task: {{title: "Звонок по счёту {{{{ event.number }}}} ({n})", '
    "due: 2 business days, assignee: responsible}}",
    "      - send_mailing: {{template: reminder}}",
    '      - set_field: {{field: client.score, value: "{n}"}}',
    "      - move_stage: next",
]


def make_regulation(folder: Path) -> Path:
    events = ["invoice.issued", "payment.received", "visit", "call.missed", "offer.viewed"]
    rules = []
    for n in range(50):
        segments = ", ".join(["A", "B", "C"][: 1 + n % 3])
        actions = "\n".join(a.format(n=n) for a in ACTIONS[: 1 + n % 4])
        rules.append(
            RULE.format(
                n=n,
                event=events[n % len(events)],
                segments=segments,
                threshold=(n % 10) * 1000,
                actions=actions,
            )
        )
    path = folder / "bench.yaml"
    path.write_text(HEADER + "".join(rules), encoding="utf-8")
    return path


#: the statements one event sent that write: (SQL as the driver got it, parameters, executemany)
Writes = list[tuple[str, Any, bool]]


class Recorder:
    """Counts the statements a SQL store sends and keeps those that write, event by event."""

    def __init__(self, store: SQLAlchemyStore) -> None:
        assert store.engine is not None
        self.statements = 0
        self.events: list[Writes] = []
        self.on = False
        #: writes that changed no row (an UPDATE of nothing, an INSERT that met its key)
        self.idle = 0
        #: rows written: an INSERT's rows (a multi-row INSERT counts each), else a
        #: statement's parameter sets
        self.rows = 0
        sa.event.listen(store.engine, "after_cursor_execute", self.seen)

    def seen(
        self, conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        if not self.on:
            return
        self.statements += 1
        if statement.lstrip()[:6].upper() in ("INSERT", "UPDATE", "DELETE"):
            if cursor.rowcount == 0:  # the floor writes the rows, not the engine's attempts
                self.idle += 1
                return
            inserted = statement.lstrip()[:6].upper() == "INSERT" and cursor.rowcount > 0
            self.rows += cursor.rowcount if inserted else len(params) if many else 1
            self.events[-1].append((statement, params, many))

    def next_event(self) -> None:
        self.on = True
        self.events.append([])


def setup(regulation: Path, store: Store) -> tuple[Engine, SimulatedClock]:
    """An engine on ``store`` with the benchmark's 100 clients and deals."""
    clock = SimulatedClock(datetime(2026, 3, 2, 7, tzinfo=UTC))
    engine = Engine.from_path(regulation, store=store, clock=clock, entry_points=False)
    for index in range(100):
        engine.create_client(
            Client(
                id=f"c{index}",
                name=f"ООО Клиент {index}",
                email=f"c{index}@example.ru",
                region="Москва" if index % 2 else "Казань",
                responsible="ivanov",
                fields={"segment": "ABC"[index % 3], "score": index},
            )
        )
        engine.create_deal(Deal(id=f"d{index}", client=f"c{index}", pipeline="sales", stage="new"))
    return engine, clock


def stream(events: int, clock: SimulatedClock) -> list[Event]:
    kinds = ["invoice.issued", "payment.received", "visit", "call.missed", "offer.viewed"]
    return [
        Event(
            id=f"e{index}",
            type=kinds[index % len(kinds)],
            occurred_at=clock.now(),
            deal=f"d{index % 100}",
            data={"amount": str(index % 12_000), "number": f"INV-{index}"},
        )
        for index in range(events)
    ]


def run(regulation: Path, store: Store, events: int, recorder: Recorder | None = None) -> float:
    """Events per second for ``events`` events after setting up 100 clients."""
    engine, clock = setup(regulation, store)
    batch = stream(events, clock)
    started = time.perf_counter()
    for event in batch:
        if recorder is not None:
            recorder.next_event()
        engine.handle(event)
    return events / (time.perf_counter() - started)


def run_many(regulation: Path, store: Store, events: int) -> float:
    """Events per second for the same events through ``handle_many`` (CHUNK a transaction)."""
    engine, clock = setup(regulation, store)
    batch = stream(events, clock)
    started = time.perf_counter()
    handled = engine.handle_many(batch, chunk=CHUNK)
    elapsed = time.perf_counter() - started
    assert all(not isinstance(h, Exception) for h in handled)
    return events / elapsed


def batched(event: Writes) -> list[tuple[str, list[Any]]]:
    """The event's writes with each run of the same statement as one executemany."""
    out: list[tuple[str, list[Any]]] = []
    for sql, params, many in event:
        rows = list(params) if many else [params]
        if out and out[-1][0] == sql:
            out[-1][1].extend(rows)
        else:
            out.append((sql, rows))
    return out


def floor(regulation: Path, store: SQLAlchemyStore, writes: list[Writes], chunk: int = 1) -> float:
    """Events per second writing each event's rows in bare Core, ``chunk`` events a transaction."""
    setup(regulation, store)
    engine = store.engine
    assert engine is not None
    prepared = [batched(event) for event in writes]
    started = time.perf_counter()
    for first in range(0, len(prepared), chunk):
        with engine.begin() as connection:
            for event in prepared[first : first + chunk]:
                for sql, rows in event:
                    connection.exec_driver_sql(sql, rows if len(rows) > 1 else rows[0])
    return len(prepared) / (time.perf_counter() - started)


def clear(url: str, schema: str | None) -> None:
    """Empty the crmrules tables, for the next measurement on the same database."""
    engine = sa.create_engine(url)
    tables = [t for t in reversed(migrate_tables(schema))]
    with engine.begin() as connection:
        for table in tables:
            connection.execute(sa.delete(table))
    engine.dispose()


def migrate_tables(schema: str | None) -> list[sa.Table]:
    from crmrules.adapters.sqlalchemy import metadata

    tables = metadata.sorted_tables
    if schema is None:
        return list(tables)
    copy = sa.MetaData()
    return [table.to_metadata(copy, schema=schema) for table in tables]


def measure_sql(
    regulation: Path,
    url: str,
    floor_url: str,
    events: int,
    schemas: tuple[str, str] | None = None,
) -> dict[str, float]:
    """The engine and its floor on one database (PostgreSQL: the engine's and floor's schemas)."""
    store = SQLAlchemyStore(url, schema=schemas[0] if schemas else None)
    recorder = Recorder(store)
    run(regulation, store, events, recorder)
    store.close()
    clear(url, schemas[0] if schemas else None)
    store = SQLAlchemyStore(url, schema=schemas[0] if schemas else None)
    rate = run(regulation, store, events)  # timed without the recorder listening
    store.close()
    writes = recorder.events
    if schemas:
        old, new = f"{schemas[0]}.", f"{schemas[1]}."
        writes = [[(sql.replace(old, new), p, m) for sql, p, m in event] for event in writes]
    target = SQLAlchemyStore(floor_url, schema=schemas[1] if schemas else None)
    base = floor(regulation, target, writes)
    target.close()
    clear(url, schemas[0] if schemas else None)
    store = SQLAlchemyStore(url, schema=schemas[0] if schemas else None)
    many = run_many(regulation, store, events)
    store.close()
    clear(floor_url, schemas[1] if schemas else None)
    target = SQLAlchemyStore(floor_url, schema=schemas[1] if schemas else None)
    many_floor = floor(regulation, target, writes, CHUNK)
    target.close()
    return {
        "rate": rate,
        "floor": base,
        "many": many,
        "many_floor": many_floor,
        "statements": recorder.statements / events,
        "rows": recorder.rows / events,
        "writes": sum(len(event) for event in writes) / events,
        "idle": recorder.idle / events,
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--postgres", default=os.environ.get("CRMRULES_TEST_POSTGRES_URL"))
    args = parser.parse_args()
    sql: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        regulation = make_regulation(Path(folder))
        memory = run(regulation, MemoryStore(), args.events)
        sql["sqlite"] = measure_sql(
            regulation,
            f"sqlite:///{folder}/bench.sqlite3",
            f"sqlite:///{folder}/floor.sqlite3",
            args.events,
        )
        if args.postgres:
            schemas = (
                f"crmrules_bench_{uuid.uuid4().hex[:8]}",
                f"crmrules_floor_{uuid.uuid4().hex[:8]}",
            )
            admin = sa.create_engine(args.postgres)
            try:
                for schema in schemas:
                    with admin.begin() as connection:
                        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
                    migrate.upgrade(args.postgres, schema=schema)
                sql["postgresql"] = measure_sql(
                    regulation, args.postgres, args.postgres, args.events, schemas
                )
            finally:
                for schema in schemas:
                    with admin.begin() as connection:
                        connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
                admin.dispose()
    print(f"50 rules (10 considered per event), {args.events} events, 100 clients and deals")
    print(f"memory      {memory:8.0f} events/s   1.00x memory")
    for name, figures in sql.items():
        rate = figures["rate"]
        print(f"{name:<11} {rate:8.0f} events/s   {rate / memory:5.2f}x memory")
    for name, figures in sql.items():
        print(
            f"{name} handle_many {figures['many']:6.0f} events/s ({CHUNK} a transaction); "
            f"its floor (the same rows, {CHUNK} events a bare transaction) "
            f"{figures['many_floor']:6.0f} events/s: {figures['many'] / figures['many_floor']:.2f}x"
        )
    for name, figures in sql.items():
        print(
            f"{name} floor {figures['floor']:6.0f} events/s (the same {figures['rows']:.1f} rows "
            f"an event, bare Core); engine: {figures['statements']:.1f} statements an event "
            f"({figures['writes']:.1f} writing, {figures['idle']:.2f} writing nothing), "
            f"{figures['rate'] / figures['floor']:.2f}x the floor"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
