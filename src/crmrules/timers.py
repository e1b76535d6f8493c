"""When time-based work falls due: time triggers, schedules, and the keys timers go by.

Pure functions over the calendar, and the planning of timers when the data
that decides them changes; claiming and firing them is ``crmrules.firing``.
Wall-clock arithmetic is done in the calendar's time zone, so "every day at
09:00" stays 09:00 across a DST change and "7 days after" keeps the
wall-clock time; every due time is handed out in UTC, so comparing two of
them never depends on the wall clock.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Collection, Iterator
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any, TypeVar

from pydantic import BaseModel

from crmrules.calendar import BusinessCalendar, Duration
from crmrules.model import Client, Deal, Task, TaskStatus, trusted
from crmrules.rules.regulation import Regulation, Rule
from crmrules.rules.triggers import Cron, Trigger
from crmrules.store import AuditEntry, Timer, TimerStatus, Transaction

log = logging.getLogger("crmrules.timers")

#: How far ahead a cron expression is searched: 29 years covers "29 February on a Monday".
CRON_SEARCH_DAYS = 366 * 29


M = TypeVar("M", bound=BaseModel)


def updated(record: M, update: dict[str, Any]) -> M:
    """``record.model_copy(update=update)`` for values of the fields' types, made as
    ``trusted`` makes a record, without pydantic's generic copy (a timer settled, a
    schedule's event for each client). As with ``model_copy``, the two share the values
    not updated: ``record`` is the caller's own copy, or nobody changes either."""
    return trusted(type(record), {**record.__dict__, **update})


def utc(moment: datetime) -> datetime:
    """The same instant in UTC.

    Python compares and subtracts two datetimes of one zone by their wall
    clock, ignoring ``fold``, so 02:15 CEST and 02:15 CET would be equal in
    the repeated autumn hour. Every due time leaves this module in UTC.
    """
    return moment.astimezone(UTC)


