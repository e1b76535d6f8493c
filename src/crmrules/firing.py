"""Firing due timers, and keeping timers in step with a changed regulation.

``Engine.run_due`` and ``Engine.sync_timers`` are here. Planning a timer when
the data that decides it changes is in ``crmrules.timers``; this module
claims due timers with a lease, fires each in its own transaction through
the engine (so a timer's effects, its result and its new status commit
together), and re-plans or cancels timers after a regulation change.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from crmrules import failures, occurrences, timers
from crmrules.calendar import BusinessCalendar
from crmrules.delivery import RetryPolicy
from crmrules.errors import CrmRulesError
from crmrules.leases import DEFAULT_LEASE
from crmrules.model import Event, TaskStatus, trusted
from crmrules.result import EventRecord, Result
from crmrules.rules.conditions import ALWAYS, Condition
from crmrules.rules.regulation import ContactPlan, Rule, Territory
from crmrules.rules.triggers import Trigger
from crmrules.run import apply
from crmrules.store import AuditEntry, ConflictError, Store, Timer, TimerStatus, Transaction

if TYPE_CHECKING:
    from crmrules.engine import Engine
    from crmrules.run import Run


#: A timer that fires later than this after its due time is noted as late in the audit log.
LATE = timedelta(minutes=1)
#: How many due timers one claim takes.
CLAIM_BATCH = 100
#: A timer that cannot fire for a cause that may pass (its subject cannot be read, a rule
#: with ``on_error: refuse`` refused, a race lost five times) waits this long and is tried
#: again; after the last attempt it is FAILED with the reason.
TIMER_RETRY = RetryPolicy(
    max_attempts=5, first_delay=timedelta(seconds=30), max_delay=timedelta(hours=1)
)

log = logging.getLogger("crmrules.timers")


class _NotMine(Exception):
    """The timer was settled or re-leased by another worker meanwhile: leave it."""


class _OwnTransactions(Exception):
    """A schedule's occurrence fires in transactions of its own (crmrules.occurrences),
    never inside another timer's: whoever meets one in a shared transaction backs out."""


class SubjectMissing(CrmRulesError):
    """The client or deal a timer is for is not in the store."""


@dataclass
class DueReport:
    """What one ``run_due`` did: a result per timer fired (or dropped), and those that failed.

    ``failed`` has one ``(timer key, reason)`` per timer that could not fire
    in this run (it is retried later, or FAILED after its last attempt).
    """

    results: list[Result] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def fired(self) -> int:
        return len(self.results)

    @property
    def handled(self) -> int:
        return len(self.results) + len(self.failed)

    def __str__(self) -> str:
        rules = sum(len(r.fired) for r in self.results)
        failed = f", {len(self.failed)} could not fire" if self.failed else ""
        return f"{self.fired} timer(s) handled, {rules} rule(s) fired{failed}"


def plan_rule(
    territory: Territory, index: int, plan: ContactPlan, calendar: BusinessCalendar
) -> Rule:
    """A territory's contact plan, run like a rule: for its clients, every period."""
    return Rule(
        id=f"{territory.id}.contact_plan.{index}",
        description=f"contact plan of {territory.id}: every {plan.every}",
        trigger=Trigger("schedule", every=plan.every),
        condition=Condition(ALWAYS, calendar),
        actions=plan.actions,
        priority=0,
        stop=False,
        once="always",
        cooldown=None,
        enabled=True,
        max_lateness=None,
        location=territory.location,
        order=-1,
    )


def run_due(
    engine: Engine,
    now: datetime | None = None,
    *,
    limit: int | None = None,
    worker: str | None = None,
    lease: timedelta = DEFAULT_LEASE,
) -> DueReport:
    """Fire every timer due at ``now`` (at most ``limit``), earliest first, each in its own
    transaction.

    Timers are claimed in batches with a lease for ``worker``; a worker
    that dies leaves its leases to expire, and another worker fires those
    timers then. Each timer fires once: its result is kept under
    ``timer:<key>`` and its status changes in the same transaction as
    its effects.
    """
    now = timers.utc(now or engine.clock.now())
    worker = worker or f"{socket.gethostname()}:{os.getpid()}"
    report = DueReport()
    while limit is None or report.handled < limit:
        batch = CLAIM_BATCH if limit is None else min(CLAIM_BATCH, limit - report.handled)
        with engine.store.transaction() as tx:
            claimed = tx.claim_timers(now, batch, worker, now + lease)
        for timer in _fire_together(engine, claimed, now, worker, report, lease=lease):
            _fire(engine, timer, now, worker, report)
        if len(claimed) < batch:
            break
    return report


class _Alone(Exception):
    """A timer of a batch needs the one-at-a-time path (it fired before, or is not ours)."""


