"""How the timers and the outbox stand: what operators watch (``crmrules status``).

WorkCounts, not lists, so it stays cheap on a large store (one grouped query a
table on SQL stores): how many timers and messages wait, how many are due
now, how many are late (due longer ago than ``late``, default one minute: no
worker is keeping up, or none is running), how many are held by a worker's
lease, and how many failed for good. ``leases`` says which workers hold what
and until when: a worker whose leases are in the past has died (its work is
taken over as soon as another worker polls).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from crmrules.adapters.sqlalchemy import SQLAlchemyTransaction
from crmrules.store import MessageStatus, Store, TimerStatus, Transaction

#: A pending timer or message due longer ago than this counts as late.
LATE = timedelta(minutes=1)


@dataclass
class WorkCounts:
    """Timers or messages: pending (due now, late and leased among them) and failed."""

    pending: int = 0
    due: int = 0
    late: int = 0
    leased: int = 0
    failed: int = 0

    def line(self, name: str) -> str:
        return (
            f"{name}: {self.pending} pending ({self.due} due now, {self.late} late, "
            f"{self.leased} leased), {self.failed} failed"
        )


@dataclass
class LeaseHolder:
    """What one worker holds: pending timers and messages, and the latest lease end."""

    worker: str
    timers: int = 0
    messages: int = 0
    until: datetime | None = None


@dataclass
class WorkStatus:
    """How the timers and the outbox stand at ``at`` (``work_status``); ``lines()`` for people."""

    at: datetime
    timers: WorkCounts = field(default_factory=WorkCounts)
    messages: WorkCounts = field(default_factory=WorkCounts)
    leases: list[LeaseHolder] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["at"] = self.at.isoformat()
        for lease in data["leases"]:
            lease["until"] = lease["until"].isoformat() if lease["until"] else None
        return data

    def lines(self) -> list[str]:
        found = [self.timers.line("timers"), self.messages.line("messages")]
        for lease in self.leases:
            state = "expired" if lease.until is not None and lease.until < self.at else "until"
            when = lease.until.isoformat() if lease.until else "?"
            found.append(
                f"worker {lease.worker}: {lease.timers} timer(s), {lease.messages} message(s), "
                f"lease {state} {when}"
            )
        return found


#: (the pending status, the failed status) of each kind of row
_TIMERS = (TimerStatus.PENDING.value, TimerStatus.FAILED.value)
_MESSAGES = (MessageStatus.PENDING.value, MessageStatus.FAILED.value)


def work_status(store: Store, now: datetime | None = None, *, late: timedelta = LATE) -> WorkStatus:
    """The counts at ``now`` (default: the wall clock); see the module docstring."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    report = WorkStatus(at=now)
    leases: dict[str, LeaseHolder] = {}
    with store.transaction() as tx:
        if isinstance(tx, SQLAlchemyTransaction):
            t = tx.tables
            for kind, table, due, wanted in (
                ("timers", t.timers, t.timers.c.due_at, _TIMERS),
                ("messages", t.outbox, t.outbox.c.next_attempt_at, _MESSAGES),
            ):
                _sql(tx, table, due, wanted, now, late, getattr(report, kind), leases, kind)
        else:
            _python(tx, now, late, report, leases)
    report.leases = sorted(leases.values(), key=lambda lease: lease.worker)
    return report


def _sql(
    tx: SQLAlchemyTransaction,
    table: sa.Table,
    due: sa.Column[Any],
    wanted: tuple[str, str],
    now: datetime,
    late: timedelta,
    counts: WorkCounts,
    leases: dict[str, LeaseHolder],
    kind: str,
) -> None:
    """Two grouped queries: the counts by status, and the leases by worker."""
    c = table.c
    held = sa.and_(c.lease_owner.is_not(None), c.lease_until >= now)

    def number(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[Any]:
        return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)

    query = (
        sa.select(
            c.status,
            sa.func.count(),
            number(sa.and_(due <= now, sa.not_(held))),
            number(due < now - late),
            number(held),
        )
        .where(c.status.in_(wanted))
        .group_by(c.status)
    )
    for state, total, ready, overdue, leased in tx.connection.execute(query):
        if state == wanted[1]:
            counts.failed = int(total)
        else:
            counts.pending, counts.due = int(total), int(ready)
            counts.late, counts.leased = int(overdue), int(leased)
    holders = (
        sa.select(c.lease_owner, sa.func.count(), sa.func.max(c.lease_until))
        .where(c.status == wanted[0], c.lease_owner.is_not(None))
        .group_by(c.lease_owner)
    )
    for owner, total, until in tx.connection.execute(holders):
        _hold(leases, owner, kind, int(total), until)


def _hold(
    leases: dict[str, LeaseHolder], owner: str, kind: str, count: int, until: datetime | None
) -> None:
    lease = leases.setdefault(owner, LeaseHolder(owner))
    setattr(lease, kind, getattr(lease, kind) + count)
    if until is not None:
        until = until.astimezone(UTC)
        lease.until = until if lease.until is None else max(lease.until, until)


def _python(
    tx: Transaction,
    now: datetime,
    late: timedelta,
    report: WorkStatus,
    leases: dict[str, LeaseHolder],
) -> None:
    """The same counts by reading the records (the memory store)."""
    far = datetime.max.replace(tzinfo=UTC)
    rows = {
        "timers": [
            (t.status is TimerStatus.PENDING, t.due_at, t.lease_owner, t.lease_until)
            for status in (TimerStatus.PENDING, TimerStatus.FAILED)
            for t in tx.find_timers(status=status)
        ],
        "messages": [
            (True, m.next_attempt_at, m.lease_owner, m.lease_until)
            for m in tx.due_messages(far, 10**9)
        ],
    }
    failed = getattr(tx, "failed_messages", None)
    if failed is not None:
        report.messages.failed = int(failed())
    for kind, found in rows.items():
        counts: WorkCounts = getattr(report, kind)
        for pending, due_at, owner, until in found:
            if not pending:
                counts.failed += 1
                continue
            held = owner is not None and until is not None and until >= now
            counts.pending += 1
            counts.due += due_at <= now and not held
            counts.late += due_at < now - late
            counts.leased += held
            if owner is not None:
                _hold(leases, owner, kind, 1, until)


__all__ = ["LATE", "LeaseHolder", "WorkCounts", "WorkStatus", "work_status"]
