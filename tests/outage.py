"""A real worker process through a TCP proxy that cuts PostgreSQL away, and what it did.

Used by the outage test (a few hundred timers) and by the soak benchmark
(benchmarks/bench_soak.py: 10,000 timers). Clients are stored as created
two days ago, under a rule that fires a day after creation; the
``failing`` share lacks the field the task title computes with, so their
rule fails at run time. ``crmrules worker`` runs as its own process against
the proxy; the proxy cuts every connection ``cuts`` times while timers are
firing. Nothing here mocks anything: real processes, sockets and database.
"""

from __future__ import annotations

import multiprocessing
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from crmrules import Client, Engine
from crmrules.adapters import migrate
from crmrules.adapters.sqlalchemy import SQLAlchemyStore
from tcpproxy import tcp_proxy

REGULATION = """\
version: 1
calendar: {timezone: Europe/Moscow}
fields:
  client.credit: {type: integer}
rules:
  - id: day-after
    on: {after: 1 day, since: client.created_at}
    then:
      - create_task: {title: "Позвонить {{ client.name }}: лимит {{ client.credit * 2 }}"}
"""


@dataclass
class OutageReport:
    """What the worker did, read back from the database after it finished."""

    timers: int
    failing: int
    seconds: float
    cuts: int
    worker_alive: bool
    worker_exit: int | None
    tasks_per_client: dict[str, int]
    timer_status: dict[str, str]
    failed_notes: dict[str, str]
    failures: int
    log: str
    problems: list[str] = field(default_factory=list)


def is_failing(n: int, failing: int, timers: int) -> bool:
    """Which clients fail: ``failing`` of them, spread evenly."""
    return failing > 0 and n % (timers // failing) == 0 and n // (timers // failing) < failing


def _create(
    url: str, schema: str, regulation: str, first: int, count: int, total: int, failing: int
) -> None:
    store = SQLAlchemyStore(url, schema=schema)
    engine = Engine.from_path(regulation, store=store, entry_points=False)
    created = datetime.now(UTC) - timedelta(days=2)
    for n in range(first, min(first + count, total)):
        fields = {} if is_failing(n, failing, total) else {"credit": n}
        engine.create_client(
            Client(id=f"c{n:05d}", name=f"Клиент {n}", created_at=created, fields=fields),
            event_id=f"new-{n}",
        )
    store.close()


@contextmanager
def fresh_schema(url: str) -> Iterator[str]:
    schema = f"crmrules_outage_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        migrate.upgrade(url, schema=schema)
        yield schema
    finally:
        with admin.begin() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()


def run_outage(
    url: str,
    workdir: Path,
    *,
    timers: int,
    failing: int,
    cuts: int,
    cut_seconds: float = 0.3,
    timeout: float = 600.0,
    creators: int = 2,
) -> OutageReport:
    """Store the clients, run the worker through the proxy with ``cuts`` outages, report."""
    regulation = workdir / "regulation.yaml"
    regulation.write_text(REGULATION, encoding="utf-8")
    with fresh_schema(url) as schema:
        spawn = multiprocessing.get_context("spawn")
        share = -(-timers // creators)
        children = [
            spawn.Process(
                target=_create,
                args=(url, schema, str(regulation), i * share, share, timers, failing),
            )
            for i in range(creators)
            if i * share < timers
        ]
        for child in children:
            child.start()
        for child in children:
            child.join()
        direct = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
        try:
            counts = (timers, failing, cuts)
            return _work(url, schema, regulation, workdir, direct, counts, cut_seconds, timeout)
        finally:
            direct.dispose()


def _count(direct: sa.Engine, sql: str) -> int:
    with direct.connect() as connection:
        return int(connection.exec_driver_sql(sql).scalar_one())


def _work(
    url: str,
    schema: str,
    regulation: Path,
    workdir: Path,
    direct: sa.Engine,
    counts: tuple[int, int, int],
    cut_seconds: float,
    timeout: float,
) -> OutageReport:
    timers, failing, cuts = counts
    parsed = sa.make_url(url.replace("postgresql://", "postgresql+psycopg://", 1))
    pending_sql = f"SELECT count(*) FROM \"{schema}\".crmrules_timers WHERE status = 'pending'"
    tasks_sql = f'SELECT count(*) FROM "{schema}".crmrules_tasks'
    log_path = workdir / "worker.log"
    with tcp_proxy((parsed.host or "127.0.0.1", parsed.port or 5432)) as proxy:
        proxied = (
            parsed.set(host="127.0.0.1", port=proxy.port)
            .update_query_dict({"options": f"-csearch_path={schema}"})
            .render_as_string(hide_password=False)
        )
        with open(log_path, "w", encoding="utf-8") as log:
            worker = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "crmrules",
                    "worker",
                    str(regulation),
                    "--database",
                    proxied,
                    "--interval",
                    "0.05",
                    "--batch",
                    "50",
                ],
                stdout=log,
                stderr=log,
            )
            start = time.monotonic()
            deadline = start + timeout
            healthy = timers - failing
            try:
                for cut in range(cuts):
                    goal = healthy * (cut + 1) // (cuts + 1)
                    while _count(direct, tasks_sql) < goal and time.monotonic() < deadline:
                        time.sleep(0.02)
                    proxy.cut(cut_seconds)
                while _count(direct, pending_sql) > 0 and time.monotonic() < deadline:
                    if worker.poll() is not None:
                        break
                    time.sleep(0.1)
                seconds = time.monotonic() - start
                time.sleep(0.3)  # a few more polls: still alive when idle
                alive = worker.poll() is None
            finally:
                if worker.poll() is None:
                    worker.send_signal(signal.SIGTERM)
                try:
                    exit_code = worker.wait(30)
                except subprocess.TimeoutExpired:
                    worker.kill()
                    exit_code = worker.wait()
    with direct.connect() as connection:
        per_client = dict(
            connection.exec_driver_sql(
                f'SELECT client_id, count(*) FROM "{schema}".crmrules_tasks GROUP BY client_id'
            ).all()
        )
        status: dict[str, str] = {}
        notes: dict[str, str] = {}
        for client, state, data in connection.exec_driver_sql(
            f'SELECT client_id, status, data FROM "{schema}".crmrules_timers'
        ):
            status[client] = state
            if state == "failed":
                notes[client] = str(data.get("note") or "")
        failures = (
            int(
                connection.exec_driver_sql(
                    f"SELECT count(*) FROM \"{schema}\".crmrules_failures WHERE status = 'failed'"
                ).scalar_one()
            )
            if failing
            else 0
        )
    return OutageReport(
        timers=timers,
        failing=failing,
        seconds=seconds,
        cuts=proxy.cuts,
        worker_alive=alive,
        worker_exit=exit_code,
        tasks_per_client={str(k): int(v) for k, v in per_client.items()},
        timer_status=status,
        failed_notes=notes,
        failures=failures,
        log=log_path.read_text(encoding="utf-8"),
    )


