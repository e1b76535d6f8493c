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
* ``crmrules.fire_chunk``: one chunk of a schedule occurrence
  (crmrules.occurrences): a chunk marked done is never run again.
* ``crmrules.spread_schedules``: opens the due schedule occurrences and sends
  their chunks not done yet as ``fire_chunk`` tasks (a ``run_due`` that
  meets the same occurrence shares its chunks, each still run once).

Each task goes to its queue in :data:`QUEUES` (events, timers, delivery,
chunks), so a host can give timers and delivery workers of their own.
``run_due`` and ``deliver`` are meant for Celery beat
(:meth:`CeleryTasks.beat_schedule`). The engine is built by the factory
once per worker process, after the fork.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import timedelta
from typing import Any

from crmrules.errors import MissingExtraError, StoreError

try:
    from celery import Celery, Task
    from celery.result import AsyncResult
except ImportError as missing:  # pragma: no cover (the celery extra is installed in tests)
    raise MissingExtraError(
        f"crmrules.adapters.celery needs the 'celery' package ({missing}). "
        "Install it with: pip install 'crmrules[celery]'"
    ) from None

from crmrules import occurrences
from crmrules.delivery import Notifier
from crmrules.engine import Engine
from crmrules.leases import DEFAULT_LEASE, check_lease, worker_name
from crmrules.model import Event
from crmrules.realign import RealignReport, realign_chunk
from crmrules.store import ConflictError, TimerStatus

log = logging.getLogger("crmrules.celery")

#: The queue of each task: a worker serves them with ``-Q crmrules.events,...``.
QUEUES: dict[str, str] = {
    "handle_event": "crmrules.events",
    "run_due": "crmrules.timers",
    "deliver": "crmrules.delivery",
    "realign_chunk": "crmrules.chunks",
    "fire_chunk": "crmrules.chunks",
    "spread_schedules": "crmrules.timers",
}

#: How long the caller of a fanned-out realignment waits for one chunk's report.
CHUNK_TIMEOUT = 600.0

#: Errors a task is retried for (with backoff, up to MAX_RETRIES times): the database
#: is unreachable, or another process changed the same rows.
RETRY_FOR = (StoreError, ConflictError)
MAX_RETRIES = 10


