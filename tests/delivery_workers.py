"""A delivery process for the leased-delivery tests (importable by the spawn start method)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from crmrules.adapters.notifiers import SmtpNotifier
from crmrules.adapters.sqlalchemy import SQLAlchemyStore
from crmrules.delivery import deliver_due

#: Messages claimed per run: small, so a kill finds leases held and not yet sent.
BATCH = 10


def pending(store: SQLAlchemyStore) -> bool:
    """Any message not sent yet, whoever holds it."""
    with store.transaction() as tx:
        return bool(tx.due_messages(datetime.now(UTC) + timedelta(days=1), 1))


def deliver(url: str, schema: str, port: int, name: str, lease_seconds: float) -> None:
    """Send through the SMTP server at ``port`` until the outbox has nothing pending."""
    store = SQLAlchemyStore(url, schema=schema)
    notifier = SmtpNotifier("127.0.0.1", port, sender="crm@example.ru")
    lease = timedelta(seconds=lease_seconds)
    try:
        while True:
            report = deliver_due(
                store, {"email": notifier}, datetime.now(UTC), limit=BATCH, worker=name, lease=lease
            )
            if report.sent + report.retried + report.failed:
                continue
            if not pending(store):
                return
            time.sleep(0.1)  # the rest is held by other senders (or a dead one's lease)
    finally:
        store.close()
