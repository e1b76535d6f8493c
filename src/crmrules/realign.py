"""Realignment: recompute every client's territories and segments, a chunk at a time.

After a reorganisation (territories or segments redrawn in the regulation)
the stored memberships are stale until each client is stored again.
``realign`` walks the clients in id order, a chunk per transaction: for each
client it computes the memberships the regulation gives now (hierarchy,
exclusive siblings by priority, manual overrides honoured) and stores the
client only if they differ, which raises ``territory.entered`` /
``territory.left`` with their rules and contact plans, as any change does.

Exactly once, even when a run is killed and started again: a chunk's
changes and the effects of its events commit together or not at all, and a
client already realigned computes no change the next time, so a rerun
simply continues where the killed one stopped. A dry run computes the same
changes in read-only transactions and writes nothing.

On the SQL store a chunk is screened as a set first (``_screen``): one query
gives each client's stored territories and segments and, per territory and
segment, whether its condition holds (the conditions compiled to SQL, crmrules.rules.sql);
one more gives the stored memberships. The same pure functions as a
client's own recompute (crmrules.rules.territories, .segments) then work
out the memberships from those answers, without loading or validating the
client. Only the clients whose memberships would change (a few in a
reorganisation) go through the per-client path that stores them and raises
their events. The SQL reads the stored territories and segments where a
condition names them, as the per-client path does (it evaluates the
client's stored record), so the two agree; tests/test_realign_sets.py
checks that they do on random regulations, clients and overrides. A
condition SQL cannot decide alone (``matches``, plugin operators, fields
of managers) is decided in Python on the clients its SQL could not rule out.

The chunks are independent, so they may run anywhere: ``realign(fan_out=...)``
hands them to a ``FanOut`` (crmrules.adapters.celery sends each as a task to
the workers) and adds up the reports it gathers. A chunk's event id is
``realign:<run>:<first id>`` wherever it runs, so a chunk run twice (a task
delivered again after its worker died) changes nothing the second time.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import sqlalchemy as sa

from crmrules.adapters.sqlalchemy import SQLAlchemyTransaction
from crmrules.errors import CrmRulesError
from crmrules.model import Client, TerritoryMembership
from crmrules.result import Result
from crmrules.rules import segments as segmenting
from crmrules.rules.conditions import ALWAYS, Condition, Facts
from crmrules.rules.sql import compile_filter
from crmrules.rules.territories import recompute
from crmrules.selection import CHUNK, Selection, id_chunks
from crmrules.store import Transaction

if TYPE_CHECKING:
    from crmrules.engine import Engine
    from crmrules.run import Run

#: How many client ids a report keeps as examples per territory and direction.
EXAMPLES = 5

#: Told of each client a dry run would change: (transaction, client, its new territories, now).
Observer = Callable[[Transaction, Client, frozenset[str], datetime], None]


@dataclass
class Moves:
    """How many clients enter and leave one territory or segment, with a few of them."""

    entered: int = 0
    left: int = 0
    entering: list[str] = field(default_factory=list)
    leaving: list[str] = field(default_factory=list)

    def add(self, client_id: str, entered: bool) -> None:
        if entered:
            self.entered += 1
            if len(self.entering) < EXAMPLES:
                self.entering.append(client_id)
        else:
            self.left += 1
            if len(self.leaving) < EXAMPLES:
                self.leaving.append(client_id)


@dataclass
class RealignReport:
    """What a realignment changed (or, in a dry run, would change)."""

    dry_run: bool
    clients: int = 0
    changed: int = 0
    territories: dict[str, Moves] = field(default_factory=dict)
    segments: dict[str, Moves] = field(default_factory=dict)
    #: client id -> why it could not be realigned (the others were)
    failed: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        verb = "would change" if self.dry_run else "changed"
        moves = sum(
            m.entered + m.left for m in (*self.territories.values(), *self.segments.values())
        )
        text = f"{self.clients} clients, {verb} {self.changed} ({moves} entries and exits)"
        return text + (f", {len(self.failed)} failed" if self.failed else "")

    def to_dict(self) -> dict[str, Any]:
        def moves(table: dict[str, Moves]) -> dict[str, Any]:
            return {k: vars(v) for k, v in sorted(table.items())}

        return {
            "dry_run": self.dry_run,
            "clients": self.clients,
            "changed": self.changed,
            "territories": moves(self.territories),
            "segments": moves(self.segments),
            "failed": dict(self.failed),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RealignReport:
        """The report ``to_dict`` gave (as a task returns it)."""

        def moves(table: dict[str, Any]) -> dict[str, Moves]:
            return {name: Moves(**values) for name, values in table.items()}

        return cls(
            dry_run=data["dry_run"],
            clients=data["clients"],
            changed=data["changed"],
            territories=moves(data["territories"]),
            segments=moves(data["segments"]),
            failed=dict(data["failed"]),
        )

    def merge(self, other: RealignReport) -> None:
        """Add another chunk's report to this one (examples kept up to EXAMPLES)."""
        self.clients += other.clients
        self.changed += other.changed
        self.failed.update(other.failed)
        for mine, theirs in (
            (self.territories, other.territories),
            (self.segments, other.segments),
        ):
            for name, moves in theirs.items():
                total = mine.setdefault(name, Moves())
                total.entered += moves.entered
                total.left += moves.left
                total.entering = (total.entering + moves.entering)[:EXAMPLES]
                total.leaving = (total.leaving + moves.leaving)[:EXAMPLES]

    def _record(
        self, client_id: str, old: Client, territories: frozenset[str], in_segments: frozenset[str]
    ) -> None:
        for table, before, after in (
            (self.territories, old.territories, territories),
            (self.segments, old.segments, in_segments),
        ):
            for name in sorted(after - before):
                table.setdefault(name, Moves()).add(client_id, True)
            for name in sorted(before - after):
                table.setdefault(name, Moves()).add(client_id, False)


