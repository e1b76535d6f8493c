"""The Celery app the Celery tests start workers on: crmrules tasks on a PostgreSQL store.

A worker imports it as ``celery -A celery_app worker`` with its settings in
the environment (``CELERY_TEST_*``, set by tests/test_celery.py); the test
process builds the same app with :func:`make_app` to send the tasks.
"""

from __future__ import annotations

import os
from datetime import timedelta

from celery import Celery

from crmrules.adapters.celery import QUEUES, CeleryTasks, register
from crmrules.adapters.notifiers import SmtpNotifier
from crmrules.adapters.sqlalchemy import SQLAlchemyStore
from crmrules.delivery import Notifier
from crmrules.engine import Engine
from crmrules.occurrences import CHUNK_SIZE

#: Short, so the timers a killed worker held are taken over within the test.
LEASE = timedelta(seconds=2)


def queues(prefix: str) -> dict[str, str]:
    """The crmrules queues under a prefix of the test's own (other runs share the broker)."""
    return {task: f"{prefix}.{queue}" for task, queue in QUEUES.items()}


def make_app(
    broker: str,
    backend: str,
    store: str,
    schema: str,
    regulation: str,
    prefix: str,
    *,
    smtp_port: int | None = None,
    chunk_size: int = CHUNK_SIZE,
) -> tuple[Celery, CeleryTasks]:
    """The app; ``smtp_port``: deliver e-mail to the test's SMTP server on that port."""
    app = Celery("crmrules_test", broker=broker, backend=backend)
    app.conf.update(
        worker_prefetch_multiplier=1,  # a killed process holds one task, not a batch
        broker_transport_options={"visibility_timeout": 60},
        result_expires=600,
        worker_hijack_root_logger=False,
    )

    def make_engine() -> Engine:
        return Engine.from_path(
            regulation, store=SQLAlchemyStore(store, schema=schema), entry_points=False
        )

    def notifiers() -> dict[str, Notifier]:
        if smtp_port is None:
            return {}
        return {"email": SmtpNotifier("127.0.0.1", smtp_port, sender="crm@example.ru")}

    tasks = register(
        app,
        make_engine,
        notifiers=notifiers,
        lease=LEASE,
        queues=queues(prefix),
        chunk_size=chunk_size,
    )
    return app, tasks


if "CELERY_TEST_BROKER" in os.environ:
    app, tasks = make_app(
        os.environ["CELERY_TEST_BROKER"],
        os.environ["CELERY_TEST_BACKEND"],
        os.environ["CELERY_TEST_STORE"],
        os.environ["CELERY_TEST_SCHEMA"],
        os.environ["CELERY_TEST_REGULATION"],
        os.environ["CELERY_TEST_PREFIX"],
        smtp_port=int(os.environ["CELERY_TEST_SMTP_PORT"])
        if "CELERY_TEST_SMTP_PORT" in os.environ
        else None,
        chunk_size=int(os.environ.get("CELERY_TEST_CHUNK_SIZE", CHUNK_SIZE)),
    )
