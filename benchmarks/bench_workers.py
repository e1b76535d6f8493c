"""Due timers fired per second by 1, 2 and 4 workers; a realignment over 1 and 2 Celery workers.

Run: python benchmarks/bench_workers.py [--timers 2000] [--clients 1000000] [--rounds 1]
     [--realign-rounds 2] [--postgres URL] [--redis URL] [--no-timers]

For each worker count, a fresh schema gets ``--timers`` clients stored two
days ago under a rule ``{after: 1 day, since: client.created_at}`` that
creates a task and queues a mailing, so that many timers are due at once.
Then the workers (real processes, spawned and ready before the clock
starts) call ``Engine.run_due(limit=20, lease=30 s)`` until no timer is
pending. Figures are timers per second from the start signal until the
last worker exits, and the ratio to one worker, measured in the same run.

The floor: one worker in this process fires the same number of timers,
timed with nothing listening to its statements; then a second run, on a
schema of its own, records every statement it sends that writes a row
(the claims, the rows each firing writes, the timers settled),
transaction by transaction (a statement that changed no row is not); a
third schema with the same due timers then receives exactly those
statements as bare SQL (``exec_driver_sql``), one transaction for each of
the worker's. Printed: the worker's share of it.
The URL comes from --postgres or CRMRULES_TEST_POSTGRES_URL; each schema
is dropped afterwards. On a 2-core machine the database server shares the
cores with the workers, so expect the ratio to flatten beyond 2 workers.

Then, with a Redis broker (--redis or CRMRULES_TEST_REDIS_URL), a
realignment over Celery: a fresh schema gets ``--clients`` clients
(default 1,000,000) bulk-loaded by bench_base's loader (its eleven fields,
ten territories; at low priority, not measured). Each run realigns them to
bench_base's regulation with the ten territories redrawn (5% of the clients,
those with over 380 employees, leave theirs), the next one back to the first
regulation (they enter again), and so on: ``engine.realign(fan_out=...)`` in
a process of its own sends its chunks of 1,000 as Celery tasks to 1 or 2
Celery worker processes (``celery worker --concurrency 1`` each, started and
answering a ping before the clock starts). ``--realign-rounds`` (default 2)
rounds of one run per worker count, in the order 1, 2, then 2, 1, so each
count realigns in both directions. Figures are clients per second from the
first id read to the last chunk's report (median, spread), the ratio to one
worker, and the peak RSS of the calling process and of the largest worker
process. Each run's report must count every client and exactly the clients
that move (counted in SQL): else the benchmark stops. ``--clients 0`` skips
the realignment.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import bench_base
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


class Recorder:
    """Keeps the statements that write, transaction by transaction, as the driver got them."""

    def __init__(self, engine: sa.Engine) -> None:
        self.transactions: list[list[tuple[str, Any, bool]]] = [[]]
        sa.event.listen(engine, "after_cursor_execute", self.seen)
        sa.event.listen(engine, "commit", self.committed)

    def seen(
        self, conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        if statement.lstrip()[:6].upper() in ("INSERT", "UPDATE", "DELETE"):
            if cursor.rowcount == 0:  # changed nothing: the floor writes rows, not attempts
                return
            self.transactions[-1].append((statement, params, many))

    def committed(self, conn: Any) -> None:
        if self.transactions[-1]:
            self.transactions.append([])


def fresh_schema(admin: sa.Engine, url: str, regulation: str, timers: int) -> str:
    schema = f"crmrules_bench_{uuid.uuid4().hex[:8]}"
    with admin.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    migrate.upgrade(url, schema=schema)
    plan(url, schema, regulation, timers)
    return schema


def fire_all(engine: Engine) -> tuple[float, int]:
    """Seconds to fire every due timer with one worker in this process, and its batches."""
    started = time.perf_counter()
    batches = 0
    while engine.run_due(limit=BATCH, worker="w0", lease=LEASE).handled:
        batches += 1
    return time.perf_counter() - started, batches


def measure_floor(url: str, regulation: str, timers: int) -> tuple[float, float, float]:
    """One worker in this process, against the bare SQL of the same writes.

    The worker is timed on a schema of its own with nothing listening to its
    statements (a listener would turn the store's direct statements into
    ``exec_driver_sql``, see crmrules.adapters.direct). A second run on a
    second schema records its statements that write (the claims, the
    firings' rows, the timers settled) transaction by transaction; a third
    schema with the same due timers then receives exactly those statements
    through bare ``exec_driver_sql``, one transaction for each of the
    worker's. Returns the worker's timers/s, the floor's and the worker's
    transactions per batch.
    """
    admin = sa.create_engine(url)
    schemas = [fresh_schema(admin, url, regulation, timers) for _ in range(3)]
    try:
        engine = open_engine(url, schemas[0], regulation)
        elapsed, batches = fire_all(engine)
        rate = timers / elapsed
        engine.store.close()
        engine = open_engine(url, schemas[1], regulation)
        assert isinstance(engine.store, SQLAlchemyStore) and engine.store.engine is not None
        recorder = Recorder(engine.store.engine)
        fire_all(engine)
        engine.store.close()
        old, new = f"{schemas[1]}.", f"{schemas[2]}."
        writes = [
            [(sql.replace(old, new), params, many) for sql, params, many in transaction]
            for transaction in recorder.transactions
            if transaction
        ]
        bare = sa.create_engine(url)
        started = time.perf_counter()
        for transaction in writes:
            with bare.begin() as connection:
                for sql, params, _many in transaction:
                    connection.exec_driver_sql(sql, params)
        floor = timers / (time.perf_counter() - started)
        bare.dispose()
        return rate, floor, len(writes) / max(batches, 1)
    finally:
        for schema in schemas:
            with admin.begin() as connection:
                connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


# -- a realignment over Celery workers (bench_base's clients, territories redrawn and back)

#: One round realigns with each worker count; the order alternates (1, 2, then 2, 1).
COUNTS = (1, 2)


def _load_base(url: str, schema: str, clients: int, folder: str) -> None:
    """bench_base's clients, bulk-loaded and marked synced, at low priority (not measured)."""
    os.nice(10)
    migrate.upgrade(url, schema=schema)
    bench_base.load(url, schema, clients)
    bench_base.mark_synced(url, schema, Path(folder))


def celery_tasks(settings: dict[str, Any]) -> Any:
    """The Celery app of a run and its crmrules tasks (the workers build the same).

    Every crmrules task goes to the run's own queue; the engine is
    bench_base's, on its regulation redrawn or drawn back.
    """
    from celery import Celery

    from crmrules.adapters.celery import QUEUES, register

    app = Celery("crmrules_bench", broker=settings["broker"], backend=settings["broker"])
    app.conf.update(
        worker_prefetch_multiplier=1, worker_hijack_root_logger=False, result_expires=3600
    )

    def make_engine() -> Engine:
        folder = Path(settings["folder"])
        return bench_base.open_engine(
            settings["store"], settings["schema"], folder, redrawn=settings["redrawn"]
        )

    return register(app, make_engine, queues=dict.fromkeys(QUEUES, settings["queue"]))


def _caller(settings: dict[str, Any], results: Any) -> None:
    """The process that calls ``engine.realign(fan_out=...)``: its time, report and peak RSS."""
    tasks = celery_tasks(settings)
    folder = Path(settings["folder"])
    engine = bench_base.open_engine(
        settings["store"], settings["schema"], folder, redrawn=settings["redrawn"]
    )
    started = time.perf_counter()
    report = engine.realign(fan_out=tasks)
    seconds = time.perf_counter() - started
    engine.store.close()
    tasks.app.close()
    results.put(
        {
            "seconds": seconds,
            "clients": report.clients,
            "changed": report.changed,
            "failed": len(report.failed),
            "rss_mb": bench_base.peak_rss_mb(),
        }
    )


def _pool(pid: int) -> tuple[float, float]:
    """A Celery worker's pool processes (its children): the largest peak RSS, their CPU seconds."""
    peaks, cpu = [0.0], 0.0
    for thread in Path(f"/proc/{pid}/task").iterdir():
        for child in (thread / "children").read_text().split():
            for entry in Path(f"/proc/{child}/status").read_text().splitlines():
                if entry.startswith("VmHWM:"):
                    peaks.append(int(entry.split()[1]) / 1024)
            fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
            cpu += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return max(peaks), cpu


def realign_run(settings: dict[str, Any], workers: int, log: Path) -> dict[str, Any]:
    """One realignment by ``workers`` Celery workers started (and answering) before the clock."""
    env = {**os.environ, "BENCH_CELERY": json.dumps(settings)}
    names = [f"{settings['queue']}-{n}" for n in range(workers)]
    children: list[subprocess.Popen[bytes]] = []
    output = open(log, "ab")  # noqa: SIM115 (kept open while the workers run)
    try:
        for name in names:
            command = [sys.executable, "-m", "celery", "-A", "bench_workers", "worker"]
            command += ["--concurrency=1", "--pool=prefork", f"--queues={settings['queue']}"]
            command += [f"--hostname={name}@%h", "--without-gossip", "--without-mingle"]
            command += ["--loglevel=WARNING"]
            here = Path(__file__).parent
            children.append(
                subprocess.Popen(command, cwd=here, env=env, stdout=output, stderr=output)
            )
        tasks = celery_tasks(settings)
        deadline = time.monotonic() + 120
        while True:
            answered = {name for reply in tasks.app.control.ping(timeout=1.0) for name in reply}
            if sum(any(a.startswith(f"{n}@") for a in answered) for n in names) == workers:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"the Celery workers did not answer (see {log})")
        tasks.app.close()
        warm = sum(cpu for _, cpu in (_pool(child.pid) for child in children))
        results = SPAWN.Queue()
        caller = SPAWN.Process(target=_caller, args=(settings, results))
        caller.start()
        result: dict[str, Any] = results.get()
        caller.join()
        pools = [_pool(child.pid) for child in children]
        result["worker_rss_mb"] = max(rss for rss, _ in pools)
        result["worker_cpu"] = sum(cpu for _, cpu in pools) - warm
        return result
    finally:
        for child in children:
            child.terminate()
        for child in children:
            child.wait(120)
        output.close()


