"""A real Celery worker (two pool processes) runs crmrules on PostgreSQL, through a SIGKILL.

Once against Redis (CRMRULES_TEST_REDIS_URL) and once against RabbitMQ
(CRMRULES_TEST_AMQP_URL), with PostgreSQL as the store: events (a third of
them sent twice), due timers and a realignment of 20,000 clients fanned out
as chunk tasks go through the worker, and one of its pool processes is
SIGKILLed while it works on a chunk. The database must then hold every
event's effects once, every timer fired once and every territory event
raised once: tasks are acknowledged late and handed on when their process
dies, and each acts once however often it runs.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from benchmarks.bench_select import load

import celery_app
import delivery_workers
from crmrules import occurrences
from crmrules.adapters.notifiers import message_id
from crmrules.adapters.sqlalchemy import SQLAlchemyStore
from crmrules.engine import Engine
from crmrules.model import Client, Event
from crmrules.store import MessageStatus, TimerStatus
from databases import Database, open_database
from localservers import MailHandler, free_port, smtp_server

HERE = Path(__file__).parent
REDIS = os.environ.get("CRMRULES_TEST_REDIS_URL")
AMQP = os.environ.get("CRMRULES_TEST_AMQP_URL")

#: Clients to realign; CRMRULES_TEST_CELERY_CLIENTS makes it smaller on a crowded machine.
CLIENTS = int(os.environ.get("CRMRULES_TEST_CELERY_CLIENTS", "20000"))
TIMERS = 200
EVENTS = 300
DEADLINE = 300.0
REGIONS = ["Москва", "Санкт-Петербург", "Казань", "Москва"]
TERRITORY = {"Москва": "msk", "Санкт-Петербург": "spb"}

REGULATION = """\
version: 1
calendar: {timezone: Europe/Moscow}
fields:
  event.n: {type: string}
  event.territory: {type: string}
territories:
  - {id: msk, when: {field: client.region, eq: Москва}}
  - {id: spb, when: {field: client.region, eq: Санкт-Петербург}}
rules:
  - id: touched
    on: touch
    then: [{create_task: {title: "touch {{ event.n }}"}}]
  - id: day-after
    on: {after: 1 day, since: client.created_at}
    then: [{create_task: {title: "day after"}}]
  - id: entered
    on: territory.entered
    then: [{create_task: {kind: call, title: "Вход в {{ event.territory }}"}}]
"""


@dataclass(frozen=True)
class Broker:
    name: str
    url: str
    backend: str


@pytest.fixture(params=["redis", "rabbitmq"])
def broker(request: pytest.FixtureRequest) -> Broker:
    if request.param == "redis":
        if not REDIS:
            pytest.skip("set CRMRULES_TEST_REDIS_URL to run the Celery test on Redis")
        return Broker("redis", REDIS, REDIS)
    if not AMQP:
        pytest.skip("set CRMRULES_TEST_AMQP_URL to run the Celery test on RabbitMQ")
    return Broker("rabbitmq", AMQP, "rpc://")


def seed(db: Database, regulation: Path) -> Engine:
    """CLIENTS stale clients to realign, and TIMERS clients with a due timer each."""
    stale = [
        Client(id=f"r{n:05d}", name=f"Клиент {n}", region=REGIONS[n % 4]) for n in range(CLIENTS)
    ]
    load(db.url, db.schema, stale)  # as the store writes them, a batch per statement
    store = SQLAlchemyStore(db.url, schema=db.schema)
    engine = Engine.from_path(regulation, store=store, entry_points=False)
    created = datetime.now(UTC) - timedelta(days=2)
    for n in range(TIMERS):
        engine.create_client(
            Client(id=f"t{n:03d}", name=f"Срочный {n}", region="Казань", created_at=created)
        )
    return engine


def pool_processes(pid: int) -> list[int]:
    """The worker's pool processes (its children)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(p) for p in (task / "children").read_text().split()]
    return found