@dataclass(frozen=True)
class _Computed:
    territories: frozenset[str]
    segments: frozenset[str]
    unchanged: bool


def _compute(engine: Engine, tx: Transaction, client: Client, now: datetime) -> _Computed:
    """The memberships the regulation gives the client now, and whether that is what is stored."""
    regulation = engine.regulation
    typed = engine.typed_client(client)
    stored = tx.memberships(client.id)
    territorial, segmental = segmenting.split(stored)
    change = recompute(regulation, typed, Facts({"client": typed.record()}, now), territorial, now)
    placed = typed.model_copy(update={"territories": change.territories})
    entries = segmenting.recompute(
        regulation.segments, placed, Facts({"client": placed.record()}, now), segmental, now
    )
    members = segmenting.members(entries)
    unchanged = (
        change.territories == client.territories
        and members == client.segments
        and [*change.memberships, *entries] == list(stored)
    )
    return _Computed(change.territories, members, unchanged)


def _screen(engine: Engine, tx: Transaction, ids: list[str], now: datetime) -> list[str]:
    """The clients of ``ids`` whose memberships may change: all of them but on the SQL store.

    There, the clients whose memberships the regulation leaves as they are
    stored are found by SQL for the whole chunk (see the module docstring)
    and left out; the others (and any client whose screening fails) are
    returned, in order, for the per-client path to decide and store.
    """
    if not isinstance(tx, SQLAlchemyTransaction) or not tx.indexes_clients:
        return ids
    regulation = engine.regulation
    conditions: list[tuple[str, str, Condition]] = [
        *(("territory", t.id, t.condition) for t in regulation.territories.values()),
        *(("segment", s.id, s.condition) for s in regulation.segments.values()),
    ]
    t = tx.tables
    dialect = tx.connection.dialect.name
    filters = [
        compile_filter(
            condition.tree,
            values=t.client_values,
            client_id=t.clients.c.id,
            calendar=regulation.calendar,
            now=now,
            dialect=dialect,
            per_client=True,
        )
        for _, _, condition in conditions
    ]
    # may: the condition may hold (if inexact, Python decides); exact: it does.
    columns = [sa.case((f.where, 1), else_=0) for f in filters]
    record = t.clients.c.data
    query = sa.select(t.clients.c.id, record["territories"], record["segments"], *columns)
    rows = {row[0]: row for row in tx.connection.execute(query.where(t.clients.c.id.in_(ids)))}
    query = sa.select(t.memberships.c.client_id, t.memberships.c.data)
    found = tx.connection.execute(query.where(t.memberships.c.client_id.in_(ids)))
    stored: dict[str, list[dict[str, Any]]] = {row[0]: row[1] for row in found}
    inexact = [i for i, f in enumerate(filters) if not f.exact]
    typed: dict[str, Client] = {}
    if inexact:
        maybe = [cid for cid, row in rows.items() if any(row[3 + i] for i in inexact)]
        typed = {c.id: engine.typed_client(c) for c in tx.load_clients(maybe)}
    # Clients alike in what decides (the answers, the stored entries' territories and
    # sources, the stored territories and segments) are alike in the outcome: a
    # continuing entry keeps its stored ``since`` and a new one makes the list differ.
    outcomes: dict[tuple[Any, ...], bool] = {}
    changing: list[str] = []
    for client_id in ids:
        row = rows.get(client_id)
        if row is None:
            continue  # gone since the ids were listed
        try:
            entries = stored.get(client_id) or []
            client = typed.get(client_id)
            answers = []
            for i, (condition, f) in enumerate(zip(conditions, filters, strict=True)):
                holds = bool(row[3 + i])
                if holds and not f.exact:
                    assert client is not None
                    holds = condition[2](Facts({"client": client.record()}, now))
                answers.append(holds)
            old = (frozenset(row[1] or ()), frozenset(row[2] or ()))
            shape = tuple(
                (m.get("territory"), m.get("source"), m.get("client") == client_id) for m in entries
            )
            key = (tuple(answers), shape, old)
            unchanged = outcomes.get(key)
            if unchanged is None:
                memberships = [TerritoryMembership.model_validate(m) for m in entries]
                known: dict[str, dict[str, bool]] = {"territory": {}, "segment": {}}
                for (kind, name, _), holds in zip(conditions, answers, strict=True):
                    known[kind][name] = holds
                unchanged = _unchanged(engine, client_id, old, memberships, known, now)
                outcomes[key] = unchanged
            if not unchanged:
                changing.append(client_id)
        except CrmRulesError:
            changing.append(client_id)  # the per-client path records why
    return changing


