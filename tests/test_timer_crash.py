"""Thousands of due timers, several worker processes, two of them SIGKILLed mid-batch.

PostgreSQL only (CRMRULES_TEST_POSTGRES_URL; CI sets it): workers share the
timers through ``FOR UPDATE SKIP LOCKED`` leases. Every timer must fire
exactly once: a killed worker's leased timers are fired by another worker
once the (short) lease expires, and nothing is done twice. Then the outbox
the timers filled is delivered to a real local HTTP hook by two processes,
one of them killed and restarted: every message arrives at least once, and
a message that arrives twice carries the same idempotency key and body.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import timer_workers
from crmrules.adapters import migrate
from crmrules.model import MailingStatus
from crmrules.store import MessageStatus, TimerStatus

POSTGRES = os.environ.get("CRMRULES_TEST_POSTGRES_URL")
SPAWN = multiprocessing.get_context("spawn")

pytestmark = pytest.mark.skipif(
    not POSTGRES, reason="set CRMRULES_TEST_POSTGRES_URL to run against PostgreSQL"
)

#: Clients stored two days ago: one due timer each (``after: 1 day``).
CLIENTS = 2000
#: Short leases, so the timers a killed worker held are claimed again soon.
LEASE_SECONDS = 1.5
#: How long the whole run of the workers (or of the delivery processes) may take.
DEADLINE_SECONDS = 180


@dataclass
class Database:
    url: str
    schema: str
    admin: sa.Engine

    def scalar(self, sql: str, **params: Any) -> Any:
        with self.admin.connect() as connection:
            return connection.execute(sa.text(sql.format(s=self.schema)), params).scalar_one()

    def rows(self, sql: str, **params: Any) -> list[sa.Row[Any]]:
        with self.admin.connect() as connection:
            return list(connection.execute(sa.text(sql.format(s=self.schema)), params))

    def timers(self, status: TimerStatus) -> int:
        sql = 'SELECT count(*) FROM "{s}".crmrules_timers WHERE status = :status'
        return int(self.scalar(sql, status=status.value))

    def leased_by(self, worker: str) -> int:
        """PENDING timers that ``worker`` holds a lease on (claimed, not fired yet)."""
        sql = (
            'SELECT count(*) FROM "{s}".crmrules_timers '
            "WHERE status = 'pending' AND lease_owner = :worker"
        )
        return int(self.scalar(sql, worker=worker))

    def messages(self, status: MessageStatus) -> int:
        sql = 'SELECT count(*) FROM "{s}".crmrules_outbox WHERE status = :status'
        return int(self.scalar(sql, status=status.value))


@pytest.fixture
def database() -> Iterator[Database]:
    """A fresh, migrated PostgreSQL schema, dropped afterwards."""
    assert POSTGRES is not None
    schema = f"crmrules_crash_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(POSTGRES)
    with admin.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        migrate.upgrade(POSTGRES, schema=schema)
        yield Database(POSTGRES, schema, admin)
    finally:
        for child in multiprocessing.active_children():  # a failed test's workers
            child.kill()
            child.join(10)
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


# -- a real HTTP hook that records every POST


@dataclass
class Hook:
    received: list[tuple[str, bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def hook_handler(hook: Hook) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            if len(body) < length:
                return  # the sender was killed while sending: nothing was delivered
            with hook.lock:
                hook.received.append((self.headers.get("Idempotency-Key", ""), body))
            with suppress(OSError):  # the sender may be killed before it reads the answer
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean

    return Handler


@contextmanager
def http_hook(hook: Hook) -> Iterator[str]:
    """Serves on 127.0.0.1 in a thread; yields the hook's URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), hook_handler(hook))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks/mail"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# -- processes


def start(target: Callable[..., None], *args: object) -> BaseProcess:
    child = SPAWN.Process(target=target, args=args)
    child.start()
    return child


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)


def kill(child: BaseProcess) -> None:
    assert child.pid is not None
    os.kill(child.pid, signal.SIGKILL)
    child.join(30)
    assert child.exitcode == -signal.SIGKILL


def join_all(children: list[BaseProcess], deadline: float) -> None:
    """Wait (until ``deadline``, a monotonic time) for every child to exit 0."""
    try:
        for child in children:
            child.join(max(deadline - time.monotonic(), 0.1))
        running = [child.name for child in children if child.is_alive()]
        assert not running, f"still running after {DEADLINE_SECONDS} s: {running}"
        codes = {child.name: child.exitcode for child in children}
        assert all(code == 0 for code in codes.values()), f"a child process failed: {codes}"
    finally:
        for child in children:
            if child.is_alive():
                child.kill()
                child.join(10)


