"""Code that child processes run in the isolation tests.

It lives in its own module so ``multiprocessing``'s spawn start method can
import it in the child.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from crmrules import Engine
from crmrules.adapters.sqlalchemy import SQLAlchemyStore
from crmrules.worker import Worker


def engine(url: str, schema: str | None, regulation: str) -> Engine:
    store = SQLAlchemyStore(url, schema=schema)
    return Engine.from_path(regulation, store=store, entry_points=False)


def fire_due(url: str, schema: str | None, regulation: str) -> None:
    """One ``run_due`` over everything due, as a worker's batch does (exit 0 if it returns)."""
    runner = engine(url, schema, regulation)
    try:
        runner.run_due()
    finally:
        runner.store.close()


def run_worker(
    url: str, schema: str | None, regulation: str, name: str, lease_seconds: float, log: str
) -> None:
    """A real Worker loop until SIGTERM; its log goes to the file ``log``."""
    logging.basicConfig(
        filename=log, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    runner = engine(url, schema, regulation)
    worker = Worker(
        runner,
        interval=0.05,
        batch=50,
        name=name,
        lease=timedelta(seconds=lease_seconds),
        reconnect_first=0.05,
        reconnect_max=1.0,
    )
    worker.install_signals()
    try:
        worker.run()
    finally:
        runner.store.close()


def retry_failed(url: str, schema: str | None, regulation: str, go: Any) -> None:
    """Wait for ``go``, then run every failed rule again (two of these race in a test)."""
    runner = engine(url, schema, regulation)
    try:
        go.wait(30)
        runner.retry_failed()
    finally:
        runner.store.close()
