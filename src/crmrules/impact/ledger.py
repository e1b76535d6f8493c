"""Timer sync, counted: what bringing the timers in step with a regulation plans, re-plans, cancels.

``Engine.sync_timers`` (crmrules.firing) is run unchanged against a store
wrapper whose transactions note each timer before its first write and after
its last. Live, the writes go through and the note is the count the worker
logs after a reload. Dry, the writes stay in memory (reads see them, so the
sync makes the same decisions), the database is only read, and the note is
what the impact report shows: the same code decides both, so the report's
counts are what applying the regulation would do.

Memory does not grow with the base. Live, a transaction's notes are folded
into the counts when it commits (the sync re-checks pending timers and
walks clients a chunk per transaction, crmrules.sync). Dry, nothing is
committed, and what the sync would have written must stay readable to the
end: the first pass re-plans or cancels the pending timers in key order,
the walk then reads each client's timers again in client order, so a
change that re-plans a timer per client has a record per client alive
between the two passes, however the notes are forgotten. So a dry sync's
notes go to a temporary SQLite file (``_Spill``: indexed by key, client,
deal and rule for the sync's reads, a bounded page cache in memory,
deleted at the end), not to memory, and the counts are folded from it.
Counts go by timer key, so a timer written twice counts once, and only a
bounded number of examples is kept (``EXAMPLES`` per kind of change).
"""

from __future__ import annotations

import logging
import pickle
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
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


@dataclass(frozen=True)
class _Noted:
    """A timer as it was before a sync's first write to it, and as its last write left it."""

    key: str
    was_pending: bool
    due_before: datetime | None
    status: TimerStatus
    due_after: datetime
    kind: str
    rule: str | None
    client: str | None
    note: str | None


def _count(changes: TimerChanges, noted: _Noted) -> None:
    """Add one noted timer's change (if it is one) to the counts."""
    now = noted.status is TimerStatus.PENDING
    change = None
    if now and not noted.was_pending:
        change = "planned"
    elif noted.was_pending and not now and noted.status is TimerStatus.CANCELLED:
        change = "cancelled"
    elif noted.was_pending and now and noted.due_before != noted.due_after:
        change = "replanned"
    if change is not None:
        due_before = noted.due_before if noted.was_pending else None
        changes.add(
            change,
            TimerMove(
                noted.key,
                noted.kind,
                noted.rule,
                noted.client,
                None if due_before is None else due_before.isoformat(),
                noted.due_after.isoformat() if now else None,
                noted.note,
            ),
        )


class _Notes:
    """A live sync's notes: the timers one transaction wrote, held until it commits.

    Each committed transaction's notes are folded into the counts and
    dropped, so a live sync holds the timers of one chunk at most.
    """

    def __init__(self) -> None:
        self.before: dict[str, Timer | None] = {}
        self.after: dict[str, Timer] = {}
        #: the most timer records held at once (a bound the tests check)
        self.peak = 0

    def noted(self, key: str) -> bool:
        return key in self.before

    def note(self, key: str, before: Timer | None) -> None:
        self.before[key] = before
        self.peak = max(self.peak, len(self.before) + len(self.after))

    def wrote(self, timer: Timer) -> None:
        self.after[timer.key] = timer
        self.peak = max(self.peak, len(self.before) + len(self.after))

    def fold(self, changes: TimerChanges) -> None:
        for key, after in self.after.items():
            before = self.before.get(key)
            was = before is not None and before.status is TimerStatus.PENDING
            _count(
                changes,
                _Noted(
                    key,
                    was,
                    None if before is None else before.due_at,
                    after.status,
                    after.due_at,
                    after.kind,
                    after.rule,
                    after.client,
                    after.note,
                ),
            )
        self.clear()

    def clear(self) -> None:
        self.before.clear()
        self.after.clear()


#: Pages of the spill's file kept in memory (SQLite's page cache, in KiB when negative).
SPILL_CACHE_KIB = 16_384

_SPILL_SCHEMA = """
CREATE TABLE noted (
    n INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    was_pending INTEGER NOT NULL,
    due_before TEXT,
    status TEXT,
    due_after TEXT,
    kind TEXT,
    rule TEXT,
    client TEXT,
    deal TEXT,
    note TEXT,
    timer BLOB
);
CREATE INDEX noted_client ON noted (client);
CREATE INDEX noted_deal ON noted (deal);
CREATE INDEX noted_rule ON noted (rule);
"""

#: The filters of ``find_timers`` the spill answers, and its columns for them.
_COLUMNS = {"client": "client", "deal": "deal", "rule": "rule", "kind": "kind", "status": "status"}