@contextmanager
def celery_worker(env: dict[str, str], queues: list[str], log: Path) -> Iterator[int]:
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "celery_app",
        "worker",
        "--concurrency=2",
        "--pool=prefork",
        f"--queues={','.join(queues)}",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        f"--hostname={env['CELERY_TEST_PREFIX']}@%h",
        "--loglevel=WARNING",
    ]
    with open(log, "wb") as output:
        process = subprocess.Popen(
            command, cwd=HERE, env={**os.environ, **env}, stdout=output, stderr=output
        )
        try:
            yield process.pid
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


def scalar(db: Database, sql: str) -> int:
    admin = sa.create_engine(db.url)
    try:
        with admin.connect() as connection:
            return int(connection.execute(sa.text(sql.format(s=db.schema))).scalar_one())
    finally:
        admin.dispose()


def test_a_celery_worker_acts_once_through_a_sigkill(broker: Broker, tmp_path: Path) -> None:
    regulation = tmp_path / "regulation.yaml"
    regulation.write_text(REGULATION, encoding="utf-8")
    with open_database("postgresql", tmp_path) as db:
        started = time.monotonic()
        engine = seed(db, regulation)
        print(f"seeded in {time.monotonic() - started:.1f} s")
        prefix = f"crmrules-test-{uuid.uuid4().hex[:8]}"
        env = {
            "CELERY_TEST_BROKER": broker.url,
            "CELERY_TEST_BACKEND": broker.backend,
            "CELERY_TEST_STORE": db.url,
            "CELERY_TEST_SCHEMA": db.schema or "",
            "CELERY_TEST_REGULATION": str(regulation),
            "CELERY_TEST_PREFIX": prefix,
            "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
        }
        app, tasks = celery_app.make_app(
            broker.url, broker.backend, db.url, db.schema or "", str(regulation), prefix
        )
        queues = sorted(set(tasks.queues.values()))
        killed: list[int] = []
        with celery_worker(env, queues, tmp_path / "worker.log") as pid:
            sent = []
            for n in range(EVENTS):
                event = Event(
                    id=f"touch-{n}",
                    type="touch",
                    occurred_at=datetime.now(UTC),
                    client=f"t{n % TIMERS:03d}",
                    data={"n": str(n)},
                )
                sent += [tasks.send_event(event) for _ in range(2 if n % 3 == 0 else 1)]
            due = [tasks.run_due.delay(50) for _ in range(4)]

            def kill_mid_chunk() -> None:
                """SIGKILL a pool process once a fifth of the moves are in, while the rest run."""
                deadline = time.monotonic() + DEADLINE
                sql = "SELECT count(*) FROM \"{s}\".crmrules_tasks WHERE data->>'kind' = 'call'"
                while time.monotonic() < deadline:
                    if scalar(db, sql) >= CLIENTS // 4 * 3 // 5:
                        victim = pool_processes(pid)[0]
                        os.kill(victim, signal.SIGKILL)
                        killed.append(victim)
                        return
                    time.sleep(0.2)

            killer = threading.Thread(target=kill_mid_chunk)
            killer.start()
            started = time.monotonic()
            report = engine.realign(fan_out=tasks)
            print(f"realigned in {time.monotonic() - started:.1f} s")
            killer.join()
            assert killed, "the realignment ended before the kill"

            results = [result.get(timeout=DEADLINE) for result in sent]
            for result in due:
                result.get(timeout=DEADLINE)
            deadline = time.monotonic() + DEADLINE
            while engine_timers(engine, TimerStatus.PENDING) and time.monotonic() < deadline:
                tasks.run_due.delay().get(timeout=DEADLINE)  # as beat would, until all fired
                time.sleep(0.5)
        app.close()

        # Events: each handled once, its effect there once; a repeat was a duplicate.
        assert Counter(r["event_id"] for r in results if not r["duplicate"]) == {
            f"touch-{n}": 1 for n in range(EVENTS)
        }
        with engine.store.transaction() as tx:
            tasks_made = Counter(t.title for t in tx.find_tasks())
            entries = tx.audit_log()
        assert all(tasks_made[f"touch {n}"] == 1 for n in range(EVENTS))
        # Timers: every one fired, once.
        assert engine_timers(engine, TimerStatus.PENDING) == 0
        assert engine_timers(engine, TimerStatus.FIRED) == TIMERS
        assert tasks_made["day after"] == TIMERS
        # Territory events: one entered per moved client, none twice.
        raised = Counter(
            e.event_id.rsplit("/", 1)[1]
            for e in entries
            if e.rule == "entered" and e.kind == "fired"
        )
        moved = {
            f"territory.entered:r{n:05d}:{TERRITORY[REGIONS[n % 4]]}"
            for n in range(CLIENTS)
            if REGIONS[n % 4] in TERRITORY
        }
        assert set(raised) == moved
        assert set(raised.values()) == {1}
        assert report.clients == CLIENTS + TIMERS
        assert report.changed == len(moved)
        assert report.territories["msk"].entered == CLIENTS // 2
        engine.store.close()


