"""Code that child processes run in the timer crash test (and its helpers).

It lives in its own module so ``multiprocessing``'s spawn start method can
import it in the child. Each loop does little per iteration (a batch of 20
timers, a few outbox messages), so a SIGKILL from the test lands in the
middle of a batch: some timers leased and not fired, a message sent and not
yet marked sent.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from crmrules import Client, Engine
from crmrules.adapters.notifiers import WebhookNotifier
from crmrules.adapters.sqlalchemy import SQLAlchemyStore
from crmrules.store import OutboxMessage, TimerStatus

REGULATION = """\
version: 1
calendar: {timezone: Europe/Moscow}
templates:
  welcome:
    subject: "Добро пожаловать, {{ client.name }}"
    text: "Здравствуйте, {{ client.name }}! Прошли сутки с регистрации ({{ client.id }})."
rules:
  - id: day-after
    on: {after: 1 day, since: client.created_at}
    then:
      - create_task: {title: "Позвонить {{ client.name }}"}
      - send_mailing: {template: welcome, to: client, channel: email}
"""

#: Timers one ``run_due`` call claims: small, so a kill lands mid-batch.
BATCH = 20
#: Outbox messages one ``deliver`` call sends.
DELIVERY_BATCH = 5
#: A killed sender's messages are sent by another one this soon.
DELIVERY_LEASE = timedelta(seconds=1.5)


def engine(url: str, schema: str | None, regulation: str) -> Engine:
    store = SQLAlchemyStore(url, schema=schema)
    return Engine.from_path(regulation, store=store, entry_points=False)


def create_clients(
    url: str, schema: str | None, regulation: str, prefix: str, count: int, created_at: str
) -> None:
    """Store ``count`` clients created at ``created_at`` (ISO); each plans one timer."""
    runner = engine(url, schema, regulation)
    moment = datetime.fromisoformat(created_at)
    for n in range(count):
        runner.create_client(
            Client(
                id=f"{prefix}{n:05d}",
                name=f"Клиент {prefix}{n}",
                email=f"{prefix}{n}@example.ru",
                created_at=moment,
            ),
            event_id=f"new-{prefix}{n}",
        )
    runner.store.close()


def due_pending(runner: Engine) -> int:
    """How many PENDING timers are due now (leased by someone or not)."""
    now = datetime.now(UTC)
    with runner.store.transaction() as tx:
        pending = tx.find_timers(status=TimerStatus.PENDING)
    return sum(1 for timer in pending if timer.due_at <= now)


def work(
    url: str,
    schema: str | None,
    regulation: str,
    name: str,
    lease_seconds: float,
    until_empty: bool = True,
    go: Any = None,
) -> None:
    """Fire due timers as worker ``name`` until none is left PENDING, then return (exit 0).

    A batch that fires nothing means the due timers left are leased by
    other workers (alive, or killed: their leases expire); with
    ``until_empty`` the worker waits and tries again until no due timer is
    PENDING at all, so it also fires what a killed worker left. ``go`` (a
    multiprocessing Event) holds the worker back until it is set, once the
    engine is ready (for benchmarks).
    """
    runner = engine(url, schema, regulation)
    lease = timedelta(seconds=lease_seconds)
    if go is not None:
        go.wait()
    try:
        while True:
            report = runner.run_due(limit=BATCH, worker=name, lease=lease)
            if report.fired:
                continue
            if not until_empty or due_pending(runner) == 0:
                return
            time.sleep(0.1)
    finally:
        runner.store.close()


class HookNotifier:
    """The ``email`` channel delivered as a POST to a local hook, by the real WebhookNotifier.

    The message goes to ``hook_url`` with its own ``Idempotency-Key``; the
    address it was for travels in its data, so the body is a pure function of
    the message and a duplicate delivery carries the same body.
    """

    def __init__(self, hook_url: str) -> None:
        self.name = "email"
        self.hook_url = hook_url
        self.webhook = WebhookNotifier(name="email", timeout=10.0, allow=["127.0.0.1"])

    def send(self, message: OutboxMessage) -> None:
        data = {**message.data, "address": message.to}
        self.webhook.send(message.model_copy(update={"to": self.hook_url, "data": data}))

    def close(self) -> None:
        self.webhook.close()


def deliver(url: str, schema: str | None, regulation: str, hook_url: str) -> None:
    """Deliver the outbox through the hook until no message is pending, then return (exit 0).

    Messages another sender holds are waited for: if it was killed, its
    short lease ends and they are sent here.
    """
    runner = engine(url, schema, regulation)
    notifier = HookNotifier(hook_url)
    try:
        while True:
            report = runner.deliver({"email": notifier}, limit=DELIVERY_BATCH, lease=DELIVERY_LEASE)
            if report.sent + report.retried + report.failed:
                continue
            with runner.store.transaction() as tx:
                if not tx.due_messages(datetime.now(UTC) + timedelta(days=1), 1):
                    return
            time.sleep(0.1)
    finally:
        notifier.close()
        runner.store.close()
