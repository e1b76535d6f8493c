"""Regulation compliance: for each rule that creates tasks, were they done, and on time?

Over the tasks a rule made in the span, as things stood at the span's end:

- ``on_time``: done before the end, by the due moment (or without one);
- ``late``: done before the end, after the due moment;
- ``not_done``: not done before the end although due before it, or
  cancelled before it;
- ``pending``: the rest (open, and not yet due at the end);
- ``median_delay_seconds`` / ``p90_delay_seconds``: nearest-rank percentiles
  of how long after the due moment the late ones were done, in whole
  seconds of wall-clock time (a due moment set in business days by the rule
  is already in the task).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from crmrules.reports.base import Source, rank_of, ranked
from crmrules.reports.periods import epoch_seconds, in_span


@dataclass(frozen=True)
class ComplianceRow:
    rule: str
    tasks: int
    on_time: int
    late: int
    not_done: int
    pending: int
    on_time_rate: float | None  # of the tasks done or not done, the share done on time
    median_delay_seconds: int | None
    p90_delay_seconds: int | None


def _classified(src: Source) -> sa.Subquery:
    t = src.tables.tasks
    end = src.span.ends
    done = sa.and_(t.c.status == "done", t.c.closed_at < end)
    late = sa.and_(done, t.c.due_at.is_not(None), t.c.closed_at > t.c.due_at)
    failed = sa.and_(
        sa.not_(done),
        sa.or_(
            sa.and_(
                t.c.status == "cancelled", sa.or_(t.c.closed_at.is_(None), t.c.closed_at < end)
            ),
            t.c.due_at < end,
        ),
    )
    outcome = sa.case((late, "late"), (done, "on_time"), (failed, "not_done"), else_="pending")
    delay = sa.case((late, epoch_seconds(t.c.closed_at) - epoch_seconds(t.c.due_at)))
    return (
        sa.select(t.c.rule, outcome.label("outcome"), delay.label("delay"))
        .where(t.c.rule.is_not(None), in_span(t.c.created_at, src.span))
        .where(src.for_clients(t.c.client_id))
        .subquery()
    )


def counts_query(src: Source) -> sa.Select[*tuple[Any, ...]]:
    c = _classified(src)

    def count(outcome: str) -> sa.ColumnElement[Any]:
        return sa.func.sum(sa.case((c.c.outcome == outcome, 1), else_=0)).label(outcome)

    return sa.select(
        c.c.rule,
        sa.func.count().label("tasks"),
        count("on_time"),
        count("late"),
        count("not_done"),
        count("pending"),
    ).group_by(c.c.rule)


def delays_query(src: Source) -> sa.Select[*tuple[Any, ...]]:
    c = _classified(src)
    rank, size = ranked(c.c.delay, c.c.rule)
    ranks = (
        sa.select(c.c.rule, c.c.delay, rank.label("rank"), size.label("size"))
        .where(c.c.outcome == "late")
        .subquery()
    )
    return sa.select(
        ranks.c.rule,
        sa.func.max(sa.case((ranks.c.rank == rank_of(50, ranks.c.size), ranks.c.delay))),
        sa.func.max(sa.case((ranks.c.rank == rank_of(90, ranks.c.size), ranks.c.delay))),
    ).group_by(ranks.c.rule)


def compliance(src: Source) -> list[ComplianceRow]:
    delays = {row[0]: (int(row[1]), int(row[2])) for row in src.rows(delays_query(src))}
    rows = []
    for row in sorted(src.rows(counts_query(src)), key=lambda r: r.rule):
        on_time, late, not_done = int(row.on_time), int(row.late), int(row.not_done)
        settled = on_time + late + not_done
        median, p90 = delays.get(row.rule, (None, None))
        rows.append(
            ComplianceRow(
                rule=row.rule,
                tasks=int(row.tasks),
                on_time=on_time,
                late=late,
                not_done=not_done,
                pending=int(row.pending),
                on_time_rate=on_time / settled if settled else None,
                median_delay_seconds=median,
                p90_delay_seconds=p90,
            )
        )
    return rows


__all__ = ["ComplianceRow", "compliance", "counts_query", "delays_query"]