def engine_timers(engine: Engine, status: TimerStatus) -> int:
    with engine.store.transaction() as tx:
        return len(tx.find_timers(status=status))


SCHEDULE = """\
version: 1
calendar: {timezone: Europe/Moscow}
rules:
  - id: weekly-call
    on: {every: 7 days}
    if: {field: client.region, eq: Казань}
    then: [{create_task: {title: "Еженедельный звонок"}}]
"""


def test_a_schedule_occurrence_fans_out_as_chunk_tasks(tmp_path: Path) -> None:
    """fire_occurrence sends each chunk to the worker; a chunk sent again does nothing."""
    if not REDIS:
        pytest.skip("set CRMRULES_TEST_REDIS_URL to run the Celery test on Redis")
    regulation = tmp_path / "schedule.yaml"
    regulation.write_text(SCHEDULE, encoding="utf-8")
    with open_database("postgresql", tmp_path) as db:
        clients = [Client(id=f"k{n:03d}", region=REGIONS[n % 4]) for n in range(120)]
        load(db.url, db.schema, clients)
        engine = Engine.from_path(
            regulation, store=SQLAlchemyStore(db.url, schema=db.schema), entry_points=False
        )
        engine.sync_timers()
        with engine.store.transaction() as tx:
            (occurrence,) = tx.find_timers(kind="schedule")
        prefix = f"crmrules-test-{uuid.uuid4().hex[:8]}"
        env = {
            "CELERY_TEST_BROKER": REDIS,
            "CELERY_TEST_BACKEND": REDIS,
            "CELERY_TEST_STORE": db.url,
            "CELERY_TEST_SCHEMA": db.schema or "",
            "CELERY_TEST_REGULATION": str(regulation),
            "CELERY_TEST_PREFIX": prefix,
            "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
        }
        app, tasks = celery_app.make_app(
            REDIS, REDIS, db.url, db.schema or "", str(regulation), prefix
        )
        with celery_worker(env, sorted(set(tasks.queues.values())), tmp_path / "worker.log"):
            reports = tasks.fire_occurrence(occurrence.key)
            again = tasks.fire_chunk.delay(reports[0]["chunk"]).get(timeout=DEADLINE)
            delivered = tasks.deliver.delay().get(timeout=DEADLINE)
        app.close()
        with engine.store.transaction() as tx:
            made = Counter(t.client for t in tx.find_tasks())
            settled = tx.get_timer(occurrence.key)
        kazan = {c.id for c in clients if c.region == "Казань"}
        assert made == dict.fromkeys(kazan, 1)
        assert sum(r["matched"] for r in reports) == len(kazan)
        assert again["status"] == "gone"  # the occurrence is settled: nothing runs again
        assert delivered == {"sent": 0, "retried": 0, "failed": 0}
        assert settled is not None and settled.status is TimerStatus.FIRED
        engine.store.close()


