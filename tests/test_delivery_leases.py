"""Four delivery processes share one outbox on PostgreSQL, counted at a real SMTP server.

Each message is claimed with a lease (FOR UPDATE SKIP LOCKED), so in the
normal case each of the 2,000 messages reaches the server exactly once. With
one sender SIGKILLed mid-run, every message still arrives, at least once,
and a message that arrives twice is the same e-mail (same Message-ID, from
the idempotency key, and the same bytes).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from multiprocessing.process import BaseProcess
from pathlib import Path

import pytest

import delivery_workers
from crmrules.adapters.notifiers import message_id
from crmrules.adapters.sqlalchemy import SQLAlchemyStore
from crmrules.store import MessageStatus, OutboxMessage
from databases import Database, open_database
from localservers import MailHandler, free_port, smtp_server

SPAWN = multiprocessing.get_context("spawn")
MESSAGES = 2000
SENDERS = 4
DEADLINE = 240.0


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Database]:
    """A fresh PostgreSQL schema whose outbox holds MESSAGES due e-mails."""
    with open_database("postgresql", tmp_path) as db:
        now = datetime.now(UTC) - timedelta(minutes=1)
        with SQLAlchemyStore(db.url, schema=db.schema) as store, store.transaction() as tx:
            for n in range(MESSAGES):
                tx.enqueue(
                    OutboxMessage(
                        key=f"m-{n:05d}",
                        channel="email",
                        to=f"client{n}@example.ru",
                        subject=f"Письмо {n}",
                        text="Здравствуйте!",
                        next_attempt_at=now,
                        created_at=now,
                    )
                )
        try:
            yield db
        finally:
            for child in multiprocessing.active_children():
                child.kill()
                child.join(10)


def senders(db: Database, port: int, lease: float) -> list[BaseProcess]:
    children = [
        SPAWN.Process(
            target=delivery_workers.deliver, args=(db.url, db.schema, port, f"sender-{n}", lease)
        )
        for n in range(SENDERS)
    ]
    for child in children:
        child.start()
    return children


def join(children: list[BaseProcess]) -> None:
    deadline = time.monotonic() + DEADLINE
    for child in children:
        child.join(max(deadline - time.monotonic(), 0.1))
    assert all(child.exitcode is not None for child in children), "a sender hung"


def statuses(db: Database) -> Counter[MessageStatus]:
    with SQLAlchemyStore(db.url, schema=db.schema) as store, store.transaction() as tx:
        return Counter(
            m.status
            for m in (tx.get_message(f"m-{n:05d}") for n in range(MESSAGES))
            if m is not None
        )


def arrived(handler: MailHandler) -> Counter[str]:
    return Counter(str(mail.parsed()["Message-ID"]) for mail in handler.received)


def expected_ids() -> set[str]:
    return {message_id(f"m-{n:05d}", "crmrules.local") for n in range(MESSAGES)}


def test_four_senders_send_each_message_once(outbox: Database) -> None:
    handler = MailHandler()
    port = free_port()
    with smtp_server(handler, port):
        children = senders(outbox, port, lease=60.0)
        join(children)
    assert [child.exitcode for child in children] == [0] * SENDERS
    counts = arrived(handler)
    assert set(counts) == expected_ids()
    assert set(counts.values()) == {1}, "a message was sent twice"
    assert statuses(outbox) == {MessageStatus.SENT: MESSAGES}


def test_a_killed_sender_s_messages_are_sent_by_the_others(outbox: Database) -> None:
    handler = MailHandler()
    port = free_port()
    with smtp_server(handler, port):
        children = senders(outbox, port, lease=2.0)
        deadline = time.monotonic() + DEADLINE
        while len(handler.received) < MESSAGES // 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert children[0].pid is not None
        os.kill(children[0].pid, signal.SIGKILL)
        assert len(handler.received) < MESSAGES, "delivery finished before the kill"
        join(children[1:])
    assert children[0].exitcode == -signal.SIGKILL
    assert [child.exitcode for child in children[1:]] == [0] * (SENDERS - 1)
    counts = arrived(handler)
    assert set(counts) == expected_ids(), "a message never arrived"
    bodies: dict[str, set[bytes]] = {}
    for mail in handler.received:
        bodies.setdefault(str(mail.parsed()["Message-ID"]), set()).add(mail.content)
    differing = [key for key, found in bodies.items() if len(found) > 1]
    assert not differing, f"a message sent twice differed: {differing[:3]}"
    assert statuses(outbox) == {MessageStatus.SENT: MESSAGES}