def plan_clients(db: Database, regulation: str) -> int:
    """Store CLIENTS clients created two days ago (two processes at once); the timers planned."""
    created = (datetime.now(UTC) - timedelta(days=2)).isoformat()
    half = CLIENTS // 2
    creators = [
        start(timer_workers.create_clients, db.url, db.schema, regulation, prefix, count, created)
        for prefix, count in (("a", half), ("b", CLIENTS - half))
    ]
    join_all(creators, time.monotonic() + DEADLINE_SECONDS)
    return db.timers(TimerStatus.PENDING)


def test_killed_workers_leave_no_timer_unfired_or_fired_twice_and_delivery_resumes(
    database: Database, tmp_path: Path
) -> None:
    db = database
    regulation = tmp_path / "regulation.yaml"
    regulation.write_text(timer_workers.REGULATION, encoding="utf-8")
    path = str(regulation)

    planned = plan_clients(db, path)
    assert planned == CLIENTS

    # -- four workers; two are killed mid-batch, two replacements start
    def worker(name: str) -> BaseProcess:
        return start(timer_workers.work, db.url, db.schema, path, name, LEASE_SECONDS, True)

    deadline = time.monotonic() + DEADLINE_SECONDS
    workers = {name: worker(name) for name in ("w1", "w2", "w3", "w4")}
    wait_until(
        lambda: db.timers(TimerStatus.FIRED) >= planned // 5, DEADLINE_SECONDS, "timers fired"
    )

    def holds_a_batch(name: str) -> Callable[[], bool]:
        return lambda: db.leased_by(name) >= 3

    stranded: dict[str, int] = {}
    for victim in ("w1", "w2"):
        # Kill it while it holds leases on timers it has not fired yet: mid-batch.
        wait_until(holds_a_batch(victim), 30, f"{victim} holds a batch")
        kill(workers[victim])
        stranded[victim] = db.leased_by(victim)
    assert sum(stranded.values()) > 0, "the kills landed between batches"
    fired_at_kill = db.timers(TimerStatus.FIRED)
    assert fired_at_kill < planned, "the workers finished before the kill"
    replacements = [worker(name) for name in ("w5", "w6")]
    join_all([workers["w3"], workers["w4"], *replacements], deadline)

    # -- every timer fired exactly once
    engine = timer_workers.engine(db.url, db.schema, path)
    try:
        with engine.store.transaction() as tx:
            timers = tx.find_timers()
            tasks = tx.find_tasks()
            mailings = tx.find_mailings()
            audit = tx.audit_log()
    finally:
        engine.store.close()
    assert len(timers) == planned
    assert Counter(t.status for t in timers) == {TimerStatus.FIRED: planned}
    assert all(t.fired_at is not None and t.lease_owner is None for t in timers)
    fired = Counter(e.event_id for e in audit if e.kind == "fired" and e.rule == "day-after")
    assert set(fired) == {f"timer:{t.key}" for t in timers}
    assert set(fired.values()) == {1}, "a timer's rule fired twice"

    assert len(tasks) == planned
    assert len({t.idempotency_key for t in tasks}) == planned
    assert {t.client for t in tasks} == {t.client for t in timers}
    assert len(mailings) == planned
    assert len({m.idempotency_key for m in mailings}) == planned
    assert db.messages(MessageStatus.PENDING) == planned
    keys = {row[0] for row in db.rows('SELECT key FROM "{s}".crmrules_outbox')}
    assert keys == {m.idempotency_key for m in mailings}

    # -- delivery: two processes, one killed mid-way and restarted
    hook = Hook()
    with http_hook(hook) as hook_url:
        deadline = time.monotonic() + DEADLINE_SECONDS
        senders = [start(timer_workers.deliver, db.url, db.schema, path, hook_url) for _ in "ab"]
        wait_until(
            lambda: db.messages(MessageStatus.SENT) >= planned // 4,
            DEADLINE_SECONDS,
            "messages sent",
        )
        kill(senders[0])
        assert db.messages(MessageStatus.PENDING) > 0, "delivery finished before the kill"
        senders[0] = start(timer_workers.deliver, db.url, db.schema, path, hook_url)
        join_all(senders, deadline)
    assert db.messages(MessageStatus.PENDING) == 0
    assert db.messages(MessageStatus.SENT) == planned
    engine = timer_workers.engine(db.url, db.schema, path)
    try:
        with engine.store.transaction() as tx:
            statuses = Counter(m.status for m in tx.find_mailings())
    finally:
        engine.store.close()
    assert statuses == {MailingStatus.SENT: planned}

    bodies: dict[str, set[bytes]] = {}
    for key, body in hook.received:
        bodies.setdefault(key, set()).add(body)
    assert set(bodies) == keys, "a message never arrived"
    differing = {key: len(found) for key, found in bodies.items() if len(found) > 1}
    assert not differing, f"duplicates with different bodies: {differing}"
    for key, found in bodies.items():
        assert json.loads(next(iter(found)))["key"] == key
