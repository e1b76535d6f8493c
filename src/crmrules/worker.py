"""The timer worker: ``Engine.run_due`` in a loop, stopped and reloaded by signals.

``crmrules worker PATH`` runs it, or ``crmrules worker --app module:factory``
with the host's own engine (its store, host tables and plugins). On
PostgreSQL any number of workers share the timers (each claims different
ones; a dead worker's leases expire within ``lease``, one minute by default,
since a live worker's heartbeat renews them: crmrules.leases). On SQLite one worker at a time: a
second one is refused with a clear message, because SQLite has one writer
anyway and two pollers would only contend.

Before it fires anything, a worker checks that its store is the one the
timers were planned in (:func:`check_store`): a worker opened on the bare
database of a host that keeps clients in its own tables would otherwise
fire reminders for nobody.

The worker outlives a database outage: a ``StoreError`` (the server
restarted, the network blinked) is logged, the worker waits with backoff
(``reconnect_first`` doubling up to ``reconnect_max`` seconds) and tries
again; the timers it had leased are its own to resume when the database is
back (or expire for other workers if it never comes back). One timer that
fails never stops it: see crmrules.firing.
"""

from __future__ import annotations

import fcntl
import importlib
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import IO, TypeVar

from crmrules.engine import Engine
from crmrules.errors import CrmRulesError, StoreError
from crmrules.leases import DEFAULT_LEASE
from crmrules.rules.regulation import Regulation
from crmrules.store import TimerStatus, Transaction

T = TypeVar("T")

log = logging.getLogger("crmrules.worker")


class WorkerError(CrmRulesError):
    """The worker cannot start (another one holds the SQLite database...)."""


class AppError(WorkerError):
    """``--app module:factory`` does not name a function that gives an Engine."""


#: How many pending timers the start-up check reads the subjects of.
_SAMPLE = 50


def load_app(reference: str) -> Callable[[], Engine]:
    """The factory ``module:function`` names; it is called to build the worker's engine.

    The current folder is importable, as for ``python -m``, so a host runs the
    worker from its project's root.
    """
    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute:
        raise AppError(
            f"--app takes module:function (e.g. myapp.crm:make_engine), not {reference!r}"
        )
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise AppError(f"--app: cannot import {module_name}: {error}") from None
    factory = getattr(module, attribute, None)
    if factory is None or not callable(factory):
        what = "has no" if factory is None else "has a non-callable"
        raise AppError(f"--app: module {module_name} {what} {attribute}") from None

    def build() -> Engine:
        engine = factory()
        if not isinstance(engine, Engine):
            raise AppError(f"--app: {reference}() did not give an Engine but {engine!r}")
        return engine

    return build


def _present(tx: Transaction, client: str | None, deal: str | None) -> bool:
    """The timer's subject is in the store; a row that is there but cannot be read counts
    as there (firing retries it and then fails it with the reason)."""
    try:
        if deal is not None:
            return tx.get_deal(deal) is not None
        return client is not None and tx.get_client(client) is not None
    except Exception:  # a broken row is the firing's to report, not a mapping mismatch
        return True


def check_store(engine: Engine) -> None:
    """Refuse a store whose tables do not match the regulation and the timers in it.

    Two mismatches are caught: host tables that lack a column for a custom
    field the regulation declares (rules would read it as empty), and
    pending timers none of whose clients or deals the store can read (the
    worker was opened without the host's mapping).
    """
    records = getattr(engine.store, "records", None)
    for namespace in ("client", "deal"):
        table = getattr(records, f"{namespace}s", None) if records is not None else None
        if table is None:
            continue
        custom = [s for s in engine.regulation.fields.of(namespace) if not s.builtin]
        missing = [s.path for s in custom if s.key not in table.columns]
        if missing:
            raise WorkerError(
                f"The regulation declares {', '.join(missing)}, but the host table "
                f"{table.sa_table.name} has no column for it in the {namespace}s mapping. "
                "Add the column to the mapping (HostTable columns), or the rules would read "
                "it as empty."
            )
    with engine.store.transaction() as tx:
        subjects = [
            (t.client, t.deal)
            for t in tx.find_timers(status=TimerStatus.PENDING, limit=_SAMPLE)
            if t.client is not None or t.deal is not None
        ]
        readable = [subject for subject in subjects if _present(tx, *subject)]
    if subjects and not readable:
        names = ", ".join(sorted({c or d or "" for c, d in subjects})[:5])
        raise WorkerError(
            f"Pending timers are for clients or deals this store cannot read ({names}...). "
            "If the host keeps them in its own tables, start the worker with the host's "
            "engine: crmrules worker --app package.module:make_engine. Nothing was fired."
        )


