"""Claiming a batch of due timers on PostgreSQL in one statement.

``claim_timers`` used to select the due rows (``FOR UPDATE SKIP LOCKED``) and
then update each one's lease: a statement per timer on top of the select.
Here the rows are chosen and locked by a subquery and leased by one
``UPDATE ... RETURNING``; the server writes the lease into the row's JSON
``data`` too (``jsonb ||``), so what comes back is the timer as leased.

JSON that ``jsonb`` refuses (a ``\\u0000`` escape) keeps its ``data`` in the
statement (the lease columns are still set): the caller sees the old lease
in what came back and writes the data itself.
"""

from __future__ import annotations

import functools
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from crmrules.store import Timer, TimerStatus

#: The bound parameters of ``claim_statement``.
NOW, LIMIT, WORKER, UNTIL, UNTIL_TEXT = (
    "claim_now",
    "claim_limit",
    "claim_worker",
    "claim_until",
    "claim_until_text",
)


@functools.cache
def claim_statement(t: sa.Table) -> sa.Update:
    """``UPDATE timers SET lease ... WHERE key IN (due rows, locked, skipping locked ones)
    RETURNING data``; built once per table."""
    now = sa.bindparam(NOW, type_=t.c.due_at.type)
    worker = sa.bindparam(WORKER, type_=sa.String())
    due = (
        sa.select(t.c.key)
        .where(
            t.c.status == TimerStatus.PENDING.value,
            t.c.due_at <= now,
            sa.or_(t.c.lease_until.is_(None), t.c.lease_until < now, t.c.lease_owner == worker),
        )
        .order_by(t.c.due_at, t.c.key.collate("C"))
        .limit(sa.bindparam(LIMIT, type_=sa.Integer()))
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    lease = sa.func.jsonb_build_object(
        sa.literal("lease_owner"),
        worker,
        sa.literal("lease_until"),
        sa.bindparam(UNTIL_TEXT, type_=sa.String()),
    )
    merged = sa.cast(sa.cast(t.c.data, postgresql.JSONB).op("||")(lease), sa.JSON)
    nul = sa.func.strpos(sa.cast(t.c.data, sa.Text), sa.literal("\\u0000")) > 0
    return (
        sa.update(t)
        .where(t.c.key.in_(due))
        .values(
            lease_owner=worker,
            lease_until=sa.bindparam(UNTIL, type_=t.c.lease_until.type),
            data=sa.case((nul, t.c.data), else_=merged),
        )
        .returning(t.c.data)
    )


def claim_order(timer: Timer) -> tuple[datetime, str]:
    """Earliest first, then by key (as the claim's ``ORDER BY``; RETURNING keeps no order)."""
    return timer.due_at, timer.key


__all__ = ["LIMIT", "NOW", "UNTIL", "UNTIL_TEXT", "WORKER", "claim_order", "claim_statement"]
