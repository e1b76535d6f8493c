"""When time-based work falls due: time triggers, schedules, and the keys timers go by.

Pure functions over the calendar; planning, claiming and firing timers is
the engine's (``Engine.run_due``). Every moment here is computed in the
calendar's time zone, so "every day at 09:00" stays 09:00 across a DST
change and "7 days after" keeps the wall-clock time.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from crmrules.calendar import BusinessCalendar
from crmrules.model import Client, Deal, Task, TaskStatus
from crmrules.rules.regulation import Regulation, Rule
from crmrules.rules.triggers import Cron, Trigger
from crmrules.store import Timer, TimerStatus, Transaction

#: How far ahead a cron expression is searched before it is called impossible (e.g. 31 February).
CRON_SEARCH_DAYS = 366 * 5


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
        return calendar.add(moment, trigger.offset)
    return calendar.subtract(moment, trigger.offset)


def next_schedule(trigger: Trigger, after: datetime, calendar: BusinessCalendar) -> datetime:
    """The first occurrence of an ``every`` or ``cron`` schedule strictly after ``after``.

    ``{every: D, at: HH:MM}``: the first ``at`` after ``after``, then every D
    (the engine plans each next one from the last due time). Without ``at``,
    one period after ``after``.
    """
    if trigger.cron is not None:
        return next_cron(trigger.cron, after, calendar)
    assert trigger.every is not None
    if trigger.at is None:
        return calendar.add(after, trigger.every)
    local = calendar.local(after)
    candidate = calendar.combine(local.date(), trigger.at)
    if candidate <= after:
        candidate = calendar.combine(local.date() + timedelta(days=1), trigger.at)
    return candidate


def following(
    trigger: Trigger, due: datetime, now: datetime, calendar: BusinessCalendar
) -> datetime:
    """The next occurrence after one that fell due at ``due``, never in the past of ``now``.

    A worker that was down does not replay every missed occurrence of a
    schedule: it fires the one that was due, then resumes from now.
    """
    if trigger.cron is not None:
        return next_cron(trigger.cron, max(due, now), calendar)
    assert trigger.every is not None
    moment = calendar.add(due, trigger.every)
    while moment <= now:
        moment = calendar.add(moment, trigger.every)
    return moment


def next_cron(cron: Cron, after: datetime, calendar: BusinessCalendar) -> datetime:
    """The first minute strictly after ``after`` that the cron expression allows, local time."""
    local = calendar.local(after)
    day = local.date()
    for _ in range(CRON_SEARCH_DAYS):
        if _day_matches(cron, day):
            for hour in sorted(cron.hours):
                for minute in sorted(cron.minutes):
                    moment = calendar.combine(day, time(hour, minute))
                    if moment > after:
                        return moment
        day += timedelta(days=1)
    raise ValueError(f"cron {cron.text!r} never falls due")


def _day_matches(cron: Cron, day: date) -> bool:
    in_month = day.month in cron.months
    by_day = day.day in cron.days
    by_weekday = day.weekday() in cron.weekdays
    if cron.day_or_weekday:
        return in_month and (by_day or by_weekday)
    return in_month and by_day and by_weekday


# --- planning: which timers a record should have, kept in step with it ------------------------


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
        wanted.append(
            Timer(
                key=f"rule:{rule.id}:{namespace}:{record.id}:{_iso(value)}",
                kind="rule",
                rule=rule.id,
                client=client.id if client is not None else deal.client if deal else None,
                deal=deal.id if deal is not None else None,
                due_at=anchor_due(trigger, value, regulation.calendar),
                data={"anchor": trigger.anchor.path, "value": _iso(value)},
                created_at=now,
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
            )
        )
    pending = tx.find_timers(deal=deal.id, kind="stage", status=TimerStatus.PENDING)
    _replace(tx, wanted, pending, now, f"deal {deal.id} left stage")


def plan_task(tx: Transaction, task: Task, now: datetime) -> None:
    """An open task with a due date falls overdue then (``task.overdue``)."""
    if task.due is not None and task.status is TaskStatus.OPEN:
        tx.plan_timer(
            Timer(
                key=f"task:{task.id}",
                kind="task",
                client=task.client,
                deal=task.deal,
                due_at=task.due,
                data={"task": task.id},
                created_at=now,
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
) -> None:
    """The first visit of each of a territory's contact plans: one period after ``start``."""
    territory = regulation.territories.get(territory_id)
    if territory is None:
        return
    for index, plan in enumerate(territory.contact_plan):
        due = regulation.calendar.add(start, plan.every)
        tx.plan_timer(
            Timer(
                key=f"plan:{territory_id}:{index}:{client_id}:{_iso(due)}",
                kind="plan",
                rule=territory_id,
                client=client_id,
                due_at=due,
                data={"index": index, "every": str(plan.every)},
                created_at=now,
            )
        )


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
    "next_schedule",
    "plan_contact",
    "plan_for_record",
    "plan_task",
]
