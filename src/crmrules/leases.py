"""Leases: a worker's claim on timers and outbox messages, kept alive by a heartbeat.

A worker claims due timers (``claim_timers``) and messages
(``claim_messages``) with a lease that ends at ``now + lease``. While it
works, a heartbeat thread renews every lease it holds each ``lease / 3``
seconds (``renew_leases``), so a live worker keeps its claims however long a
batch takes. A worker that dies stops renewing: its leases end at most
``lease`` later and another worker takes the work over. The lease is thus
how soon a dead worker is noticed (default one minute), and the heartbeat
lets it be short without a slow batch losing its claims.

On a simulated clock nothing beats: time moves only when the simulation
moves it, never while a batch runs, so a renewal would set each lease to
the end it already has; starting and joining a thread for every batch was a
good part of a simulated year's time.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import TracebackType

from crmrules.errors import CrmRulesError
from crmrules.store import Store

log = logging.getLogger("crmrules.leases")

#: How long a claim on a timer or a message lasts without a heartbeat renewing it.
DEFAULT_LEASE = timedelta(minutes=1)


def worker_name() -> str:
    """``host:pid``: unique among the processes that share a store."""
    return f"{socket.gethostname()}:{os.getpid()}"


def check_lease(lease: timedelta) -> None:
    if lease <= timedelta(0):
        raise ValueError(f"a lease must be positive, not {lease}")


class Heartbeat:
    """Renews ``worker``'s leases every ``lease / 3`` while the ``with`` block runs.

    Lease ends are ``now() + lease``, with the clock the claims were made by
    (the wall clock unless given). ``thread=False`` (a simulated clock) starts
    no thread: ``renew`` is still there to call. A renewal that
    fails is logged and tried again at the next beat: a database that is
    down briefly costs nothing, one down longer than the lease lets other
    workers take over, which at-least-once delivery and exactly-once timers
    (each fired in one transaction with its status) both allow.
    """

    def __init__(
        self,
        store: Store,
        worker: str,
        lease: timedelta,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        *,
        thread: bool = True,
    ) -> None:
        check_lease(lease)
        self.store = store
        self.worker = worker
        self.lease = lease
        self.now = now
        self.thread = thread
        self.beats = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def renew(self) -> int:
        """Extend the worker's leases once; how many were renewed."""
        with self.store.transaction() as tx:
            renewed = tx.renew_leases(self.worker, self.now() + self.lease)
        self.beats += 1
        return renewed

    def _beat(self) -> None:
        every = self.lease.total_seconds() / 3
        while not self._stop.wait(every):
            try:
                renewed = self.renew()
            except CrmRulesError as error:
                log.warning(
                    "worker %s: leases not renewed (%s); next try in %.1f s",
                    self.worker,
                    error,
                    every,
                )
            else:
                log.debug("worker %s: %d lease(s) renewed", self.worker, renewed)

    def __enter__(self) -> Heartbeat:
        if not self.thread:
            return self
        self._thread = threading.Thread(
            target=self._beat, name=f"crmrules-heartbeat-{self.worker}", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


__all__ = ["DEFAULT_LEASE", "Heartbeat", "check_lease", "worker_name"]
