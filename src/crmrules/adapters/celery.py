"""Celery tasks: events, due timers, delivery and realignment chunks run by Celery workers.

``register(app, make_engine)`` adds the crmrules tasks to the host's own
Celery app and returns a :class:`CeleryTasks` with the calls that send them.
Install with ``pip install "crmrules[celery]"`` and the broker's client
(``celery[redis]``; RabbitMQ needs nothing more).

Each task carries ids and plain JSON data only, and acts once however often
it runs: a task delivered twice, or run again after its worker died
(``acks_late`` with ``reject_on_worker_lost``: the broker hands the message
to another worker), finds its work done or does it then:

* ``crmrules.handle_event``: the event's id makes a second handling a no-op.
* ``crmrules.run_due``: timers are leased (SKIP LOCKED on PostgreSQL) and
  each fires in one transaction with its status.
* ``crmrules.deliver``: messages are leased; delivery is at least once with
  the same idempotency key (see crmrules.delivery).
* ``crmrules.realign_chunk``: a chunk realigned already computes no change.
* ``crmrules.fire_schedule``: a schedule occurrence's timer fires once.

Each task goes to a queue of its own (:data:`QUEUES`), so a host can give
timers and delivery their own workers. ``run_due`` and ``deliver`` are meant
for Celery beat (:meth:`CeleryTasks.beat_schedule`). The engine is built by
the factory once per worker process, after the fork.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import timedelta
from typing import Any

from celery import Celery
from celery.result import AsyncResult

from crmrules.delivery import Notifier
from crmrules.engine import Engine
from crmrules.errors import StoreError
from crmrules.leases import DEFAULT_LEASE, check_lease, worker_name
from crmrules.model import Event
from crmrules.realign import RealignReport, realign_chunk
from crmrules.store import ConflictError

log = logging.getLogger("crmrules.celery")

#: The queue of each task: a worker serves them with ``-Q crmrules.events,...``.
QUEUES: dict[str, str] = {
    "handle_event": "crmrules.events",
    "run_due": "crmrules.timers",
    "deliver": "crmrules.delivery",
    "realign_chunk": "crmrules.chunks",
    "fire_schedule": "crmrules.chunks",
}

#: How long the caller of a fanned-out realignment waits for one chunk's report.
CHUNK_TIMEOUT = 600.0

#: Options every crmrules task has: acknowledged after it ran, handed on if its worker died,
#: retried (with backoff) while the database is unreachable or a race was lost.
TASK_OPTIONS: dict[str, Any] = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "autoretry_for": (StoreError, ConflictError),
    "retry_backoff": True,
    "retry_backoff_max": 60,
    "max_retries": 10,
}


class CeleryTasks:
    """The crmrules tasks on one Celery app, and the calls that send them.

    ``make_engine`` builds the engine in each worker process (its store,
    plugins, host tables); ``notifiers`` gives the notifiers ``deliver``
    sends through (e.g. an SmtpNotifier named ``email``). ``lease`` is how
    long a claim on timers and messages lasts without its worker's heartbeat
    (crmrules.leases): a worker killed mid-task is noticed that soon.
    """

    def __init__(
        self,
        app: Celery,
        make_engine: Callable[[], Engine],
        *,
        notifiers: Callable[[], Mapping[str, Notifier]] | None = None,
        lease: timedelta = DEFAULT_LEASE,
        queues: Mapping[str, str] = QUEUES,
    ) -> None:
        check_lease(lease)
        self.app = app
        self.lease = lease
        self.queues = {**QUEUES, **queues}
        self._make_engine = make_engine
        self._make_notifiers = notifiers
        self._engine: tuple[int, Engine, Mapping[str, Notifier]] | None = None

        def task(name: str, function: Callable[..., Any]) -> Any:
            return app.task(
                name=f"crmrules.{name}", queue=self.queues[name], **TASK_OPTIONS
            )(function)

        self.handle_event = task("handle_event", self._handle_event)
        self.run_due = task("run_due", self._run_due)
        self.deliver = task("deliver", self._deliver)
        self.realign_chunk = task("realign_chunk", self._realign_chunk)
        self.fire_schedule = task("fire_schedule", self._fire_schedule)

    # -- in the worker

    def engine(self) -> Engine:
        """This process's engine, built on first use (after a prefork worker forked)."""
        return self._opened()[1]

    def _opened(self) -> tuple[int, Engine, Mapping[str, Notifier]]:
        pid = os.getpid()
        if self._engine is None or self._engine[0] != pid:
            notifiers = self._make_notifiers() if self._make_notifiers is not None else {}
            self._engine = (pid, self._make_engine(), notifiers)
        return self._engine

    def _handle_event(self, event: dict[str, Any]) -> dict[str, Any]:
        result = self.engine().handle(Event.model_validate(event))
        return {
            "event_id": result.event_id,
            "duplicate": result.duplicate,
            "fired": result.fired,
            "failed": result.failed,
            "errors": result.errors,
        }

    def _run_due(self, limit: int | None = None) -> dict[str, Any]:
        report = self.engine().run_due(
            limit=limit, worker=f"celery:{worker_name()}", lease=self.lease
        )
        if report.handled:
            log.info("celery worker %s: %s", worker_name(), report)
        return {"fired": report.fired, "failed": [list(pair) for pair in report.failed]}

    def _deliver(self, limit: int = 100) -> dict[str, Any]:
        _, engine, notifiers = self._opened()
        report = engine.deliver(
            dict(notifiers), limit=limit, worker=f"celery:{worker_name()}", lease=self.lease
        )
        return {"sent": report.sent, "retried": report.retried, "failed": report.failed}

    def _realign_chunk(self, run_id: str, ids: list[str], dry_run: bool = False) -> dict[str, Any]:
        return realign_chunk(self.engine(), run_id, ids, dry_run=dry_run).to_dict()

    def _fire_schedule(self, timer_key: str) -> dict[str, Any]:
        """Fire one schedule occurrence's timer (its clients in chunks, each once)."""
        return fire_timer(self.engine(), timer_key, f"celery:{worker_name()}", self.lease)

    # -- in the caller

    def send_event(self, event: Event) -> AsyncResult[Any]:
        """Queue an event for a worker; the same event id sent twice acts once."""
        return self.handle_event.delay(event.model_dump(mode="json"))

    def realign_chunks(
        self, run_id: str, chunks: Iterable[list[str]], dry_run: bool
    ) -> Iterator[RealignReport]:
        """Send each chunk as a task, then gather the reports (a ``realign.FanOut``).

        Needs a result backend on the app. Chunks are sent as they are read,
        so the workers start on the first while the last ids are fetched.
        """
        sent = [self.realign_chunk.delay(run_id, ids, dry_run) for ids in chunks]
        for result in sent:
            yield RealignReport.from_dict(result.get(timeout=CHUNK_TIMEOUT))

    def beat_schedule(
        self, *, timers_every: float = 5.0, delivery_every: float = 5.0
    ) -> dict[str, dict[str, Any]]:
        """Entries for ``app.conf.beat_schedule``: run_due and deliver every few seconds.

        Beat only sends; a worker that takes ``run_due`` fires every due
        timer, so overlapping runs share the work through the leases.
        """
        return {
            "crmrules-run-due": {"task": "crmrules.run_due", "schedule": timers_every},
            "crmrules-deliver": {"task": "crmrules.deliver", "schedule": delivery_every},
        }


def fire_timer(engine: Engine, key: str, worker: str, lease: timedelta) -> dict[str, Any]:
    """Fire the pending timer ``key`` if it is due (a schedule occurrence): once.

    The timer is claimed like any due timer, so a second call, or a worker's
    ``run_due`` at the same moment, finds it fired and does nothing.
    """
    with engine.store.transaction() as tx:
        timer = tx.get_timer(key)
    if timer is None:
        return {"fired": 0, "failed": []}
    report = engine.run_due(limit=None, worker=worker, lease=lease, only=key)
    return {"fired": report.fired, "failed": [list(pair) for pair in report.failed]}


def register(
    app: Celery,
    make_engine: Callable[[], Engine],
    *,
    notifiers: Callable[[], Mapping[str, Notifier]] | None = None,
    lease: timedelta = DEFAULT_LEASE,
    queues: Mapping[str, str] = QUEUES,
) -> CeleryTasks:
    """Add the crmrules tasks to ``app``; see :class:`CeleryTasks`."""
    return CeleryTasks(app, make_engine, notifiers=notifiers, lease=lease, queues=queues)


__all__ = ["CHUNK_TIMEOUT", "QUEUES", "TASK_OPTIONS", "CeleryTasks", "register"]
