"""Events handled per second by the engine on the memory, SQLite and PostgreSQL stores.

Run: python benchmarks/bench_engine.py [--events 2000] [--postgres URL]

A 50-rule regulation (conditions on segment, region, territory and event
data; tasks, mailings, field changes and stage moves as actions) handles
the same stream of events on each store, in one run. Figures are events
per second and the ratio to the in-memory store, measured in the same run.
PostgreSQL is measured when --postgres (or CRMRULES_TEST_POSTGRES_URL) is
given; it runs in a fresh schema that is dropped afterwards.
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

import sqlalchemy as sa

from crmrules import Client, Deal, Engine, Event, SimulatedClock, Store
from crmrules.adapters import MemoryStore, migrate
from crmrules.adapters.sqlalchemy import SQLAlchemyStore

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


def run(regulation: Path, store: Store, events: int) -> float:
    """Events per second for ``events`` events after setting up 100 clients."""
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
    kinds = ["invoice.issued", "payment.received", "visit", "call.missed", "offer.viewed"]
    started = time.perf_counter()
    for index in range(events):
        engine.handle(
            Event(
                id=f"e{index}",
                type=kinds[index % len(kinds)],
                occurred_at=clock.now(),
                deal=f"d{index % 100}",
                data={"amount": str(index % 12_000), "number": f"INV-{index}"},
            )
        )
    return events / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--postgres", default=os.environ.get("CRMRULES_TEST_POSTGRES_URL"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        regulation = make_regulation(Path(folder))
        figures: dict[str, float] = {"memory": run(regulation, MemoryStore(), args.events)}
        sqlite = SQLAlchemyStore(f"sqlite:///{folder}/bench.sqlite3")
        figures["sqlite"] = run(regulation, sqlite, args.events)
        sqlite.close()
        if args.postgres:
            schema = f"crmrules_bench_{uuid.uuid4().hex[:8]}"
            admin = sa.create_engine(args.postgres)
            with admin.begin() as connection:
                connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
            try:
                migrate.upgrade(args.postgres, schema=schema)
                postgres = SQLAlchemyStore(args.postgres, schema=schema)
                figures["postgresql"] = run(regulation, postgres, args.events)
                postgres.close()
            finally:
                with admin.begin() as connection:
                    connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
                admin.dispose()
    baseline = figures["memory"]
    print(f"50 rules, {args.events} events, 100 clients and deals")
    for name, rate in figures.items():
        print(f"{name:<11} {rate:8.0f} events/s   {rate / baseline:5.2f}x memory")
    return 0


if __name__ == "__main__":
    sys.exit(main())