def _unchanged(
    engine: Engine,
    client_id: str,
    old: tuple[frozenset[str], frozenset[str]],
    stored: list[TerritoryMembership],
    known: dict[str, dict[str, bool]],
    now: datetime,
) -> bool:
    """``_compute(...).unchanged`` for a client whose conditions are ``known``.

    ``old``: its stored territories and segments; ``stored``: its membership list.
    """
    regulation = engine.regulation
    nobody = Facts({}, now)  # every condition is known: nothing is read from the facts
    territorial, segmental = segmenting.split(stored)
    placeholder = Client(id=client_id, territories=old[0])
    change = recompute(regulation, placeholder, nobody, territorial, now, known["territory"])
    entries = segmenting.recompute(
        regulation.segments, placeholder, nobody, segmental, now, known["segment"]
    )
    return (
        change.territories == old[0]
        and segmenting.members(entries) == old[1]
        and [*change.memberships, *entries] == stored
    )


class FanOut(Protocol):
    """Runs realignment chunks elsewhere (on other workers) and gives back their reports."""

    def realign_chunks(
        self, run_id: str, chunks: Iterable[list[str]], dry_run: bool
    ) -> Iterator[RealignReport]:
        """One report per chunk, each from ``realign_chunk``, in any order."""
        ...


def realign(
    engine: Engine,
    *,
    dry_run: bool = False,
    chunk: int = CHUNK,
    progress: Callable[[int], None] | None = None,
    observe: Observer | None = None,
    fan_out: FanOut | None = None,
) -> RealignReport:
    """Recompute every client's territories and segments; see the module docstring.

    ``progress`` is called with the number of clients done after each chunk;
    ``observe`` (dry runs, in this process) with each client that would change
    and its new territories. With ``fan_out`` the chunks run where it sends
    them, and their reports are added up here.
    """
    report = RealignReport(dry_run=dry_run)
    run_id = uuid.uuid4().hex[:12]
    everyone = Selection(ALWAYS, engine.regulation.calendar, engine.clock.now())
    chunks = id_chunks(engine.store, everyone, chunk=chunk)
    if fan_out is None:
        parts: Iterable[RealignReport] = (
            realign_chunk(engine, run_id, ids, dry_run=dry_run, observe=observe) for ids in chunks
        )
    else:
        parts = fan_out.realign_chunks(run_id, chunks, dry_run)
    for part in parts:
        report.merge(part)
        if progress is not None:
            progress(part.clients)
    return report