class _Spill:
    """A dry sync's notes, in a temporary SQLite file: read back while the sync goes on.

    A dry sync writes nothing to the store, so what it would have written must
    stay readable until the end: the first pass re-plans (or cancels) every
    pending timer, the walk over the clients reads each client's timers
    again. When the change re-plans a timer per client that is a record per
    client, so the records go to a file of their own, not to memory: SQLite
    keeps at most ``SPILL_CACHE_KIB`` of it in memory, indexed by key,
    client, deal and rule for the sync's reads, and the counts are folded
    from it at the end. The file is deleted on ``close``.
    """

    def __init__(self) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="crmrules-impact-")
        path = Path(self._folder.name) / "ledger.sqlite3"
        self._db = sqlite3.connect(path, isolation_level=None)
        for pragma in ("journal_mode = OFF", "synchronous = OFF", "temp_store = FILE"):
            self._db.execute(f"PRAGMA {pragma}")
        self._db.execute(f"PRAGMA cache_size = -{SPILL_CACHE_KIB}")
        self._db.executescript(_SPILL_SCHEMA)
        #: timer records noted (in the file; none is held in memory)
        self.spilled = 0
        self.peak = 0

    def noted(self, key: str) -> bool:
        row = self._db.execute("SELECT 1 FROM noted WHERE key = ?", (key,)).fetchone()
        return row is not None

    def note(self, key: str, before: Timer | None) -> None:
        was = before is not None and before.status is TimerStatus.PENDING
        due = None if before is None else before.due_at.isoformat()
        self._db.execute(
            "INSERT INTO noted (key, was_pending, due_before) VALUES (?, ?, ?)", (key, was, due)
        )
        self.spilled += 1

    def wrote(self, timer: Timer) -> None:
        self._db.execute(
            "UPDATE noted SET status = ?, due_after = ?, kind = ?, rule = ?, client = ?, "
            "deal = ?, note = ?, timer = ? WHERE key = ?",
            (
                timer.status.value,
                timer.due_at.isoformat(),
                timer.kind,
                timer.rule,
                timer.client,
                timer.deal,
                timer.note,
                pickle.dumps(timer, pickle.HIGHEST_PROTOCOL),
                timer.key,
            ),
        )

    def written(self, key: str) -> Timer | None:
        row = self._db.execute(
            "SELECT timer FROM noted WHERE key = ? AND timer IS NOT NULL", (key,)
        ).fetchone()
        return None if row is None else cast(Timer, pickle.loads(row[0]))

    def written_among(self, keys: list[str]) -> dict[str, Timer]:
        found: dict[str, Timer] = {}
        for start in range(0, len(keys), 500):
            part = keys[start : start + 500]
            marks = ", ".join("?" for _ in part)
            rows = self._db.execute(
                f"SELECT key, timer FROM noted WHERE key IN ({marks}) AND timer IS NOT NULL",
                part,
            )
            found.update((key, cast(Timer, pickle.loads(data))) for key, data in rows)
        return found

    def written_matching(self, filters: dict[str, Any]) -> list[Timer]:
        tests, values = ["timer IS NOT NULL"], list[Any]()
        for name, value in filters.items():
            if value is not None:
                tests.append(f"{_COLUMNS[name]} = ?")
                values.append(value.value if isinstance(value, TimerStatus) else value)
        rows = self._db.execute(f"SELECT timer FROM noted WHERE {' AND '.join(tests)}", values)
        return [cast(Timer, pickle.loads(data)) for (data,) in rows]

    def fold(self, changes: TimerChanges) -> None:
        rows = self._db.execute(
            "SELECT key, was_pending, due_before, status, due_after, kind, rule, client, note "
            "FROM noted WHERE timer IS NOT NULL ORDER BY n"
        )
        for key, was, due_before, status, due_after, kind, rule, client, note in rows:
            _count(
                changes,
                _Noted(
                    key,
                    bool(was),
                    None if due_before is None else datetime.fromisoformat(due_before),
                    TimerStatus(status),
                    datetime.fromisoformat(due_after),
                    kind,
                    rule,
                    client,
                    note,
                ),
            )
        self.clear()

    def clear(self) -> None:
        self._db.execute("DELETE FROM noted")

    def close(self) -> None:
        self._db.close()
        self._folder.cleanup()


class _Ledger:
    """What one sync wrote, across all its transactions (a sync takes several).

    Live, the notes of each committed transaction are folded and dropped
    (``_Notes``). Dry, later transactions must read what earlier ones would
    have written, so the notes are kept to the end, in a file (``_Spill``).
    Either way the memory a sync takes does not grow with the base.
    """

    def __init__(self, dry: bool) -> None:
        self.notes: _Notes | _Spill = _Spill() if dry else _Notes()
        #: rotation counters written by a dry sync (its fingerprint), kept from the database
        self.rotations: dict[str, int] = {}
        self.changes = TimerChanges()

    def fold(self) -> None:
        """Count the noted timers' changes, and forget the timers."""
        self.notes.fold(self.changes)