def realign_over_celery(args: argparse.Namespace) -> None:
    """Realign ``--clients`` clients over 1 and 2 Celery workers, rounds interleaved; print it."""
    schema = f"crmrules_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(args.postgres)
    with admin.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        with tempfile.TemporaryDirectory() as name:
            folder = Path(name)
            for redrawn, file in ((False, "regulation.json"), (True, "redrawn.json")):
                (folder / file).write_text(bench_base.regulation_text(redrawn), encoding="utf-8")
            started = time.perf_counter()
            loading = SPAWN.Process(
                target=_load_base, args=(args.postgres, schema, args.clients, name)
            )
            loading.start()
            loading.join()
            if loading.exitcode != 0:
                raise SystemExit("loading the clients failed")
            loaded = time.perf_counter() - started
            with admin.connect() as connection:
                moving = connection.execute(
                    sa.text(
                        f'SELECT count(*) FROM "{schema}".crmrules_client_values '
                        "WHERE key = 'employees' AND seq = 0 AND number > 380"
                    )
                ).scalar_one()
            runs: dict[int, list[dict[str, Any]]] = {n: [] for n in COUNTS}
            order: list[int] = []
            for round_ in range(args.realign_rounds):
                for workers in COUNTS if round_ % 2 == 0 else COUNTS[::-1]:
                    settings = {
                        "broker": args.redis,
                        "store": args.postgres,
                        "schema": schema,
                        "folder": name,
                        "redrawn": len(order) % 2 == 0,  # redrawn, then drawn back, ...
                        "queue": f"{schema}-{len(order)}",
                    }
                    result = realign_run(settings, workers, folder / "workers.log")
                    expected = (args.clients, moving, 0)
                    if (result["clients"], result["changed"], result["failed"]) != expected:
                        raise SystemExit(f"run {len(order)}: {result}, expected {expected}")
                    runs[workers].append(result)
                    order.append(workers)
                    print(
                        f"  run {len(order)}: {workers} Celery worker(s), "
                        f"{result['seconds']:.1f} s, the workers' CPU {result['worker_cpu']:.1f} s,"
                        f" load {os.getloadavg()[0]:.1f}",
                        flush=True,
                    )
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()
    print(
        f"realignment of {args.clients} clients over Celery on Redis "
        f"(bulk-loaded in {loaded:.0f} s, not measured): {moving} clients change territory "
        f"each run, runs in the order {','.join(map(str, order))}"
    )
    rates = {n: [args.clients / r["seconds"] for r in runs[n]] for n in COUNTS}
    table(rates, "Celery worker(s)", "clients/s")
    for n in COUNTS:
        caller = max(r["rss_mb"] for r in runs[n])
        worker = max(r["worker_rss_mb"] for r in runs[n])
        print(f"{n} Celery worker(s): peak RSS {caller:.0f} MB caller, {worker:.0f} MB a worker")