# -- delivery: a rules' outbox sent through Celery workers to a real SMTP server

NEWS = """\
version: 1
calendar: {timezone: Europe/Moscow}
fields:
  event.n: {type: string}
templates:
  news: {subject: "Новости {{ event.n }}", text: "Здравствуйте, {{ client.name }}!"}
rules:
  - id: news
    on: news
    then: [{send_mailing: {template: news}}]
"""
#: Messages the rules queue, and how many a ``deliver`` task claims (small: a kill finds
#: messages claimed and not yet sent).
MAILS = 600
DELIVER_BATCH = 10


def worker_env(broker: Broker, db: Database, regulation: Path, prefix: str) -> dict[str, str]:
    return {
        "CELERY_TEST_BROKER": broker.url,
        "CELERY_TEST_BACKEND": broker.backend,
        "CELERY_TEST_STORE": db.url,
        "CELERY_TEST_SCHEMA": db.schema or "",
        "CELERY_TEST_REGULATION": str(regulation),
        "CELERY_TEST_PREFIX": prefix,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }


def redis_broker() -> Broker:
    if not REDIS:
        pytest.skip("set CRMRULES_TEST_REDIS_URL to run the Celery test on Redis")
    return Broker("redis", REDIS, REDIS)


def queue_news(db: Database, regulation: Path) -> dict[str, str]:
    """MAILS clients, a ``news`` event each: the rule queues one e-mail per client.

    Returns each outbox message's key and its recipient, as the store holds them.
    """
    clients = [
        Client(id=f"m{n:04d}", name=f"Клиент {n}", email=f"m{n}@example.ru") for n in range(MAILS)
    ]
    load(db.url, db.schema, clients)
    with SQLAlchemyStore(db.url, schema=db.schema) as store:
        engine = Engine.from_path(regulation, store=store, entry_points=False)
        now = datetime.now(UTC)
        events = [
            Event(id=f"news-{c.id}", type="news", occurred_at=now, client=c.id, data={"n": "1"})
            for c in clients
        ]
        engine.handle_many(events)
        with store.transaction() as tx:
            due = tx.due_messages(now + timedelta(days=1), MAILS + 1)
    return {m.key: m.to for m in due}


