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
from crmrules.adapters.sqlalchemy import SQLAlchemyStore
from crmrules.engine import Engine

#: Short, so the timers a killed worker held are taken over within the test.
LEASE = timedelta(seconds=2)


def queues(prefix: str) -> dict[str, str]:
    """The crmrules queues under a prefix of the test's own (other runs share the broker)."""
    return {task: f"{prefix}.{queue}" for task, queue in QUEUES.items()}


def make_app(
    broker: str, backend: str, store: str, schema: str, regulation: str, prefix: str
) -> tuple[Celery, CeleryTasks]:
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

    return app, register(app, make_engine, lease=LEASE, queues=queues(prefix))


if "CELERY_TEST_BROKER" in os.environ:
    app, tasks = make_app(
        os.environ["CELERY_TEST_BROKER"],
        os.environ["CELERY_TEST_BACKEND"],
        os.environ["CELERY_TEST_STORE"],
        os.environ["CELERY_TEST_SCHEMA"],
        os.environ["CELERY_TEST_REGULATION"],
        os.environ["CELERY_TEST_PREFIX"],
    )