def realign_chunk(
    engine: Engine,
    run_id: str,
    ids: list[str],
    *,
    dry_run: bool = False,
    observe: Observer | None = None,
) -> RealignReport:
    """Realign the clients ``ids`` (one chunk of run ``run_id``) in one transaction.

    Running the same chunk again changes nothing: its clients are realigned
    already, so it raises no event twice.
    """
    report = RealignReport(dry_run=dry_run)
    if not ids:
        return report
    if dry_run:
        with engine.store.transaction() as tx:
            now = engine.clock.now()
            for client_id in _screen(engine, tx, ids, now):
                _dry(engine, tx, client_id, now, report, observe)
    else:
        _apply(engine, ids, f"realign:{run_id}:{ids[0]}", report)
    report.clients = len(ids)
    return report


def _dry(
    engine: Engine,
    tx: Transaction,
    client_id: str,
    now: datetime,
    report: RealignReport,
    observe: Observer | None = None,
) -> None:
    client = tx.get_client(client_id)
    if client is None:
        return
    try:
        computed = _compute(engine, tx, client, now)
    except CrmRulesError as error:
        report.failed[client_id] = str(error)
        return
    if not computed.unchanged:
        report.changed += 1
        report._record(client_id, client, computed.territories, computed.segments)
        if observe is not None:
            observe(tx, client, computed.territories, now)


def _apply(engine: Engine, ids: list[str], event_id: str, report: RealignReport) -> None:
    """One chunk in one transaction; the events it raises run with it."""
    changes: list[tuple[str, Client, Client]] = []
    failed: dict[str, str] = {}

    def change(run: Run) -> None:
        changes.clear()
        failed.clear()
        for client_id in _screen(engine, run.tx, ids, run.now):
            run.tx.lock_subject(client_id, None)
            client = run.tx.get_client(client_id)
            if client is None:
                continue
            try:
                with run.tx.savepoint():
                    if _compute(engine, run.tx, client, run.now).unchanged:
                        continue
                    queued = len(run.queue)
                    try:
                        # Its own event ids: "<chunk>/territory.entered:<client>:<territory>".
                        new = run.store_client(client, client, None, 0, f":{client_id}")
                    except BaseException:
                        del run.queue[queued:]
                        raise
            except CrmRulesError as error:
                failed[client_id] = str(error)
                continue
            changes.append((client_id, client, new))

    result = engine._host_change(event_id, (None, None), change)
    if result.duplicate:
        # Done already (its worker died before its report got back): the chunk's moves
        # are read back from the territory events its committed run raised. Changes
        # that raise no event (segments) are not in them.
        _moves_from(result, report)
        return
    report.failed.update(failed)
    for client_id, old, new in changes:
        report.changed += 1
        report._record(client_id, old, new.territories, new.segments)


def _moves_from(result: Result, report: RealignReport) -> None:
    clients: set[str] = set()
    for event in result.events:
        if event.type not in ("territory.entered", "territory.left"):
            continue
        # "<chunk>/territory.entered:<client>:<territory>"; a territory id has no colon.
        territory = event.id.rsplit(":", 1)[1]
        client_id = event.client
        assert client_id is not None  # a territory event is about its client
        clients.add(client_id)
        moves = report.territories.setdefault(territory, Moves())
        moves.add(client_id, event.type == "territory.entered")
    report.changed += len(clients)


__all__ = ["EXAMPLES", "FanOut", "Moves", "RealignReport", "realign", "realign_chunk"]