def _fire_together(
    engine: Engine,
    claimed: list[Timer],
    now: datetime,
    worker: str,
    report: DueReport,
    *,
    lease: timedelta,
) -> list[Timer]:
    """Fire a claimed batch in one transaction; the timers left to fire one at a time.

    One commit for the batch instead of one for each timer; each timer's
    status still changes in the same transaction as its effects, and a crash
    before the commit leaves the whole batch to fire again when its leases
    expire. The batch stops taking timers once a quarter of the lease has
    passed, so that its leases cannot run out under it; the rest are fired
    alone. If anything stops one timer (a failing rule, an unreadable
    subject, a lost race, a result kept from before), nothing of the batch
    is kept and every timer is fired alone by ``_fire``, which gives each
    failure its usual handling.
    """
    # A schedule's occurrence takes transactions of its own (crmrules.occurrences).
    alone = [t for t in claimed if t.kind == "schedule"]
    claimed = [t for t in claimed if t.kind != "schedule"]
    if len(claimed) < 2:
        return claimed + alone
    results: list[Result] = []
    budget = time.monotonic() + lease.total_seconds() / 4
    try:
        with engine.store.transaction() as tx, _set_based(tx, claimed):
            for timer in claimed:
                if results and time.monotonic() > budget:
                    break
                # no savepoints, not even per rule: whatever stops one timer undoes the batch
                result = apply(
                    engine.setting,
                    tx,
                    now,
                    f"timer:{timer.key}",
                    (timer.client, timer.deal),
                    _firing(engine, timer, now, worker),
                    optimistic=True,
                )
                if result.duplicate:
                    raise _Alone()  # its status needs settling: the one-at-a-time path
                results.append(result)
    except Exception as error:  # every cause is handled again, one timer at a time
        log.debug("a batch of %d timers is fired one by one: %r", len(claimed), error)
        return claimed + alone
    report.results.extend(results)
    return claimed[len(results) :] + alone


@contextmanager
def _set_based(tx: Transaction, claimed: list[Timer]) -> Iterator[None]:
    """On a SQL store: the batch's subjects, results and timers locked and read in a few
    statements, and its rows written in one multi-row statement per kind at the end
    (crmrules.adapters.deferred); a row met already stored undoes the batch like any failure."""
    from crmrules.adapters.sqlalchemy import SQLAlchemyTransaction

    if not isinstance(tx, SQLAlchemyTransaction):
        yield
        return
    calls = [(f"timer:{timer.key}", timer.client, timer.deal) for timer in claimed]
    # A pending timer's result is almost never there: it is not read. One that is (the
    # timer fired, its status was written back by a stale copy) fails the batch's INSERT
    # of the results at its end, and every timer is then fired alone, which settles it.
    tx.prepare_calls(calls, [timer.key for timer in claimed], results=False)
    with tx.deferred_writes():
        yield


def _firing(engine: Engine, timer: Timer, now: datetime, worker: str) -> Callable[[Run], None]:
    """The body of a timer's transaction: check the lease, fire, settle the timer."""

    def body(run: Run) -> None:
        current = _locked_timer(run.tx, timer.key)
        if (
            current is None
            or current.status is not TimerStatus.PENDING
            or current.lease_owner != worker
        ):
            raise _NotMine()
        run.now = now
        status, note = _fire_timer(engine, run, current)
        if run.failures and status is TimerStatus.FIRED:
            status, note = _with_failures(current, run, note)
        settled = {"status": status, "fired_at": now, "note": note, "lease_owner": None}
        run.tx.put_timer(timers.updated(current, settled))

    return body


def _locked_timer(tx: Transaction, key: str) -> Timer | None:
    """``tx.lock_timer(key)``; on a store that lends its timers and locks nothing (the memory
    store), the stored timer itself: the firing reads it and settles a new record made
    from it (``timers.updated``), never changing it in place."""
    lend = getattr(tx, "lend_timer", None)
    if lend is not None and getattr(tx, "locks_nothing", False):
        timer: Timer | None = lend(key)
        return timer
    return tx.lock_timer(key)


