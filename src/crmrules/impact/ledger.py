"""Timer sync, counted: what bringing the timers in step with a regulation plans, re-plans, cancels.

``Engine.sync_timers`` (crmrules.firing) is run unchanged against a store
wrapper whose transactions note each timer before its first write and after
its last. Live, the writes go through and the note is the count the worker
logs after a reload. Dry, the writes stay in memory (reads see them, so the
sync makes the same decisions), the database is only read, and the note is
what the impact report shows: the same code decides both, so the report's
counts are what applying the regulation would do.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from crmrules import firing
from crmrules.store import AuditEntry, Store, Timer, TimerStatus, Transaction

if TYPE_CHECKING:
    from crmrules.engine import Engine

log = logging.getLogger("crmrules.timers")

#: Timers kept as examples per change kind.
EXAMPLES = 20


@dataclass(frozen=True)
class TimerMove:
    """One timer planned, re-planned or cancelled; due times before and after."""

    key: str
    kind: str
    rule: str | None
    client: str | None
    due_before: str | None
    due_after: str | None
    note: str | None


@dataclass
class TimerChanges:
    """How many timers a sync plans, re-plans and cancels (per rule too), with examples."""

    planned: int = 0
    replanned: int = 0
    cancelled: int = 0
    by_rule: dict[str, dict[str, int]] = field(default_factory=dict)
    examples: dict[str, list[TimerMove]] = field(default_factory=dict)

    def add(self, change: str, move: TimerMove) -> None:
        setattr(self, change, getattr(self, change) + 1)
        counts = self.by_rule.setdefault(move.rule or "-", {})
        counts[change] = counts.get(change, 0) + 1
        kept = self.examples.setdefault(change, [])
        if len(kept) < EXAMPLES:
            kept.append(move)

    def summary(self) -> str:
        return (
            f"{self.planned} timers planned, {self.replanned} re-planned, "
            f"{self.cancelled} cancelled"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "planned": self.planned,
            "replanned": self.replanned,
            "cancelled": self.cancelled,
            "by_rule": {k: dict(v) for k, v in sorted(self.by_rule.items())},
            "examples": {k: [vars(m) for m in v] for k, v in self.examples.items()},
        }


def _matches(timer: Timer, filters: dict[str, Any]) -> bool:
    return all(value is None or getattr(timer, name) == value for name, value in filters.items())


class _Ledger:
    """What one sync wrote, across all its transactions (a sync takes several).

    Live, each committed transaction's notes are folded into the counts and
    dropped, so a sync over a large base holds no record per timer. Dry, the
    notes stay until the end: later transactions must read what earlier ones
    would have written.
    """

    def __init__(self) -> None:
        self.before: dict[str, Timer | None] = {}
        self.after: dict[str, Timer] = {}
        #: rotation counters written by a dry sync (its fingerprint), kept from the database
        self.rotations: dict[str, int] = {}
        self.changes = TimerChanges()

    def fold(self) -> None:
        """Count the noted timers' changes, and forget the timers."""
        for key, after in self.after.items():
            before = self.before.get(key)
            was = before is not None and before.status is TimerStatus.PENDING
            now = after.status is TimerStatus.PENDING
            change = None
            if now and not was:
                change = "planned"
            elif was and not now and after.status is TimerStatus.CANCELLED:
                change = "cancelled"
            elif was and now and before is not None and before.due_at != after.due_at:
                change = "replanned"
            if change is not None:
                self.changes.add(
                    change,
                    TimerMove(
                        key,
                        after.kind,
                        after.rule,
                        after.client,
                        before.due_at.isoformat() if was and before is not None else None,
                        after.due_at.isoformat() if now else None,
                        after.note,
                    ),
                )
        self.before.clear()
        self.after.clear()


class _Undo(Exception):
    """Rolls a savepoint back on purpose."""


class _LedgerTransaction:
    """A transaction that notes timer writes (and, dry, keeps them from the database)."""

    def __init__(self, tx: Transaction, dry: bool, ledger: _Ledger) -> None:
        self._tx = tx
        self._dry = dry
        self._ledger = ledger
        self.before = ledger.before
        self.after = ledger.after

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tx, name)

    def _note(self, key: str) -> None:
        if key not in self.before:
            self.before[key] = self._tx.get_timer(key)

    def get_timer(self, key: str) -> Timer | None:
        if self._dry and key in self.after:
            return self.after[key]
        return self._tx.get_timer(key)

    def lock_timer(self, key: str) -> Timer | None:
        return self.get_timer(key) if self._dry else self._tx.lock_timer(key)

    def plan_timer(self, timer: Timer) -> bool:
        self._note(timer.key)
        if not self._dry:
            planned = self._tx.plan_timer(timer)
        else:
            current = self.get_timer(timer.key)
            planned = current is None or (
                current.status is TimerStatus.CANCELLED and current.fired_at is None
            )
        if planned:
            self.after[timer.key] = timer
        return planned

    def put_timer(self, timer: Timer) -> None:
        self._note(timer.key)
        if not self._dry:
            self._tx.put_timer(timer)
        self.after[timer.key] = timer

    def find_timers(self, **filters: Any) -> list[Timer]:
        found = self._tx.find_timers(**filters)
        if not self._dry:
            return found
        merged = {t.key: self.after.get(t.key, t) for t in found}
        for key, timer in self.after.items():
            merged.setdefault(key, timer)
        chosen = [t for t in merged.values() if _matches(t, filters)]
        return sorted(chosen, key=lambda t: (t.due_at, t.key))

    def add_audit(self, entry: AuditEntry) -> None:
        if not self._dry:
            self._tx.add_audit(entry)

    def get_rotation(self, key: str) -> int:
        if not self._dry:
            return self._tx.get_rotation(key)
        if key in self._ledger.rotations:
            return self._ledger.rotations[key]
        # A store may create the counter's row to lock it (PostgreSQL does): read it
        # in a savepoint rolled back, so a dry sync leaves the database as it was.
        value = 0
        try:
            with self._tx.savepoint():
                value = self._tx.get_rotation(key)
                raise _Undo
        except _Undo:
            return value

    def set_rotation(self, key: str, value: int) -> None:
        if self._dry:
            self._ledger.rotations[key] = value
        else:
            self._tx.set_rotation(key, value)


class LedgerStore:
    """``store`` seen through ledger transactions that note every timer written."""

    def __init__(self, store: Store, *, dry: bool) -> None:
        self._store = store
        self._dry = dry
        self._ledger = _Ledger()

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        with self._store.transaction() as tx:
            yield cast(Transaction, _LedgerTransaction(tx, self._dry, self._ledger))
        if not self._dry:  # committed: count it, keep nothing of it
            self._ledger.fold()

    def changes(self) -> TimerChanges:
        """What the sync planned, re-planned and cancelled."""
        self._ledger.fold()
        return self._ledger.changes

    def close(self) -> None:
        """The wrapped store stays open: it belongs to the caller."""


def sync(
    engine: Engine, now: datetime | None = None, *, dry: bool = False, full: bool = False
) -> TimerChanges:
    """Run the engine's timer sync through a ledger; ``dry`` writes nothing."""
    store = LedgerStore(engine.store, dry=dry)
    firing.sync_timers(engine, now, full=full, store=cast(Store, store))
    return store.changes()


__all__ = ["EXAMPLES", "LedgerStore", "TimerChanges", "TimerMove", "sync"]
