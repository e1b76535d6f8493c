"""The timer worker: ``Engine.run_due`` in a loop, stopped and reloaded by signals.

``crmrules worker PATH`` runs it. On PostgreSQL any number of workers share
the timers (each claims different ones; a dead worker's leases expire). On
SQLite one worker at a time: a second one is refused with a clear message,
because SQLite has one writer anyway and two pollers would only contend.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import IO

from crmrules.engine import Engine
from crmrules.errors import CrmRulesError
from crmrules.rules.regulation import Regulation

log = logging.getLogger("crmrules.worker")


class WorkerError(CrmRulesError):
    """The worker cannot start (another one holds the SQLite database...)."""


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
    ) -> None:
        self.engine = engine
        self.interval = interval
        self.batch = batch
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self._load = load
        self._stop = threading.Event()
        self._reload = threading.Event()

    def stop(self) -> None:
        """Finish the timer in hand, then return from ``run``."""
        self._stop.set()

    def reload(self) -> None:
        """Load the regulation again before the next batch (and bring timers in step)."""
        self._reload.set()

    def run_once(self) -> int:
        """One batch; the number of timers handled."""
        if self._reload.is_set() and self._load is not None:
            self._reload.clear()
            self.engine.reload(self._load())
            log.info("worker %s: regulation reloaded", self.name)
        report = self.engine.run_due(limit=self.batch, worker=self.name)
        fired = sum(len(result.fired) for result in report.results)
        log.info("worker %s: %d timer(s) handled, %d rule(s) fired", self.name, report.fired, fired)
        return report.fired

    def run(self) -> None:
        """Batches until ``stop``; a full batch goes on at once, a short one waits."""
        self.engine.sync_timers()
        log.info("worker %s: started", self.name)
        while not self._stop.is_set():
            if self.run_once() < self.batch:
                self._stop.wait(self.interval)
        log.info("worker %s: stopped", self.name)

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


__all__ = ["Worker", "WorkerError", "sqlite_single_worker"]