def _fire(engine: Engine, timer: Timer, now: datetime, worker: str, report: DueReport) -> None:
    """Fire one timer in its own transaction; a failure is the timer's alone.

    A rule that fails is rolled back alone (crmrules.failures) and the timer
    it was for is FAILED with the reason. Anything else that stops the timer
    (its subject cannot be read, a refusing rule, a lost race) is retried with
    backoff, then FAILED. Only a store error (the database is gone) goes up,
    to the worker, which reconnects; the timer's lease is its own to resume.
    A schedule's occurrence fires over the client base a chunk per transaction
    (crmrules.occurrences).
    """
    if timer.kind == "schedule":
        _fire_occurrence(engine, timer, now, worker, report)
        return
    body = _firing(engine, timer, now, worker)

    def fire() -> Result | None:
        try:
            return engine.transact(f"timer:{timer.key}", (timer.client, timer.deal), body)
        except _NotMine:
            return None

    origin = "reading the timer's client or deal"
    result = _guarded(engine, timer, now, worker, report, origin, fire)
    if result is None:
        return
    report.results.append(result)
    if result.duplicate:
        # It fired before, but its status was written back by a stale copy: settle it.
        with engine.store.transaction() as tx:
            current = tx.lock_timer(timer.key)
            if current is not None and current.status is TimerStatus.PENDING:
                note = "fired before; its result is kept under timer:<key>"
                tx.put_timer(
                    current.model_copy(
                        update={"status": TimerStatus.FIRED, "note": note, "lease_owner": None}
                    )
                )


def _fire_occurrence(
    engine: Engine, timer: Timer, now: datetime, worker: str, report: DueReport
) -> None:
    def fire() -> Result | None:
        return occurrences.fire_occurrence(engine, timer, now, worker)

    result = _guarded(engine, timer, now, worker, report, "firing the schedule's occurrence", fire)
    if result is not None:
        report.results.append(result)


def _guarded(
    engine: Engine,
    timer: Timer,
    now: datetime,
    worker: str,
    report: DueReport,
    origin: str,
    fire: Callable[[], Result | None],
) -> Result | None:
    """``fire()``; what stops the timer (not the database going away) is recorded against it."""
    try:
        return fire()
    except ConflictError as error:
        _could_not_fire(engine, timer, now, worker, failures.describe(error), report)
    except failures.INFRASTRUCTURE:
        raise
    except Exception as error:
        reason = failures.describe(error, origin=origin)
        log.warning("timer %s could not fire: %s", timer.key, reason, exc_info=error)
        _could_not_fire(engine, timer, now, worker, reason, report)
    return None


def _with_failures(timer: Timer, run: Run, note: str | None) -> tuple[TimerStatus, str]:
    """The status of a timer some rule runs of which failed: FAILED if its own rule did."""
    first = run.failures[0]
    if timer.kind in ("rule", "plan"):
        return TimerStatus.FAILED, f"rule {first.rule} failed: {first.reason}"
    count = len(run.failures)
    subjects = "client(s)" if timer.kind == "schedule" else "rule run(s)"
    text = f"{count} {subjects} failed (see crmrules failures), first: {first.reason}"
    return TimerStatus.FIRED, text if note is None else f"{note}; {text}"


def _could_not_fire(
    engine: Engine, timer: Timer, now: datetime, worker: str, reason: str, report: DueReport
) -> None:
    """Retry the timer later (backoff), or FAILED after the last attempt; never FIRED."""
    with engine.store.transaction() as tx:
        current = tx.lock_timer(timer.key)
        if (
            current is None
            or current.status is not TimerStatus.PENDING
            or current.lease_owner != worker
        ):
            return
        attempts = current.attempts + 1
        if attempts >= TIMER_RETRY.max_attempts:
            update: dict[str, Any] = {
                "status": TimerStatus.FAILED,
                "note": f"could not fire after {attempts} attempt(s): {reason}",
                "lease_until": None,
            }
        else:
            retry_at = now + TIMER_RETRY.delay(attempts)
            update = {
                "note": f"attempt {attempts} failed: {reason}; next attempt {retry_at.isoformat()}",
                "lease_until": retry_at,  # not claimable before then
            }
        changed = current.model_copy(update={**update, "attempts": attempts, "lease_owner": None})
        tx.put_timer(changed)
        tx.add_audit(
            AuditEntry(
                at=now,
                event_id=f"timer:{timer.key}",
                event_type="timer",
                kind="failed",
                rule=timer.rule,
                message=changed.note or reason,
            )
        )
    report.failed.append((timer.key, changed.note or reason))