def check(report: OutageReport) -> list[str]:
    """What went wrong, as readable lines (empty: every must-hold held)."""
    problems = []
    ids = [f"c{n:05d}" for n in range(report.timers)]
    bad = {c for n, c in enumerate(ids) if is_failing(n, report.failing, report.timers)}
    if not report.worker_alive:
        problems.append(f"the worker exited (code {report.worker_exit}) before the end")
    if report.worker_exit != 0:
        problems.append(f"the worker did not stop cleanly on SIGTERM (code {report.worker_exit})")
    twice = [c for c, n in report.tasks_per_client.items() if n != 1]
    if twice:
        problems.append(f"{len(twice)} client(s) got a task more than once: {twice[:5]}")
    unfired = [c for c in ids if c not in bad and report.timer_status.get(c) != "fired"]
    if unfired:
        problems.append(f"{len(unfired)} healthy timer(s) did not fire: {unfired[:5]}")
    missing = [c for c in ids if c not in bad and c not in report.tasks_per_client]
    if missing:
        problems.append(f"{len(missing)} healthy client(s) got no task: {missing[:5]}")
    wrong = [
        c
        for c in bad
        if report.timer_status.get(c) != "failed" or "empty" not in report.failed_notes.get(c, "")
    ]
    if wrong:
        problems.append(f"{len(wrong)} failing timer(s) not FAILED with the reason: {wrong[:5]}")
    if any(c in report.tasks_per_client for c in bad):
        problems.append("a failing client got a task")
    if report.failures != len(bad):
        problems.append(f"{report.failures} failure record(s), expected {len(bad)}")
    if report.cuts and "the database is unavailable" not in report.log:
        problems.append("the worker never logged the outage")
    if report.cuts and "reachable again" not in report.log:
        problems.append("the worker never logged that the database came back")
    return problems
