"""Due timers fired per second on PostgreSQL by 1, 2 and 4 worker processes.

Run: python benchmarks/bench_workers.py [--timers 2000] [--postgres URL]

For each worker count, a fresh schema gets ``--timers`` clients stored two
days ago under a rule ``{after: 1 day, since: client.created_at}`` that
creates a task and queues a mailing, so that many timers are due at once.
Then the workers (real processes, spawned and ready before the clock
starts) call ``Engine.run_due(limit=20, lease=30 s)`` until no timer is
pending. Figures are timers per second from the start signal until the
last worker exits, and the ratio to one worker, measured in the same run.
The URL comes from --postgres or CRMRULES_TEST_POSTGRES_URL; each schema
is dropped afterwards. On a 2-core machine the database server shares the
cores with the workers, so expect the ratio to flatten beyond 2 workers.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from crmrules import Client, Engine
from crmrules.adapters import migrate
from crmrules.adapters.sqlalchemy import SQLAlchemyStore
from crmrules.store import TimerStatus

REGULATION = """\
version: 1
calendar: {timezone: Europe/Moscow}
templates:
  welcome: {subject: "Добро пожаловать, {{ client.name }}", text: "Здравствуйте!"}
rules:
  - id: day-after
    on: {after: 1 day, since: client.created_at}
    then:
      - create_task: {title: "Позвонить {{ client.name }}"}
      - send_mailing: {template: welcome}
"""

BATCH = 20
LEASE = timedelta(seconds=30)
SPAWN = multiprocessing.get_context("spawn")


def open_engine(url: str, schema: str, regulation: str) -> Engine:
    store = SQLAlchemyStore(url, schema=schema)
    return Engine.from_path(regulation, store=store, entry_points=False)


def create_clients(url: str, schema: str, regulation: str, first: int, count: int) -> None:
    """Clients ``first`` .. ``first + count - 1``, created two days ago: one due timer each."""
    engine = open_engine(url, schema, regulation)
    created = datetime.now(UTC) - timedelta(days=2)
    for n in range(first, first + count):
        engine.create_client(
            Client(id=f"c{n:05d}", name=f"Клиент {n}", email=f"c{n}@example.ru", created_at=created)
        )
    engine.store.close()


def plan(url: str, schema: str, regulation: str, count: int) -> None:
    """``count`` due timers, planned by two processes storing clients (not measured)."""
    half = count // 2
    children = [
        SPAWN.Process(target=create_clients, args=(url, schema, regulation, first, size))
        for first, size in ((0, half), (half, count - half))
    ]
    for child in children:
        child.start()
    for child in children:
        child.join()
    if any(child.exitcode != 0 for child in children):
        raise SystemExit("storing the clients failed")


def work(url: str, schema: str, regulation: str, name: str, ready: Any, go: Any) -> None:
    """One worker process: fire batches until no due timer is left pending."""
    engine = open_engine(url, schema, regulation)
    ready.release()
    go.wait()
    while True:
        if engine.run_due(limit=BATCH, worker=name, lease=LEASE).fired:
            continue
        now = datetime.now(UTC)
        with engine.store.transaction() as tx:
            pending = tx.find_timers(status=TimerStatus.PENDING)
        if not any(timer.due_at <= now for timer in pending):
            break
        time.sleep(0.05)  # the rest is leased by the other workers
    engine.store.close()


def measure(url: str, regulation: str, timers: int, workers: int) -> float:
    """Timers per second for ``workers`` processes on ``timers`` due timers in a fresh schema."""
    schema = f"crmrules_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(url)
    with admin.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        migrate.upgrade(url, schema=schema)
        plan(url, schema, regulation, timers)
        ready = SPAWN.Semaphore(0)
        go = SPAWN.Event()
        children = [
            SPAWN.Process(target=work, args=(url, schema, regulation, f"w{n}", ready, go))
            for n in range(workers)
        ]
        for child in children:
            child.start()
        for _ in children:
            ready.acquire()
        started = time.perf_counter()
        go.set()
        for child in children:
            child.join()
        elapsed = time.perf_counter() - started
        if any(child.exitcode != 0 for child in children):
            raise SystemExit("a worker failed")
        with admin.connect() as connection:
            fired = connection.execute(
                sa.text(f"SELECT count(*) FROM \"{schema}\".crmrules_timers WHERE status = 'fired'")
            ).scalar_one()
        if fired != timers:
            raise SystemExit(f"{fired} of {timers} timers fired")
        return timers / elapsed
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--timers", type=int, default=2000)
    parser.add_argument("--postgres", default=os.environ.get("CRMRULES_TEST_POSTGRES_URL"))
    args = parser.parse_args()
    if not args.postgres:
        print(
            "PostgreSQL is needed: give --postgres URL or set CRMRULES_TEST_POSTGRES_URL",
            file=sys.stderr,
        )
        return 2
    with tempfile.TemporaryDirectory() as folder:
        regulation = Path(folder) / "workers.yaml"
        regulation.write_text(REGULATION, encoding="utf-8")
        figures = {n: measure(args.postgres, str(regulation), args.timers, n) for n in (1, 2, 4)}
    baseline = figures[1]
    print(f"{args.timers} due timers per run (task + mailing each), batch {BATCH}, PostgreSQL")
    for workers, rate in figures.items():
        print(f"{workers} worker(s) {rate:8.0f} timers/s   {rate / baseline:5.2f}x 1 worker")
    return 0


if __name__ == "__main__":
    sys.exit(main())