def _fire_timer(engine: Engine, run: Run, timer: Timer) -> tuple[TimerStatus, str | None]:
    """Do what the timer is for; its new status and a note (lateness, why not)."""
    if timer.kind == "schedule":
        raise _OwnTransactions(timer.key)
    late = run.now - timer.due_at
    late_note = f"fired {late} late (due {_due_text(engine, timer)})" if late > LATE else None
    event = _timer_event(timer, run.now)
    rule = engine.rules_by_id.get(timer.rule or "") if timer.kind in ("rule", "schedule") else None
    if timer.kind in ("rule", "schedule"):
        if rule is None or not rule.enabled:
            return TimerStatus.CANCELLED, f"rule {timer.rule} is gone or disabled"
        if rule.max_lateness is not None:
            limit = engine.regulation.calendar.add(timer.due_at, rule.max_lateness)
            if run.now > limit:
                message = (
                    f"dropped: due {_due_text(engine, timer)}, {late} late, more than "
                    f"max_lateness {rule.max_lateness}"
                )
                run.result.events.append(
                    EventRecord(event.id, event.type, 0, event.client, event.deal)
                )
                run.outcome(event, rule, "held", message)
                return TimerStatus.DROPPED, message
    if late_note:
        run.note(event, "late", timer.rule, late_note)
    if timer.kind == "rule":
        assert rule is not None
        _check_subject(run, timer, event)
        run.cascade(event, [rule])
    elif timer.kind == "plan":
        return _fire_plan(engine, run, timer, event), late_note
    elif timer.kind == "stage":
        deal = run.tx.get_deal(timer.deal or "")
        entered = deal.stage_entered_at.isoformat() if deal and deal.stage_entered_at else ""
        if deal is None or not timer.key.endswith(f":{deal.stage}:{entered}"):
            return TimerStatus.CANCELLED, "the deal left the stage"
        pipeline = engine.regulation.pipelines.get(deal.pipeline)
        stage = pipeline.stage(deal.stage) if pipeline else None
        if stage is None or stage.deadline is None:
            return TimerStatus.CANCELLED, "the stage has no deadline any more"
        # the event's own copy of the data: the timer may be the store's own (_locked_timer)
        data = dict(timer.data)
        overdue = event.model_copy(update={"type": "deal.stage_overdue", "data": data})
        run.cascade(overdue)
    elif timer.kind == "task":
        task = run.tx.get_task(timer.data.get("task", ""))
        if task is None or task.status is not TaskStatus.OPEN:
            return TimerStatus.CANCELLED, "the task is closed"
        data = {"task": task.id, "kind": task.kind, "title": task.title, "rule": task.rule}
        run.cascade(event.model_copy(update={"type": "task.overdue", "data": data}))
    return TimerStatus.FIRED, late_note


def _due_text(engine: Engine, timer: Timer) -> str:
    """The due moment as the admin reads it, in the calendar's zone (for a note)."""
    return engine.regulation.calendar.local(timer.due_at).isoformat()


def _plain_id(value: str | None) -> bool:
    """An id a record keeps as it is: printable ASCII (so in NFC, no control character)
    of at most 200 characters, as ``RecordId`` allows."""
    return value is None or (0 < len(value) <= 200 and value.isascii() and value.isprintable())


def _timer_event(timer: Timer, now: datetime) -> Event:
    """The event a timer fires as; validated only if an id could be refused or rewritten."""
    event_id = f"timer:{timer.key}"
    values = {
        "id": event_id,
        "type": "timer",
        "occurred_at": now,
        "client": timer.client,
        "deal": timer.deal,
        "data": {"timer": timer.key, "due_at": timer.due_at.isoformat()},
        "before": {},
        "after": {},
    }
    if _plain_id(event_id) and _plain_id(timer.client) and _plain_id(timer.deal):
        return trusted(Event, values)
    return Event.model_validate(values)


def _check_subject(run: Run, timer: Timer, event: Event) -> None:
    """The timer's client and deal must be there: a timer for nothing is retried, then FAILED.

    Read through the run's view of ``event`` (the timer's client and deal), which the
    rule's decision reads next: one read of each for both."""
    client, deal, _ = run.view(event)
    if timer.deal is not None and deal is None:
        raise SubjectMissing(f"deal {timer.deal} is not in the store")
    if timer.client is not None and client is None:
        raise SubjectMissing(f"client {timer.client} is not in the store")


def _fire_plan(engine: Engine, run: Run, timer: Timer, event: Event) -> TimerStatus:
    index = int(timer.data.get("index", 0))
    territory = engine.regulation.territories.get(timer.rule or "")
    if territory is None or index >= len(territory.contact_plan):
        return TimerStatus.CANCELLED
    client, _, _ = run.view(event)  # the client the plan's rule reads next: one read for both
    if client is None or territory.id not in client.territories:
        return TimerStatus.CANCELLED
    run.cascade(event, [engine.plan_rules[territory.id, index]])
    timers.plan_next_contact(run.tx, engine.regulation, timer, index, run.now)
    return TimerStatus.FIRED


def sync_timers(
    engine: Engine, now: datetime | None = None, *, full: bool = False, store: Store | None = None
) -> None:
    """Bring every timer in step with the regulation (see crmrules.sync)."""
    from crmrules import sync

    sync.sync_timers(engine, now, full=full, store=store)


__all__ = [
    "CLAIM_BATCH",
    "LATE",
    "TIMER_RETRY",
    "DueReport",
    "SubjectMissing",
    "plan_rule",
    "run_due",
    "sync_timers",
]