class Worker:
    """Fires due timers every ``interval`` seconds until told to stop."""

    def __init__(
        self,
        engine: Engine,
        *,
        interval: float = 5.0,
        batch: int = 100,
        name: str | None = None,
        load: Callable[[], Regulation] | None = None,
        lease: timedelta = DEFAULT_LEASE,
        reconnect_first: float = 0.5,
        reconnect_max: float = 30.0,
    ) -> None:
        self.engine = engine
        self.interval = interval
        self.batch = batch
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.lease = lease
        self.reconnect_first = reconnect_first
        self.reconnect_max = reconnect_max
        self._load = load
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._failures = 0  # store errors in a row

    def stop(self) -> None:
        """Finish the timer in hand, then return from ``run``."""
        self._stop.set()

    def reload(self) -> None:
        """Load the regulation again before the next batch (and bring timers in step)."""
        self._reload.set()

    def run_once(self) -> int:
        """One batch; the number of timers handled (fired, dropped or failed)."""
        if self._reload.is_set() and self._load is not None:
            self._reload.clear()
            try:
                regulation = self._load()
            except CrmRulesError as error:
                log.error(
                    "worker %s: regulation not reloaded, the old one stays: %s", self.name, error
                )
            else:
                changes = self.engine.reload(regulation)
                log.info(
                    "worker %s: regulation reloaded (version %s): %s",
                    self.name,
                    regulation.release.describe(),
                    changes.summary(),
                )
        report = self.engine.run_due(limit=self.batch, worker=self.name, lease=self.lease)
        log.info("worker %s: %s", self.name, report)
        for key, reason in report.failed:
            log.warning("worker %s: timer %s could not fire: %s", self.name, key, reason)
        return report.handled

    def start(self) -> None:
        """Check the store, then bring the timers in step with the regulation."""
        check_store(self.engine)
        self.engine.sync_timers()

    def run(self) -> None:
        """Batches until ``stop``; a full batch goes on at once, a short one waits.

        A store error does not end the loop: it is logged, and the worker
        tries again after a backoff until the database answers.
        """
        while not self._stop.is_set() and self._survive(self._sync) is None:
            pass
        log.info("worker %s: started", self.name)
        while not self._stop.is_set():
            handled = self._survive(self.run_once)
            if handled is not None and handled < self.batch:
                self._stop.wait(self.interval)
        log.info("worker %s: stopped", self.name)

    def _sync(self) -> bool:
        self.start()
        return True

    def _survive(self, step: Callable[[], T]) -> T | None:
        """``step()``, or None after a store error (logged, then a backoff wait)."""
        try:
            value = step()
        except StoreError as error:
            self._failures += 1
            delay = min(self.reconnect_first * 2 ** (self._failures - 1), self.reconnect_max)
            log.warning(
                "worker %s: the database is unavailable (%s); attempt %d, trying again in %.2f s",
                self.name,
                error,
                self._failures,
                delay,
            )
            self._stop.wait(delay)
            return None
        if self._failures:
            log.info(
                "worker %s: the database is reachable again after %d failed attempt(s); going on",
                self.name,
                self._failures,
            )
            self._failures = 0
        return value

    def install_signals(self) -> None:
        """SIGTERM and SIGINT stop gracefully; SIGHUP reloads the regulation."""

        def stop(signum: int, frame: FrameType | None) -> None:
            log.info("worker %s: %s received, stopping", self.name, signal.Signals(signum).name)
            self.stop()

        def reload(signum: int, frame: FrameType | None) -> None:
            self.reload()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, reload)


@contextmanager
def sqlite_single_worker(database: Path | None) -> Iterator[None]:
    """Hold an exclusive lock beside a SQLite file for as long as the worker runs."""
    if database is None:
        yield
        return
    lock_path = database.with_name(database.name + ".worker-lock")
    handle: IO[str] = open(lock_path, "w")  # noqa: SIM115 (held for the whole run)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise WorkerError(
                f"Another crmrules worker is already running on {database}. SQLite runs one "
                "worker at a time; stop the other one, or move to PostgreSQL to run several."
            ) from None
        yield
    finally:
        handle.close()


__all__ = ["AppError", "Worker", "WorkerError", "check_store", "load_app", "sqlite_single_worker"]