def deliver_through_celery(
    db: Database, regulation: Path, tmp_path: Path, *, kill: bool
) -> tuple[MailHandler, list[int]]:
    """``deliver`` tasks, as beat sends them, until the outbox is empty; maybe a SIGKILL."""
    broker = redis_broker()
    handler = MailHandler()
    port = free_port()
    prefix = f"crmrules-test-{uuid.uuid4().hex[:8]}"
    env = {**worker_env(broker, db, regulation, prefix), "CELERY_TEST_SMTP_PORT": str(port)}
    app, tasks = celery_app.make_app(
        broker.url, broker.backend, db.url, db.schema or "", str(regulation), prefix
    )
    killed: list[int] = []
    store = SQLAlchemyStore(db.url, schema=db.schema)
    log = tmp_path / "worker.log"
    queues = sorted(set(tasks.queues.values()))
    with smtp_server(handler, port), celery_worker(env, queues, log) as pid:
        sent = [tasks.deliver.delay(DELIVER_BATCH) for _ in range(MAILS // DELIVER_BATCH + 10)]
        if kill:
            killed.append(kill_a_sender(db, pid, handler))
            assert len(handler.received) < MAILS, "delivery finished before the kill"
            assert held(db, killed[0]), "the killed process held no message"
        for result in sent:
            result.get(timeout=DEADLINE)
        deadline = time.monotonic() + DEADLINE
        while delivery_workers.pending(store) and time.monotonic() < deadline:
            tasks.deliver.delay(DELIVER_BATCH).get(timeout=DEADLINE)  # the dead one's lease
            time.sleep(0.5)
    app.close()
    store.close()
    return handler, killed


def held(db: Database, pid: int) -> int:
    """Messages claimed by the pool process ``pid`` and not sent."""
    owner = f"celery:{socket.gethostname()}:{pid}"
    sql = "SELECT count(*) FROM \"{s}\".crmrules_outbox WHERE status = 'pending' AND "
    return scalar(db, sql + f"lease_owner = '{owner}'")


def kill_a_sender(db: Database, pid: int, handler: MailHandler) -> int:
    """SIGKILL a pool process, a quarter of the way in, while it holds claimed messages."""
    deadline = time.monotonic() + DEADLINE
    while len(handler.received) < MAILS // 4 and time.monotonic() < deadline:
        time.sleep(0.005)
    while time.monotonic() < deadline:
        for victim in pool_processes(pid):
            if held(db, victim) >= DELIVER_BATCH // 2:
                os.kill(victim, signal.SIGKILL)
                return victim
    raise AssertionError("no pool process held messages")


def arrived(handler: MailHandler) -> dict[str, list[tuple[list[str], bytes]]]:
    """What the SMTP server got, by Message-ID: the recipients and bytes of each copy."""
    found: dict[str, list[tuple[list[str], bytes]]] = {}
    for mail in handler.received:
        found.setdefault(str(mail.parsed()["Message-ID"]), []).append((mail.rcpt_tos, mail.content))
    return found


def sent_statuses(db: Database, keys: Iterable[str]) -> Counter[MessageStatus]:
    with SQLAlchemyStore(db.url, schema=db.schema) as store, store.transaction() as tx:
        return Counter(m.status for m in (tx.get_message(k) for k in keys) if m is not None)


def test_celery_deliver_sends_a_rules_outbox_once(tmp_path: Path) -> None:
    """Two pool processes share the outbox through message leases: each e-mail once."""
    regulation = tmp_path / "news.yaml"
    regulation.write_text(NEWS, encoding="utf-8")
    with open_database("postgresql", tmp_path) as db:
        queued = queue_news(db, regulation)
        assert len(queued) == MAILS
        handler, _ = deliver_through_celery(db, regulation, tmp_path, kill=False)
        got = arrived(handler)
        expected = {message_id(key, "crmrules.local"): [to] for key, to in queued.items()}
        assert {mid: [rcpt for rcpt, _ in copies] for mid, copies in got.items()} == {
            mid: [to] for mid, to in expected.items()
        }, "each message once, to its recipient, under its key's Message-ID"
        assert sent_statuses(db, queued) == {MessageStatus.SENT: MAILS}


def test_celery_deliver_through_a_sigkill_sends_each_at_least_once_alike(tmp_path: Path) -> None:
    """A pool process killed mid-delivery: its claimed messages go after its lease, same key."""
    regulation = tmp_path / "news.yaml"
    regulation.write_text(NEWS, encoding="utf-8")
    with open_database("postgresql", tmp_path) as db:
        queued = queue_news(db, regulation)
        handler, killed = deliver_through_celery(db, regulation, tmp_path, kill=True)
        assert killed
        got = arrived(handler)
        assert set(got) == {message_id(key, "crmrules.local") for key in queued}, "one lost"
        by_id = {message_id(key, "crmrules.local"): to for key, to in queued.items()}
        for mid, copies in got.items():
            assert {tuple(rcpt) for rcpt, _ in copies} == {(by_id[mid],)}
            assert len({content for _, content in copies}) == 1, f"{mid}: copies differ"
        assert sent_statuses(db, queued) == {MessageStatus.SENT: MAILS}
        print(f"{len(handler.received) - MAILS} message(s) sent twice after the kill")


# -- spread_schedules: a daily occurrence over thousands of clients, through a SIGKILL

DAILY = """\
version: 1
calendar: {timezone: Europe/Moscow}
rules:
  - id: daily-call
    on: {every: 1 day}
    if: {field: client.region, eq: Москва}
    then: [{create_task: {title: "Ежедневный звонок"}}]
"""
SCHEDULED = 4000
#: Clients per fire_chunk task: the occurrence's 2,000 matching clients in 20 tasks.
SPREAD_CHUNK = 100


def test_spread_schedules_fires_a_daily_occurrence_once_through_a_sigkill(
    tmp_path: Path,
) -> None:
    """Beat's spread_schedules and run_due fan the chunks out; one process dies mid-chunk.

    Each matching client still gets its task once and one fired audit entry,
    the occurrence is settled once and the next day's is planned once.
    """
    broker = redis_broker()
    regulation = tmp_path / "daily.yaml"
    regulation.write_text(DAILY, encoding="utf-8")
    with open_database("postgresql", tmp_path) as db:
        clients = [Client(id=f"d{n:05d}", region=REGIONS[n % 4]) for n in range(SCHEDULED)]
        load(db.url, db.schema, clients)
        engine = Engine.from_path(
            regulation, store=SQLAlchemyStore(db.url, schema=db.schema), entry_points=False
        )
        engine.sync_timers(datetime.now(UTC) - timedelta(days=1))  # synced yesterday: due now
        with engine.store.transaction() as tx:
            (occurrence,) = tx.find_timers(kind="schedule")
        assert occurrence.due_at <= datetime.now(UTC)
        moscow = {c.id for c in clients if c.region == "Москва"}
        prefix = f"crmrules-test-{uuid.uuid4().hex[:8]}"
        env = {
            **worker_env(broker, db, regulation, prefix),
            "CELERY_TEST_CHUNK_SIZE": str(SPREAD_CHUNK),
        }
        app, tasks = celery_app.make_app(
            broker.url, broker.backend, db.url, db.schema or "", str(regulation), prefix
        )
        log = tmp_path / "worker.log"
        killed: list[tuple[int, int]] = []
        sql = 'SELECT count(*) FROM "{s}".crmrules_tasks'
        with celery_worker(env, sorted(set(tasks.queues.values())), log) as pid:
            tasks.spread_schedules.delay().get(timeout=DEADLINE)
            deadline = time.monotonic() + DEADLINE
            while time.monotonic() < deadline:
                made = scalar(db, sql)
                if made >= 3 * SPREAD_CHUNK:  # a few chunks in, most of them queued
                    victim = pool_processes(pid)[0]
                    os.kill(victim, signal.SIGKILL)
                    killed.append((victim, made))
                    break
                time.sleep(0.05)
            while time.monotonic() < deadline:  # beat: both entries, every second
                with engine.store.transaction() as tx:
                    settled = tx.get_timer(occurrence.key)
                if settled is not None and settled.status is not TimerStatus.PENDING:
                    break
                tasks.spread_schedules.delay()
                tasks.run_due.delay()
                time.sleep(1.0)
        app.close()
        assert killed, "the occurrence ended before the kill"
        assert killed[0][1] < len(moscow), "the occurrence ended before the kill"

        with engine.store.transaction() as tx:
            made_for = Counter(t.client for t in tx.find_tasks())
            fired = Counter(
                e.client for e in tx.audit_log() if e.rule == "daily-call" and e.kind == "fired"
            )
            settled = tx.get_timer(occurrence.key)
            pending = tx.find_timers(kind="schedule", status=TimerStatus.PENDING)
        assert made_for == dict.fromkeys(moscow, 1), "a client's task is missing or twice"
        assert len(fired) == len(moscow) and set(fired.values()) == {1}
        assert settled is not None and settled.status is TimerStatus.FIRED
        assert len(settled.data["chunks"]) >= len(moscow) // SPREAD_CHUNK
        assert occurrences.summary(settled)["matched"] == len(moscow)
        (following,) = pending
        assert following.due_at == occurrence.due_at + timedelta(days=1)
        engine.store.close()
