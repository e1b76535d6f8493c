"""A daily schedule over the whole client base, and engine start, against their floor.

Run: python benchmarks/bench_schedule.py [--clients 100000] [--rounds 3] [--postgres URL]

Bulk-loads the clients of benchmarks/bench_select.py (about 1.5% of them
satisfy the daily 09:00 rule "call the A-segment Moscow clients not called
for 30 days with 50+ employees", which creates a task) into a fresh SQLite
file and, with ``--postgres``, a fresh PostgreSQL schema. Then, in the same
run:

- engine start: a new Engine, the worker's store check and ``sync_timers()``
  with the regulation of the previous sync (what a worker does at every
  start), and the first sync of a regulation the store has not seen;
- the schedule's occurrence fired through ``engine.run_due`` (SQL picks the
  clients, a chunk per transaction, each client's task once), against the
  floor: the hand-written SQL that selects the same clients at the same
  moment plus one bulk INSERT of their tasks. Rounds are interleaved (each
  round is the next day's occurrence); medians, with the spread.

The machine is shared: compare the ratios, not the seconds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from bench_select import NOW, REGULATION, load, make_clients

from crmrules.adapters import migrate
from crmrules.adapters.sqlalchemy import SQLAlchemyStore, _dump, make_engine
from crmrules.adapters.tables import tables_in
from crmrules.clock import SimulatedClock
from crmrules.engine import Engine
from crmrules.model import Client, Task
from crmrules.rules.regulation import load_regulation
from crmrules.worker import check_store


def floor(url: str, schema: str | None, moment: datetime, label: str) -> int:
    """The bare SQL that selects the clients, and one bulk INSERT of their tasks."""
    prefix = f'"{schema}".' if schema else ""
    sql = f"""
        SELECT c.id FROM {prefix}crmrules_clients c
        WHERE EXISTS (SELECT 1 FROM {prefix}crmrules_client_values v WHERE v.client_id = c.id
                      AND v.key = 'segment' AND v.seq = 0 AND v.text_key = 'A' AND v.text = 'A')
          AND EXISTS (SELECT 1 FROM {prefix}crmrules_client_values v WHERE v.client_id = c.id
                      AND v.key = 'territories' AND v.seq > 0 AND v.text_key = 'msk'
                      AND v.text = 'msk')
          AND EXISTS (SELECT 1 FROM {prefix}crmrules_client_values v WHERE v.client_id = c.id
                      AND v.key = 'last_contact_at' AND v.seq = 0 AND v.moment < :threshold)
          AND EXISTS (SELECT 1 FROM {prefix}crmrules_client_values v WHERE v.client_id = c.id
                      AND v.key = 'employees' AND v.seq = 0 AND v.number >= 50)
        ORDER BY c.id
    """
    t = tables_in(schema)
    engine = make_engine(url)
    threshold = sa.bindparam("threshold", moment - timedelta(days=30), type_=t.timers.c.due_at.type)
    with engine.begin() as connection:
        ids = list(connection.execute(sa.text(sql).bindparams(threshold)).scalars())
        rows = []
        for client_id in ids:
            task = Task(
                id=f"floor-{label}-{client_id}",
                kind="call",
                title=f"Позвонить {client_id}",
                client=client_id,
                created_at=moment,
            )
            rows.append(
                {
                    "id": task.id,
                    "idempotency_key": task.id,
                    "client_id": client_id,
                    "status": task.status.value,
                    "created_at": moment,
                    "data": _dump(task),
                }
            )
        if rows:
            connection.execute(sa.insert(t.tasks), rows)
    engine.dispose()
    return len(ids)


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):8.2f} s (min {min(values):.2f}, max {max(values):.2f})"


def run(
    name: str, url: str, schema: str | None, clients: list[Client], folder: Path, rounds: int
) -> None:
    migrate.upgrade(url, schema=schema)
    started = time.perf_counter()
    load(url, schema, clients)
    print(f"{name}: {len(clients)} clients loaded in {time.perf_counter() - started:.1f} s")
    path = folder / "regulation.yaml"
    path.write_text(REGULATION, encoding="utf-8")
    regulation = load_regulation(path)
    clock = SimulatedClock(NOW)

    def start() -> tuple[float, Engine]:
        began = time.perf_counter()
        engine = Engine(regulation, SQLAlchemyStore(url, schema=schema), clock, entry_points=False)
        check_store(engine)  # what a worker does before it syncs
        engine.sync_timers()
        return time.perf_counter() - began, engine

    first, engine = start()
    engine.store.close()
    starts = []
    for _ in range(rounds):
        took, engine = start()
        starts.append(took)
        engine.store.close()
    print(f"  first sync of the regulation      {first:8.2f} s")
    print(f"  engine start (same regulation)    {spread(starts)}")

    _, engine = start()
    fired: list[float] = []
    floors: list[float] = []
    matched: list[int] = []
    due = NOW.replace(hour=6)  # 09:00 in Moscow
    for day in range(1, rounds + 1):
        moment = due + timedelta(days=day)
        began = time.perf_counter()
        selected = floor(url, schema, moment, str(day))
        floors.append(time.perf_counter() - began)
        clock.set(moment)
        tasks_before = _count_tasks(url, schema)
        began = time.perf_counter()
        report = engine.run_due(moment)
        fired.append(time.perf_counter() - began)
        made = _count_tasks(url, schema) - tasks_before
        assert report.fired == 1, report
        assert made == selected, (made, selected)
        matched.append(made)
    engine.store.close()
    ratio = statistics.median(fired) / statistics.median(floors)
    print(f"  clients matched per occurrence    {matched}")
    print(f"  floor: SQL select + bulk INSERT   {spread(floors)}   1.00x")
    print(f"  schedule fired through run_due    {spread(fired)}   {ratio:5.2f}x floor")


def _count_tasks(url: str, schema: str | None) -> int:
    """Tasks the engine made (the floor's own are named floor-...)."""
    t = tables_in(schema)
    engine = make_engine(url)
    with engine.connect() as connection:
        query = sa.select(sa.func.count()).select_from(t.tasks).where(~t.tasks.c.id.like("floor-%"))
        count = int(connection.execute(query).scalar_one())
    engine.dispose()
    return count


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres", default=os.environ.get("CRMRULES_TEST_POSTGRES_URL"))
    parser.add_argument("--no-sqlite", action="store_true")
    args = parser.parse_args()
    clients = [
        c.model_copy(update={"territories": frozenset({"msk"})}) if c.region == "Москва" else c
        for c in make_clients(args.clients)
    ]
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        if not args.no_sqlite:
            url = f"sqlite:///{folder / 'bench.sqlite3'}"
            run("sqlite", url, None, clients, folder, args.rounds)
        if args.postgres:
            schema = f"bench_{uuid.uuid4().hex[:8]}"
            try:
                run("postgresql", args.postgres, schema, clients, folder, args.rounds)
            finally:
                engine = make_engine(args.postgres)
                with engine.begin() as connection:
                    connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
                engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