class CeleryTasks:
    """The crmrules tasks on one Celery app, and the calls that send them.

    ``make_engine`` builds the engine in each worker process (its store,
    plugins, host tables); ``notifiers`` gives the notifiers ``deliver``
    sends through (e.g. an SmtpNotifier named ``email``). ``lease`` is how
    long a claim on timers and messages lasts without its worker's heartbeat
    (crmrules.leases): a worker killed mid-task is noticed that soon.
    ``chunk_size`` is how many clients a ``fire_chunk`` task takes when this
    app opens a schedule occurrence (whoever opens it first fixes its chunks).
    """

    def __init__(
        self,
        app: Celery,
        make_engine: Callable[[], Engine],
        *,
        notifiers: Callable[[], Mapping[str, Notifier]] | None = None,
        lease: timedelta = DEFAULT_LEASE,
        queues: Mapping[str, str] = QUEUES,
        chunk_size: int = occurrences.CHUNK_SIZE,
    ) -> None:
        check_lease(lease)
        if chunk_size < 1:
            raise ValueError(f"a chunk holds at least one client, not {chunk_size}")
        self.app = app
        self.lease = lease
        self.chunk_size = chunk_size
        self.queues = {**QUEUES, **queues}
        self._make_engine = make_engine
        self._make_notifiers = notifiers
        self._engine: tuple[int, Engine, Mapping[str, Notifier]] | None = None

        def task(name: str, method: Callable[..., Any]) -> Task[Any, Any]:
            # A plain function of the task's arguments (Celery checks them against it).
            @functools.wraps(method)
            def function(*args: Any, **kwargs: Any) -> Any:
                return method(*args, **kwargs)

            # Acknowledged after it ran, handed to another worker if this one died.
            made: Task[Any, Any] = app.task(
                name=f"crmrules.{name}",
                acks_late=True,
                reject_on_worker_lost=True,
                autoretry_for=RETRY_FOR,
                retry_backoff=True,
                retry_backoff_max=60,
                max_retries=MAX_RETRIES,
            )(function)
            return made

        _route(app, {f"crmrules.{name}": {"queue": queue} for name, queue in self.queues.items()})
        self.handle_event = task("handle_event", self._handle_event)
        self.run_due = task("run_due", self._run_due)
        self.deliver = task("deliver", self._deliver)
        self.realign_chunk = task("realign_chunk", self._realign_chunk)
        self.fire_chunk = task("fire_chunk", self._fire_chunk)
        self.spread_schedules = task("spread_schedules", self._spread_schedules)

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

    def _fire_chunk(self, chunk: dict[str, Any]) -> dict[str, Any]:
        return occurrences.fire_chunk(self.engine(), occurrences.Chunk.from_dict(chunk)).to_dict()

    def _spread_schedules(self) -> int:
        """Open each due schedule occurrence and send its chunks; how many were sent."""
        engine = self.engine()
        now = engine.clock.now()
        with engine.store.transaction() as tx:
            due = [
                t.key
                for t in tx.find_timers(kind="schedule", status=TimerStatus.PENDING)
                if t.due_at <= now
            ]
        sent = 0
        for key in due:
            for chunk in self._undone(key):
                self.fire_chunk.delay(chunk.to_dict())
                sent += 1
        return sent

    def _undone(self, timer_key: str) -> list[occurrences.Chunk]:
        """The occurrence's chunks not marked done yet (opening it if no one has)."""
        engine = self.engine()
        chunks = occurrences.plan_chunks(engine, timer_key, self.chunk_size)
        with engine.store.transaction() as tx:
            timer = tx.get_timer(timer_key)
        done = timer.data.get("done", {}) if timer is not None else {}
        return [chunk for chunk in chunks if str(chunk.seq) not in done]

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

    def fire_occurrence(self, timer_key: str) -> list[dict[str, Any]]:
        """Fire the schedule occurrence ``timer_key`` over the workers, a task per chunk.

        Opens the occurrence here (crmrules.occurrences.plan_chunks), sends
        each chunk, and gathers the chunk reports (needs a result backend).
        """
        chunks = occurrences.plan_chunks(self.engine(), timer_key, self.chunk_size)
        sent = [self.fire_chunk.delay(chunk.to_dict()) for chunk in chunks]
        return [dict(result.get(timeout=CHUNK_TIMEOUT)) for result in sent]

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

    def spread_schedule(self, *, every: float = 5.0) -> dict[str, dict[str, Any]]:
        """A beat entry for ``spread_schedules``: occurrences fired by many workers."""
        return {
            "crmrules-spread-schedules": {"task": "crmrules.spread_schedules", "schedule": every}
        }


def _route(app: Celery, routes: dict[str, dict[str, str]]) -> None:
    """Add the crmrules routes to ``task_routes``; routes the host set before win."""
    existing = app.conf.task_routes
    if existing is None:
        app.conf.task_routes = routes
    elif isinstance(existing, list | tuple):
        app.conf.task_routes = (*existing, routes)
    else:
        app.conf.task_routes = (existing, routes)


def register(
    app: Celery,
    make_engine: Callable[[], Engine],
    *,
    notifiers: Callable[[], Mapping[str, Notifier]] | None = None,
    lease: timedelta = DEFAULT_LEASE,
    queues: Mapping[str, str] = QUEUES,
    chunk_size: int = occurrences.CHUNK_SIZE,
) -> CeleryTasks:
    """Add the crmrules tasks to ``app``; see :class:`CeleryTasks`."""
    return CeleryTasks(
        app, make_engine, notifiers=notifiers, lease=lease, queues=queues, chunk_size=chunk_size
    )


__all__ = ["CHUNK_TIMEOUT", "MAX_RETRIES", "QUEUES", "RETRY_FOR", "CeleryTasks", "register"]