def table(figures: dict[int, list[float]], who: str, unit: str) -> None:
    """Median per worker count, its ratio to one worker, and the spread of the rounds."""
    baseline = statistics.median(figures[1])
    for workers, rates in figures.items():
        rate = statistics.median(rates)
        spread = f"{min(rates):.0f}-{max(rates):.0f}" if len(rates) > 1 else "one round"
        print(f"{workers} {who} {rate:8.0f} {unit}   {rate / baseline:5.2f}x 1 worker   ({spread})")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--timers", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=1_000_000, help="clients to realign")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds (median)")
    parser.add_argument("--postgres", default=os.environ.get("CRMRULES_TEST_POSTGRES_URL"))
    parser.add_argument("--workers", default="1,2,4", help="worker counts to measure")
    parser.add_argument("--redis", default=os.environ.get("CRMRULES_TEST_REDIS_URL"))
    parser.add_argument("--no-timers", action="store_true", help="only the realignment")
    parser.add_argument(
        "--realign-rounds", type=int, default=2, help="realignment rounds (1,2 then 2,1 workers)"
    )
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    if not args.postgres:
        print(
            "PostgreSQL is needed: give --postgres URL or set CRMRULES_TEST_POSTGRES_URL",
            file=sys.stderr,
        )
        return 2
    with tempfile.TemporaryDirectory() as folder:
        regulation = Path(folder) / "workers.yaml"
        regulation.write_text(REGULATION, encoding="utf-8")
        floors: list[tuple[float, float, float]] = []
        timers: dict[int, list[float]] = {n: [] for n in counts}
        for _ in range(args.rounds):
            if not args.no_timers:
                floors.append(measure_floor(args.postgres, str(regulation), args.timers))
            for n in timers if not args.no_timers else ():
                timers[n].append(measure(args.postgres, str(regulation), args.timers, n))
    if not args.no_timers:
        print(f"{args.timers} due timers per run (task + mailing each), batch {BATCH}, PostgreSQL")
        one, floor, per_batch = (statistics.median(f[i] for f in floors) for i in range(3))
        ratios = [f[0] / f[1] for f in floors]
        print(
            f"1 worker in process {one:8.0f} timers/s; the floor (its writes replayed as bare "
            f"SQL, {per_batch:.1f} transactions a batch) {floor:8.0f} timers/s: "
            f"{statistics.median(ratios):.2f}x the floor ({min(ratios):.2f}-{max(ratios):.2f})"
        )
        table(timers, "worker(s)", "timers/s")
    if not args.redis:
        print("no --redis URL (or CRMRULES_TEST_REDIS_URL): realignment over Celery skipped")
        return 0
    if args.clients:
        realign_over_celery(args)
    return 0


if "BENCH_CELERY" in os.environ:  # imported by a Celery worker the benchmark started
    from celery.signals import worker_process_init

    _tasks = celery_tasks(json.loads(os.environ["BENCH_CELERY"]))
    app = _tasks.app
    # Each pool process builds its engine as it starts, not on the clock's first chunk.
    worker_process_init.connect(lambda **_: _tasks.engine(), weak=False)


if __name__ == "__main__":
    sys.exit(main())