def anchor_moment(value: Any, calendar: BusinessCalendar) -> datetime:
    """A date field's value as a moment: a date alone is its midnight in the calendar's zone."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return calendar.start_of_day(value)
    raise TypeError(f"not a date or datetime: {value!r}")


def anchor_due(trigger: Trigger, value: Any, calendar: BusinessCalendar) -> datetime:
    """When an ``{after: D, since: F}`` / ``{before: D, of: F}`` rule falls due for F = value."""
    assert trigger.offset is not None
    moment = anchor_moment(value, calendar)
    if trigger.kind == "after":
        return utc(calendar.add(moment, trigger.offset))
    return utc(calendar.subtract(moment, trigger.offset))


def next_schedule(trigger: Trigger, after: datetime, calendar: BusinessCalendar) -> datetime:
    """The first occurrence of an ``every`` or ``cron`` schedule strictly after ``after``.

    ``{every: D, at: HH:MM}``: the first ``at`` after ``after``; without
    ``at``, one period after ``after``. That first occurrence starts the
    series: the n-th occurrence is n periods after it (see :func:`occurrence`).
    """
    if trigger.cron is not None:
        return next_cron(trigger.cron, after, calendar)
    assert trigger.every is not None
    if trigger.at is None:
        return utc(calendar.add(after, trigger.every))
    working = _on_working_days(trigger.every)
    day = calendar.local(after).date()
    if working:
        day = _working_day_from(calendar, day)
    candidate = calendar.combine(day, trigger.at)
    if utc(candidate) <= utc(after):
        day += timedelta(days=1)
        candidate = calendar.combine(
            _working_day_from(calendar, day) if working else day, trigger.at
        )
    return utc(candidate)


def _on_working_days(every: Duration) -> bool:
    """``{every: N business days, at: HH:MM}``: every N-th working day at that time."""
    return bool(every.business_days) and not every.seconds


def _working_day_from(calendar: BusinessCalendar, day: date) -> date:
    """``day`` if it is a working day, else the next one."""
    return calendar.next_opening(calendar.start_of_day(day)).date()


def occurrence(
    every: Duration, at: time | None, start: datetime, n: int, calendar: BusinessCalendar
) -> datetime:
    """The n-th occurrence of a series that started at ``start`` (n = 0).

    Counted from the start, never chained from the previous occurrence: a
    month clamped to the 28th does not pull the next one back (01-31,
    02-28, 03-31), and an ``at`` time moved by the spring DST gap is
    applied anew to the next day (03:30 once, then 02:30 again).

    Remembered per calendar (:func:`_remembered`): the clients that entered a contact
    plan together (a realignment, an import) share one series, worked out once.
    """
    # By its UTC instant: two equal moments of one zone in the repeated autumn hour are
    # equal to Python (wall clock, fold ignored) but are not the same start.
    return _remembered(every, at, utc(start), n, calendar)


def worked_out(
    every: Duration, at: time | None, start: datetime, n: int, calendar: BusinessCalendar
) -> datetime:
    """:func:`occurrence` computed afresh (the oracle of its property test)."""
    period = Duration(
        months=every.months * n,
        days=every.days * n,
        business_days=every.business_days * n,
        seconds=every.seconds * n,
    )
    if at is not None and _on_working_days(every):
        # Counted in whole working days from the start's day, whatever ``at`` is: from
        # a time outside working hours business days would count from the next
        # opening and skip a day.
        moment = calendar.add(calendar.start_of_day(calendar.local(start).date()), period)
    else:
        moment = calendar.add(start, period)
    if at is not None and not every.seconds:
        moment = calendar.combine(calendar.local(moment).date(), at)
    return utc(moment)


#: How many occurrences are remembered (about 300 bytes each).
REMEMBERED = 8192
_remembered = functools.lru_cache(maxsize=REMEMBERED)(worked_out)


def next_occurrence(
    every: Duration,
    at: time | None,
    start: datetime,
    n: int,
    now: datetime,
    calendar: BusinessCalendar,
) -> tuple[int, datetime]:
    """The first occurrence after the n-th that is later than ``now``: its number and time.

    A worker that was down does not replay every missed occurrence: the one
    that was due fires, then the series resumes from now.
    """
    now = utc(now)
    k = n + 1
    if every.seconds and not (every.months or every.days or every.business_days):
        # Elapsed time only: jump straight past now instead of stepping.
        k = max(k, (now - utc(start)) // timedelta(seconds=every.seconds))
    moment = occurrence(every, at, start, k, calendar)
    while moment <= now:
        k += 1
        moment = occurrence(every, at, start, k, calendar)
    return k, moment


def following(
    trigger: Trigger, due: datetime, now: datetime, calendar: BusinessCalendar
) -> datetime:
    """The next cron occurrence after one that fell due at ``due``, never in the past of ``now``."""
    assert trigger.cron is not None
    return next_cron(trigger.cron, max(utc(due), utc(now)), calendar)


def next_cron(cron: Cron, after: datetime, calendar: BusinessCalendar) -> datetime:
    """The first moment strictly after ``after`` that the cron expression allows (UTC).

    Local wall-clock times follow Vixie cron's rules for DST changes: in the
    repeated autumn hour a job with ``*`` in its minute or hour field runs
    in both passes, a job at a fixed time runs once (the first pass); in the
    spring gap a fixed-time job that would have run runs when the clocks
    jump, and a ``*`` job runs only at the times that exist.
    """
    after = utc(after)
    day = calendar.local(after).date()
    for _ in range(CRON_SEARCH_DAYS):
        if _day_matches(cron, day):
            for moment in _cron_moments(cron, day, calendar):
                if moment > after:
                    return moment
        day += timedelta(days=1)
    raise ValueError(f"cron {cron.text!r} never falls due")


def _cron_moments(cron: Cron, day: date, calendar: BusinessCalendar) -> Iterator[datetime]:
    """The instants (UTC, in order) at which the cron fires on a matching local ``day``."""
    times = [time(hour, minute) for hour in sorted(cron.hours) for minute in sorted(cron.minutes)]
    tz = calendar.tz
    midnight = datetime.combine(day, time(0), tzinfo=tz)
    next_midnight = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
    if midnight.utcoffset() == next_midnight.utcoffset():  # no DST change that day
        for at in times:
            yield datetime.combine(day, at, tzinfo=tz).astimezone(UTC)
        return
    moments: set[datetime] = set()
    for at in times:
        wall = datetime.combine(day, at, tzinfo=tz)
        first = wall.replace(fold=0).astimezone(UTC)
        second = wall.replace(fold=1).astimezone(UTC)
        if first == second:
            moments.add(first)
        elif first < second:  # the repeated hour: both passes for a * job, else the first
            moments.add(first)
            if cron.wildcard:
                moments.add(second)
        elif not cron.wildcard:  # the gap: a fixed-time job runs when the clocks jump
            moments.add(_jump(second, first, tz))
    yield from sorted(moments)


def _jump(before: datetime, after: datetime, tz: tzinfo) -> datetime:
    """The instant of the DST jump between two UTC instants (to the minute)."""
    low, high = before, after  # local offset differs at the two ends
    offset = after.astimezone(tz).utcoffset()
    while high - low > timedelta(minutes=1):
        middle = low + (high - low) / 2
        middle = middle.replace(second=0, microsecond=0)
        if middle.astimezone(tz).utcoffset() == offset:
            high = middle
        else:
            low = middle
    return high


def _day_matches(cron: Cron, day: date) -> bool:
    if day.month not in cron.months:
        return False
    by_day = day.day in cron.days
    by_weekday = day.weekday() in cron.weekdays
    if cron.day_or_weekday:
        return by_day or by_weekday
    return by_day and by_weekday


# --- planning: which timers a record should have, kept in step with it ------------------------


def plan_failed(
    tx: Transaction, now: datetime, rule: str | None, subject: str, key: str, error: Exception
) -> None:
    """A timer that cannot be planned (its date is out of the calendar's range) is recorded
    against its rule in the audit log; the record's other timers and the call go on."""
    message = f"could not plan the timer of rule {rule} for {subject}: {error}"
    log.warning(message)
    tx.add_audit(
        AuditEntry(
            at=now,
            event_id=f"plan:{key}",
            event_type="timer.plan_failed",
            kind="error",
            rule=rule,
            message=message,
        )
    )


def _iso(value: Any) -> str:
    return value.isoformat() if isinstance(value, date | datetime) else str(value)


def _replace(
    tx: Transaction, wanted: list[Timer], pending: list[Timer], now: datetime, why: str
) -> None:
    """Cancel the pending timers not wanted any more; plan the wanted ones not there yet."""
    keys = {timer.key for timer in wanted}
    for timer in pending:
        if timer.key not in keys:
            tx.put_timer(timer.model_copy(update={"status": TimerStatus.CANCELLED, "note": why}))
    planned = {timer.key for timer in pending}
    for timer in wanted:
        if timer.key not in planned:  # a pending one is already there: no round trip
            tx.plan_timer(timer)


def plan_for_record(
    tx: Transaction,
    regulation: Regulation,
    now: datetime,
    *,
    client: Client | None = None,
    deal: Deal | None = None,
) -> None:
    """Keep the record's time-trigger timers (and a deal's stage deadline) in step with it.

    A timer's key holds the anchor value, so a changed date field cancels the
    old timer and plans a new one, a cleared one cancels it, and storing the
    same value again plans nothing new (a timer that already fired stays fired).
    """
    record: Client | Deal | None = client if client is not None else deal
    if record is None:
        return
    namespace = "client" if client is not None else "deal"
    rules = [
        rule
        for rule in regulation.rules
        if rule.enabled
        and rule.trigger.anchor is not None
        and rule.trigger.anchor.namespace == namespace
    ]
    if rules:
        _plan_anchored(tx, regulation, now, rules, namespace, client, deal)
    # Without such rules there is nothing to plan here; timers of rules removed
    # since are cancelled by sync_timers, or when they fall due.
    if deal is not None:
        _plan_stage_deadline(tx, regulation, deal, now)


def _plan_anchored(
    tx: Transaction,
    regulation: Regulation,
    now: datetime,
    rules: list[Rule],
    namespace: str,
    client: Client | None,
    deal: Deal | None,
) -> None:
    record = client if client is not None else deal
    assert record is not None
    values = record.record()
    wanted: list[Timer] = []
    for rule in rules:
        trigger = rule.trigger
        assert trigger.anchor is not None
        value = values.get(trigger.anchor.key)
        if value is None:
            continue
        key = f"rule:{rule.id}:{namespace}:{record.id}:{_iso(value)}"
        try:
            due = anchor_due(trigger, value, regulation.calendar)
        except ValueError as error:
            plan_failed(tx, now, rule.id, f"{namespace} {record.id}", key, error)
            continue
        wanted.append(
            Timer(
                key=key,
                kind="rule",
                rule=rule.id,
                client=client.id if client is not None else deal.client if deal else None,
                deal=deal.id if deal is not None else None,
                due_at=due,
                data={"anchor": trigger.anchor.path, "value": _iso(value)},
                created_at=now,
                regulation=regulation.release.id,
            )
        )
    mine = tx.find_timers(
        client=client.id if client is not None else None,
        deal=deal.id if deal is not None else None,
        kind="rule",
        status=TimerStatus.PENDING,
    )
    if client is not None:
        mine = [t for t in mine if t.deal is None]
    _replace(tx, wanted, mine, now, f"{namespace} {record.id} changed")


def _plan_stage_deadline(
    tx: Transaction, regulation: Regulation, deal: Deal, now: datetime
) -> None:
    pipeline = regulation.pipelines.get(deal.pipeline)
    stage = pipeline.stage(deal.stage) if pipeline else None
    wanted: list[Timer] = []
    if stage is not None and stage.deadline is not None and deal.stage_entered_at is not None:
        wanted.append(
            Timer(
                key=f"stage:{deal.id}:{deal.stage}:{_iso(deal.stage_entered_at)}",
                kind="stage",
                client=deal.client,
                deal=deal.id,
                due_at=regulation.calendar.add(deal.stage_entered_at, stage.deadline),
                data={"stage": deal.stage, "deadline": str(stage.deadline)},
                created_at=now,
                regulation=regulation.release.id,
            )
        )
    pending = tx.find_timers(deal=deal.id, kind="stage", status=TimerStatus.PENDING)
    _replace(tx, wanted, pending, now, f"deal {deal.id} left stage")


def planned(
    *,
    key: str,
    kind: str,
    rule: str | None,
    client: str | None,
    deal: str | None,
    due_at: datetime,
    data: dict[str, Any],
    created_at: datetime,
    regulation: str | None,
) -> Timer:
    """A pending timer the engine plans, from values of its own (aware moments, plain
    data): not validated again, as a timer planned per firing of a simulated year was."""
    return trusted(
        Timer,
        {
            "key": key,
            "kind": kind,
            "rule": rule,
            "client": client,
            "deal": deal,
            "due_at": due_at,
            "data": data,
            "status": TimerStatus.PENDING,
            "lease_owner": None,
            "lease_until": None,
            "created_at": created_at,
            "fired_at": None,
            "note": None,
            "attempts": 0,
            "regulation": regulation,
        },
    )


def plan_task(tx: Transaction, task: Task, now: datetime) -> None:
    """An open task with a due date falls overdue then (``task.overdue``)."""
    if task.due is not None and task.status is TaskStatus.OPEN:
        tx.plan_timer(
            planned(
                key=f"task:{task.id}",
                kind="task",
                rule=None,
                client=task.client,
                deal=task.deal,
                due_at=task.due,
                data={"task": task.id},
                created_at=now,
                regulation=task.regulation,
            )
        )


def cancel_task(tx: Transaction, task: Task, why: str) -> None:
    timer = tx.get_timer(f"task:{task.id}")
    if timer is not None and timer.status is TimerStatus.PENDING:
        tx.put_timer(timer.model_copy(update={"status": TimerStatus.CANCELLED, "note": why}))


def plan_contact(
    tx: Transaction,
    regulation: Regulation,
    client_id: str,
    territory_id: str,
    start: datetime,
    now: datetime,
    skip: Collection[int] = (),
) -> None:
    """The first visit of each of a territory's contact plans: one period after ``start``.

    ``skip``: the plans (by position) the client has a visit planned for already."""
    territory = regulation.territories.get(territory_id)
    if territory is None:
        return
    for index, plan in enumerate(territory.contact_plan):
        if index in skip:
            continue
        _plan_visit(tx, regulation, client_id, territory_id, index, plan.every, start, 1, now)


def plan_next_contact(
    tx: Transaction, regulation: Regulation, fired: Timer, index: int, now: datetime
) -> None:
    """After a visit of a contact plan, the next: n periods after the client entered."""
    territory = regulation.territories.get(fired.rule or "")
    if territory is None or fired.client is None:
        return
    every = territory.contact_plan[index].every
    since = fired.data.get("since")
    n = int(fired.data.get("n", 1))
    if since is None:  # planned before plans kept their start: count from this visit
        start, n = fired.due_at, 0
    else:
        start = datetime.fromisoformat(str(since))
    k, due = next_occurrence(every, None, start, n, now, regulation.calendar)
    _plan_visit(tx, regulation, fired.client, territory.id, index, every, start, k, now, due)


def _plan_visit(
    tx: Transaction,
    regulation: Regulation,
    client_id: str,
    territory_id: str,
    index: int,
    every: Duration,
    start: datetime,
    n: int,
    now: datetime,
    due: datetime | None = None,
) -> None:
    """Plan the n-th visit (``due``: its moment, if worked out already)."""
    if due is None:
        due = occurrence(every, None, start, n, regulation.calendar)
    tx.plan_timer(
        planned(
            key=f"plan:{territory_id}:{index}:{client_id}:{_iso(due)}",
            kind="plan",
            rule=territory_id,
            client=client_id,
            deal=None,
            due_at=due,
            data={"index": index, "every": str(every), "since": utc(start).isoformat(), "n": n},
            created_at=now,
            regulation=regulation.release.id,
        )
    )


def replan_visit(tx: Transaction, regulation: Regulation, timer: Timer, now: datetime) -> None:
    """A pending visit again under its plan's period now: the same n-th visit from the
    same start (overdue if the new period has passed it: it fires once, then the series
    resumes from then, as after a worker that was down). The old timer is cancelled."""
    territory = regulation.territories.get(timer.rule or "")
    since = timer.data.get("since")
    if territory is None or timer.client is None or since is None:
        return  # a plan removed is cancelled by the caller; an old timer keeps its time
    index, n = int(timer.data.get("index", 0)), int(timer.data.get("n", 1))
    every = territory.contact_plan[index].every
    start = datetime.fromisoformat(str(since))
    due = occurrence(every, None, start, n, regulation.calendar)
    if due == timer.due_at and timer.data.get("every") == str(every):
        return
    note = f"the contact plan of {territory.id} is every {every} now"
    tx.put_timer(timer.model_copy(update={"status": TimerStatus.CANCELLED, "note": note}))
    _plan_visit(tx, regulation, timer.client, territory.id, index, every, start, n, now, due)


def cancel_contact(tx: Transaction, client_id: str, territory_id: str, now: datetime) -> None:
    for timer in tx.find_timers(client=client_id, kind="plan", status=TimerStatus.PENDING):
        if timer.rule == territory_id:
            why = f"client {client_id} left {territory_id}"
            tx.put_timer(timer.model_copy(update={"status": TimerStatus.CANCELLED, "note": why}))


__all__ = [
    "anchor_due",
    "anchor_moment",
    "cancel_contact",
    "cancel_task",
    "following",
    "next_cron",
    "next_occurrence",
    "next_schedule",
    "occurrence",
    "plan_contact",
    "plan_failed",
    "plan_for_record",
    "plan_next_contact",
    "plan_task",
    "replan_visit",
    "utc",
]
