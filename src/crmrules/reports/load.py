"""Manager activity and load: calls and meetings planned vs held, open and overdue work.

Per period and manager: ``calls_planned`` / ``meetings_planned`` are tasks of
kind call / meeting assigned to the manager and due in the period (created
in it, without a due date), cancelled ones left out; ``calls_held`` /
``meetings_held`` are interactions of those kinds the manager logged in the
period. Every manager known to the store, and anyone with such work, gets a
row in every period.

The load is taken at the end of the span: ``open_tasks`` were created
before it and not closed before it, ``overdue`` are those of them due
before it, against the manager's ``capacity`` (``load`` = open / capacity).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa

from crmrules.adapters.sqlalchemy import _load
from crmrules.model import Manager
from crmrules.reports.base import Source
from crmrules.reports.periods import from_day_number, in_span, period_sql

NOBODY = ""
KINDS = ("call", "meeting")


@dataclass(frozen=True)
class ActivityRow:
    period: date
    manager: str
    calls_planned: int
    calls_held: int
    meetings_planned: int
    meetings_held: int


@dataclass(frozen=True)
class LoadRow:
    manager: str
    capacity: int | None
    open_tasks: int
    overdue: int
    load: float | None


@dataclass(frozen=True)
class ManagerLoad:
    activity: list[ActivityRow]
    load: list[LoadRow]


def planned_query(src: Source) -> sa.Select[*tuple[Any, ...]]:
    t = src.tables.tasks
    moment = sa.func.coalesce(t.c.due_at, t.c.created_at)
    period = period_sql(moment, src.span).label("period")
    return (
        sa.select(period, t.c.assignee, t.c.kind, sa.func.count().label("n"))
        .where(
            t.c.kind.in_(KINDS),
            t.c.status != "cancelled",
            in_span(moment, src.span),
            src.for_clients(t.c.client_id),
        )
        .group_by(period, t.c.assignee, t.c.kind)
    )


def held_query(src: Source) -> sa.Select[*tuple[Any, ...]]:
    i = src.tables.interactions
    period = period_sql(i.c.occurred_at, src.span).label("period")
    return (
        sa.select(period, i.c.manager_id, i.c.kind, sa.func.count().label("n"))
        .where(
            i.c.kind.in_(KINDS),
            in_span(i.c.occurred_at, src.span),
            src.for_clients(i.c.client_id),
        )
        .group_by(period, i.c.manager_id, i.c.kind)
    )


def open_query(src: Source) -> sa.Select[*tuple[Any, ...]]:
    t = src.tables.tasks
    end = src.span.ends
    is_open = sa.and_(
        sa.or_(t.c.created_at.is_(None), t.c.created_at < end),
        sa.or_(t.c.status == "open", t.c.closed_at >= end),
    )
    overdue = sa.case((t.c.due_at < end, 1), else_=0)
    return (
        sa.select(t.c.assignee, sa.func.count().label("open"), sa.func.sum(overdue).label("late"))
        .where(is_open, src.for_clients(t.c.client_id))
        .group_by(t.c.assignee)
    )


def manager_load(src: Source) -> ManagerLoad:
    managers = _managers(src)
    counts: dict[tuple[date, str, str, str], int] = {}
    for what, query in (("planned", planned_query(src)), ("held", held_query(src))):
        for row in src.rows(query):
            key = (from_day_number(row.period), row[1] or NOBODY, row.kind, what)
            counts[key] = int(row.n)
    opened = {row[0] or NOBODY: (int(row.open), int(row.late)) for row in src.rows(open_query(src))}
    people = sorted(set(managers) | {key[1] for key in counts} | set(opened))
    activity = [
        ActivityRow(
            period,
            person,
            counts.get((period, person, "call", "planned"), 0),
            counts.get((period, person, "call", "held"), 0),
            counts.get((period, person, "meeting", "planned"), 0),
            counts.get((period, person, "meeting", "held"), 0),
        )
        for period in src.span.periods()
        for person in people
    ]
    load = []
    for person in people:
        capacity = managers[person].capacity if person in managers else None
        open_tasks, overdue = opened.get(person, (0, 0))
        ratio = open_tasks / capacity if capacity else None
        load.append(LoadRow(person, capacity, open_tasks, overdue, ratio))
    return ManagerLoad(activity, load)


def _managers(src: Source) -> dict[str, Manager]:
    m = src.tables.managers
    found = (_load(Manager, data) for data in src.connection.execute(sa.select(m.c.data)).scalars())
    return {manager.id: manager for manager in found}


__all__ = [
    "ActivityRow",
    "LoadRow",
    "ManagerLoad",
    "held_query",
    "manager_load",
    "open_query",
    "planned_query",
]