class _Undo(Exception):
    """Rolls a savepoint back on purpose."""


class _LedgerTransaction:
    """A transaction that notes timer writes (and, dry, keeps them from the database)."""

    def __init__(self, tx: Transaction, ledger: _Ledger) -> None:
        self._tx = tx
        self._ledger = ledger
        notes = ledger.notes
        self._notes = notes
        self._spill = notes if isinstance(notes, _Spill) else None
        #: dry, the last timer read from the database (a dry sync does not change it): the
        #: note before a write is that read again, as a re-check reads then writes its timer
        self._read: tuple[str, Timer | None] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tx, name)

    def _stored(self, key: str) -> Timer | None:
        if self._spill is None:
            return self._tx.get_timer(key)
        if self._read is None or self._read[0] != key:
            self._read = (key, self._tx.get_timer(key))
        return self._read[1]

    def _note(self, key: str) -> None:
        """The timer as the database has it, before this sync's first write to it."""
        if not self._notes.noted(key):
            self._notes.note(key, self._stored(key))

    def get_timer(self, key: str) -> Timer | None:
        if self._spill is not None:
            written = self._spill.written(key)
            if written is not None:
                return written
        return self._stored(key)

    def lock_timer(self, key: str) -> Timer | None:
        return self.get_timer(key) if self._spill is not None else self._tx.lock_timer(key)

    def plan_timer(self, timer: Timer) -> bool:
        if self._spill is None:
            self._note(timer.key)
            planned = self._tx.plan_timer(timer)
        else:
            current = self.get_timer(timer.key)
            planned = current is None or (
                current.status is TimerStatus.CANCELLED and current.fired_at is None
            )
            if planned:
                self._note(timer.key)
        if planned:
            self._notes.wrote(timer)
        return planned

    def put_timer(self, timer: Timer) -> None:
        self._note(timer.key)
        if self._spill is None:
            self._tx.put_timer(timer)
        self._notes.wrote(timer)

    def find_timers(self, **filters: Any) -> list[Timer]:
        if self._spill is None:
            return self._tx.find_timers(**filters)
        limit = filters.pop("limit", None)
        found = self._tx.find_timers(**filters)
        written = self._spill.written_among([t.key for t in found])
        merged = {t.key: written.get(t.key, t) for t in found}
        for timer in self._spill.written_matching(filters):
            merged[timer.key] = timer
        chosen = sorted(
            (t for t in merged.values() if _matches(t, filters)), key=lambda t: (t.due_at, t.key)
        )
        return chosen if limit is None else chosen[:limit]

    def add_audit(self, entry: AuditEntry) -> None:
        if self._spill is None:
            self._tx.add_audit(entry)

    def get_rotation(self, key: str) -> int:
        if self._spill is None:
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
        if self._spill is None:
            self._tx.set_rotation(key, value)
        else:
            self._ledger.rotations[key] = value


class LedgerStore:
    """``store`` seen through ledger transactions that note every timer written."""

    def __init__(self, store: Store, *, dry: bool) -> None:
        self._store = store
        self._dry = dry
        self._ledger = _Ledger(dry)

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        try:
            with self._store.transaction() as tx:
                yield cast(Transaction, _LedgerTransaction(tx, self._ledger))
        except BaseException:
            if not self._dry:  # rolled back: nothing of it happened
                self._ledger.notes.clear()
            raise
        if not self._dry:  # committed: count it, keep nothing of it
            self._ledger.fold()

    def changes(self) -> TimerChanges:
        """What the sync planned, re-planned and cancelled."""
        self._ledger.fold()
        return self._ledger.changes

    @property
    def peak_held(self) -> int:
        """The most timer records the ledger held in memory at once (none when dry)."""
        return self._ledger.notes.peak

    @property
    def spilled(self) -> int:
        """Timer records a dry ledger wrote to its file (0 when live)."""
        notes = self._ledger.notes
        return notes.spilled if isinstance(notes, _Spill) else 0

    def close(self) -> None:
        """Delete a dry ledger's file; the wrapped store stays open: it is the caller's."""
        if isinstance(self._ledger.notes, _Spill):
            self._ledger.notes.close()


def sync(
    engine: Engine, now: datetime | None = None, *, dry: bool = False, full: bool = False
) -> TimerChanges:
    """Run the engine's timer sync through a ledger; ``dry`` writes nothing."""
    store = LedgerStore(engine.store, dry=dry)
    try:
        firing.sync_timers(engine, now, full=full, store=cast(Store, store))
        return store.changes()
    finally:
        store.close()


__all__ = ["EXAMPLES", "LedgerStore", "TimerChanges", "TimerMove", "sync"]
