"""Schedule occurrences fired over the client base as a set, a chunk at a time.

When an ``every`` / ``cron`` rule falls due there is one timer for the
occurrence. Firing it is three steps, each its own short transaction:

1. ``plan_chunks`` opens the occurrence: it fixes the moment the condition
   is decided at, cuts the clients SQL takes for the rule's condition
   (compiled to a WHERE clause, crmrules.rules.sql) into id ranges of
   ``size`` of them, and keeps the ranges in the timer's data. Asked again,
   it hands out the same ranges.
2. ``fire_chunk`` runs the rule for the clients of one range that satisfy
   the condition (SQL takes them again; Python decides only the leaves SQL
   cannot), isolating each client (one broken
   client is recorded, the others get their tasks), and marks the range done in the
   timer's data **in the same transaction** as the effects. A range marked
   done is never run again: that is the exactly-once record, per
   (occurrence, range) and so per (occurrence, client), because the ranges
   are disjoint and fixed when the occurrence opens.
3. The transaction that marks the last range done settles the timer
   (``fired``), writes the occurrence's summary to the audit log (clients
   considered and matched, rules fired, effects, failures) and plans the
   next occurrence.

A worker killed in the middle of a range commits nothing of it; whoever
fires the occurrence next (the same timer, re-claimed after its lease, or
a chunk task of a distributed worker) runs the ranges not marked done.
Clients that do not match leave no audit row; ``explain`` says on demand
why one client did or did not match.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa

from crmrules import failures, timers
from crmrules.adapters.sqlalchemy import SQLAlchemyTransaction
from crmrules.errors import CrmRulesError
from crmrules.model import Event
from crmrules.result import EventRecord, Result, RuleOutcome
from crmrules.rules.conditions import Facts
from crmrules.rules.regulation import Rule
from crmrules.rules.ruleset import explain as explain_condition
from crmrules.rules.sql import Filter
from crmrules.run import Lending, Run
from crmrules.selection import Selection, client_source, with_manager
from crmrules.store import AuditEntry, ConflictError, Timer, TimerStatus, Transaction

if TYPE_CHECKING:
    from crmrules.engine import Engine

#: Clients per chunk (one transaction each): an id range holding this many of the
#: clients SQL takes for the condition (the others in the range are only counted).
CHUNK_SIZE = 5_000
#: An occurrence fired by ``run_due`` keeps each client's outcomes and effects in the
#: Result it returns up to this many clients; beyond, the audit log and summary have them.
DETAIL_LIMIT = 10_000
#: How often a chunk is tried when another process changed the same rows meanwhile.
CONFLICT_RETRIES = 5


class OccurrenceError(CrmRulesError):
    """The timer named is not a schedule occurrence in the store."""


@dataclass(frozen=True)
class Chunk:
    """One range of an occurrence's clients: ids after ``after`` up to ``last`` (None: open).

    Plain data (``to_dict`` / ``from_dict``) to send to another process.
    """

    timer: str
    seq: int
    after: str | None
    last: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Chunk:
        return cls(str(data["timer"]), int(data["seq"]), data.get("after"), data.get("last"))

    def holds(self, client_id: str) -> bool:
        """Whether the id is in the range, compared as stores without SQL sort (code points)."""
        return (self.after is None or client_id > self.after) and (
            self.last is None or client_id <= self.last
        )


@dataclass
class ChunkReport:
    """What firing one chunk did.

    ``status``: ``fired`` (this call ran it), ``done`` (it had run before:
    the counts are those it recorded then), ``gone`` (the occurrence is
    settled, cancelled or no longer in the store: nothing run).
    ``settled``: this chunk was the occurrence's last, and settled its timer.
    """

    chunk: Chunk
    status: str
    considered: int = 0
    matched: int = 0
    fired: int = 0
    effects: int = 0
    #: (client id, reason) of each client whose rule run failed and was rolled back alone
    failed: list[tuple[str, str]] = field(default_factory=list)
    settled: bool = False
    #: this call's Result (each matching client's outcomes and effects); not sent anywhere
    result: Result | None = field(default=None, repr=False, compare=False)

    def counts(self) -> dict[str, int]:
        return {
            "considered": self.considered,
            "matched": self.matched,
            "fired": self.fired,
            "effects": self.effects,
            "failed": len(self.failed),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "chunk": self.chunk.to_dict(),
            "status": self.status,
            **self.counts(),
            "failures": [list(f) for f in self.failed],
            "settled": self.settled,
        }


@dataclass(frozen=True)
class OccurrenceExplanation:
    """Why one client did or did not match a schedule at one occurrence."""

    timer: str
    rule: str
    client: str
    moment: datetime
    matched: bool
    reason: str
    #: the leaves the decision looked at, "field op value: actual X → true/false"
    trace: tuple[str, ...]
    #: what the audit log holds for this client at this occurrence (fired, effects, held...)
    audit: tuple[str, ...]

    def describe(self) -> str:
        verdict = "matched" if self.matched else "did not match"
        lines = [
            f"client {self.client} {verdict} rule {self.rule} at {self.moment.isoformat()} "
            f"(occurrence {self.timer}): {self.reason}",
            *(f"  {line}" for line in self.trace),
        ]
        lines += [f"  audit: {line}" for line in self.audit] or ["  audit: nothing recorded"]
        return "\n".join(lines)


class _Rollback(Exception):
    """Leave the chunk's transaction without committing anything."""

    def __init__(self, report: ChunkReport) -> None:
        self.report = report


# -- the timers of a schedule


def schedule_timer(
    rule: Rule,
    due: datetime,
    now: datetime,
    start: datetime | None = None,
    n: int = 0,
    version: str | None = None,
) -> Timer:
    """An occurrence of a schedule; ``every`` series remember their start and number."""
    data: dict[str, Any] = {"trigger": rule.trigger.describe()}
    if rule.trigger.every is not None:
        data |= {"start": (start or due).isoformat(), "n": n}
    return Timer(
        key=f"schedule:{rule.id}:{due.isoformat()}",
        kind="schedule",
        rule=rule.id,
        due_at=due,
        data=data,
        created_at=now,
        regulation=version,
    )


def parse_moment(text: str) -> Any:
    try:
        return datetime.fromisoformat(text) if "T" in text else date.fromisoformat(text)
    except ValueError:
        return datetime.fromisoformat(text)


def _plan_next(engine: Engine, tx: Transaction, timer: Timer, rule: Rule, now: datetime) -> None:
    """The occurrence after ``timer``: never in the past of ``now``, counted from the start."""
    calendar = engine.regulation.calendar
    trigger = rule.trigger
    if trigger.every is None:
        after = timers.following(trigger, timer.due_at, now, calendar)
        tx.plan_timer(schedule_timer(rule, after, now, version=engine.regulation.release.id))
        return
    start = parse_moment(str(timer.data.get("start", timer.due_at.isoformat())))
    n = int(timer.data.get("n", 0))
    k, after = timers.next_occurrence(trigger.every, trigger.at, start, n, now, calendar)
    tx.plan_timer(schedule_timer(rule, after, now, start, k, engine.regulation.release.id))


# -- opening an occurrence


def _selection(engine: Engine, rule: Rule, moment: datetime) -> Selection:
    regulation = engine.regulation
    return Selection(rule.condition.tree, regulation.calendar, moment, with_manager(regulation))


def _sql(tx: Transaction) -> SQLAlchemyTransaction | None:
    """The SQL transaction (clients in crmrules' tables or a host's: see client_source)."""
    if isinstance(tx, SQLAlchemyTransaction):
        return tx
    return None


def _boundaries(tx: Transaction, selection: Selection, size: int) -> list[str]:
    """Every ``size``-th id of the clients SQL may take: where one chunk ends.

    In the database's own order of the primary key (any total order will do, as
    long as the ranges are cut and read in the same one), so the ranges are
    read through the index. Without SQL, every ``size``-th client.
    """
    sql = _sql(tx)
    if sql is None:
        return sorted(tx.client_ids())[size - 1 :: size]
    source = client_source(sql)
    column = source.id
    numbered = (
        sa.select(column.label("id"), sa.func.row_number().over(order_by=column).label("n"))
        .select_from(source.table)
        .where(_filter(sql, selection).where)
        .subquery()
    )
    query = sa.select(numbered.c.id).where(numbered.c.n % size == 0).order_by(numbered.c.id)
    return list(sql.connection.execute(query).scalars())


def _chunks(timer: Timer) -> list[Chunk]:
    return [Chunk(timer.key, seq, a, b) for seq, (a, b) in enumerate(timer.data["chunks"])]


def _timer_event(timer: Timer, moment: datetime) -> Event:
    return Event(
        id=f"timer:{timer.key}",
        type="timer",
        occurred_at=moment,
        data={"timer": timer.key, "due_at": timer.due_at.isoformat()},
    )


def plan_chunks(
    engine: Engine,
    timer_key: str,
    size: int = CHUNK_SIZE,
    *,
    now: datetime | None = None,
    worker: str | None = None,
) -> list[Chunk]:
    """Open the occurrence of schedule timer ``timer_key``: its chunks, fixed once.

    The first call decides: a rule gone or disabled cancels the timer, a
    timer more than the rule's ``max_lateness`` late is dropped (both
    settle it, and no chunk is returned); otherwise the condition is decided
    at ``now`` (default: the clock's) for every chunk, and the id ranges are
    kept with the timer. Later calls return the same chunks (``size`` is
    then ignored), or none once the occurrence is settled. With ``worker``,
    the timer must be leased to it (``run_due``); otherwise nothing is done.
    """
    if size < 1:
        raise ValueError(f"a chunk holds at least one client, not {size}")
    for attempt in range(1, CONFLICT_RETRIES + 1):
        try:
            with engine.store.transaction() as tx:
                return _open(engine, tx, timer_key, size, now, worker)
        except ConflictError:
            if attempt == CONFLICT_RETRIES:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _open(
    engine: Engine,
    tx: Transaction,
    key: str,
    size: int,
    now: datetime | None,
    worker: str | None,
) -> list[Chunk]:
    timer = tx.lock_timer(key)
    if timer is None or timer.kind != "schedule":
        raise OccurrenceError(f"no schedule occurrence {key!r} in the store")
    if timer.status is not TimerStatus.PENDING:
        return []
    if worker is not None and timer.lease_owner != worker:
        return []
    if "chunks" in timer.data:
        return _chunks(timer)
    moment = timers.utc(now or engine.clock.now())
    rule = engine.rules_by_id.get(timer.rule or "")
    calendar = engine.regulation.calendar
    result = Result(f"timer:{key}")
    event = _timer_event(timer, moment)
    result.events.append(EventRecord(event.id, event.type, 0, None, None))
    due_text = calendar.local(timer.due_at).isoformat()
    late = moment - timer.due_at
    if rule is None or not rule.enabled:
        _settle(tx, timer, moment, TimerStatus.CANCELLED, f"rule {timer.rule} is gone or disabled")
        tx.save_event_result(result.event_id, result.to_dict())
        return []
    if rule.max_lateness is not None and moment > calendar.add(timer.due_at, rule.max_lateness):
        message = (
            f"dropped: due {due_text}, {late} late, more than max_lateness {rule.max_lateness}"
        )
        _note(tx, moment, event, "held", rule.id, message)
        result.outcomes.append(RuleOutcome(rule.id, event.id, event.type, "held", message))
        _settle(tx, timer, moment, TimerStatus.DROPPED, message)
        tx.save_event_result(result.event_id, result.to_dict())
        return []
    from crmrules.firing import LATE

    if late > LATE:
        _note(tx, moment, event, "late", rule.id, f"fired {late} late (due {due_text})")
    ends = _boundaries(tx, _selection(engine, rule, moment), size)
    starts: list[str | None] = [None, *ends]
    stops: list[str | None] = [*ends, None]
    ranges = [list(pair) for pair in zip(starts, stops, strict=True)]
    data = {**timer.data, "moment": moment.isoformat(), "chunks": ranges, "done": {}}
    opened = timer.model_copy(update={"data": data})
    tx.put_timer(opened)
    return _chunks(opened)


def _note(tx: Transaction, at: datetime, event: Event, kind: str, rule: str, message: str) -> None:
    tx.add_audit(
        AuditEntry(
            at=at, event_id=event.id, event_type=event.type, kind=kind, rule=rule, message=message
        )
    )


def _settle(
    tx: Transaction, timer: Timer, at: datetime, status: TimerStatus, note: str | None
) -> None:
    update = {"status": status, "fired_at": at, "note": note, "lease_owner": None}
    tx.put_timer(timer.model_copy(update=update))


# -- firing one chunk


def fire_chunk(engine: Engine, chunk: Chunk) -> ChunkReport:
    """Run the occurrence's rule for the matching clients of ``chunk``; at most once.

    Safe to call again, from any process, after a crash or concurrently:
    a chunk already done reports ``done`` with what it did then.
    """
    for attempt in range(1, CONFLICT_RETRIES + 1):
        try:
            with engine.store.transaction() as tx:
                return _fire(engine, tx, chunk)
        except _Rollback as stop:
            return stop.report
        except ConflictError:
            if attempt == CONFLICT_RETRIES:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _done_report(chunk: Chunk, counts: dict[str, Any]) -> ChunkReport:
    failed = [(str(c), str(r)) for c, r in counts.get("failures", [])]
    return ChunkReport(
        chunk,
        "done",
        considered=int(counts.get("considered", 0)),
        matched=int(counts.get("matched", 0)),
        fired=int(counts.get("fired", 0)),
        effects=int(counts.get("effects", 0)),
        failed=failed,
    )


#: Compiled WHERE clauses of the occurrences being fired, by rule, moment and tables.
_FILTERS: dict[tuple[int, datetime, str, int], Filter] = {}


def _filter(sql: SQLAlchemyTransaction, selection: Selection) -> Filter:
    """The condition as SQL, compiled once for all the chunks of an occurrence."""
    key = (id(selection.tree), selection.now, sql.connection.dialect.name, id(sql.tables))
    found = _FILTERS.get(key)
    if found is None:
        if len(_FILTERS) >= 64:
            _FILTERS.clear()
        found = _FILTERS[key] = selection.sql(sql)
    return found


def _candidates(tx: Transaction, selection: Selection, chunk: Chunk) -> tuple[list[str], int, bool]:
    """The chunk's candidate ids, how many clients the range holds, and whether SQL decided."""
    sql = _sql(tx)
    if sql is None:
        ids = sorted(i for i in tx.client_ids() if chunk.holds(i))
        return ids, len(ids), False
    source = client_source(sql)
    column = source.id
    in_range: list[sa.ColumnElement[bool]] = []  # in the order _boundaries cut them
    if chunk.after is not None:
        in_range.append(column > chunk.after)
    if chunk.last is not None:
        in_range.append(column <= chunk.last)
    where = _filter(sql, selection)
    query = sa.select(column).select_from(source.table).where(where.where, *in_range)
    ids = [str(i) for i in sql.connection.execute(query.order_by(column)).scalars()]
    count = sa.select(sa.func.count()).select_from(source.table).where(*in_range)
    considered = int(sql.connection.execute(count).scalar_one())
    return ids, considered, where.exact


def _fire(engine: Engine, tx: Transaction, chunk: Chunk) -> ChunkReport:
    timer = tx.get_timer(chunk.timer)
    if timer is None or timer.status is not TimerStatus.PENDING or "chunks" not in timer.data:
        return ChunkReport(chunk, "gone")
    done = timer.data.get("done", {})
    if str(chunk.seq) in done:
        return _done_report(chunk, done[str(chunk.seq)])
    moment = datetime.fromisoformat(str(timer.data["moment"]))
    rule = engine.rules_by_id.get(timer.rule or "")
    if rule is None or not rule.enabled:
        current = tx.lock_timer(timer.key)
        if current is not None and current.status is TimerStatus.PENDING:
            note = f"rule {timer.rule} is gone or disabled"
            _settle(tx, current, moment, TimerStatus.CANCELLED, note)
        return ChunkReport(chunk, "gone")
    selection = _selection(engine, rule, moment)
    ids, considered, exact = _candidates(tx, selection, chunk)
    sql = _sql(tx)
    if sql is not None and ids:
        sql.lock_clients(ids)  # what lock_subject does per client, in one statement
        sql.load_clients(ids)  # one query; the runs below read them from the transaction
    if not exact and ids:
        ids = _matching(engine, tx, selection, ids, moment)
    run = _run(engine, tx, timer, rule, moment, chunk, ids, locked=sql is not None)
    report = ChunkReport(
        chunk,
        "fired",
        considered=considered,
        matched=len(ids),
        fired=sum(1 for o in run.result.outcomes if o.rule == rule.id and o.status == "fired"),
        effects=len(run.result.effects),
        failed=[(f.event.get("client") or "", f.reason) for f in run.failures],
        result=run.result,
    )
    current = tx.lock_timer(timer.key)  # taken last: chunks of one occurrence run side by side
    if current is None or current.status is not TimerStatus.PENDING:
        raise _Rollback(ChunkReport(chunk, "gone"))
    done = dict(current.data.get("done", {}))
    if str(chunk.seq) in done:  # another process ran it meanwhile: undo this run
        raise _Rollback(_done_report(chunk, done[str(chunk.seq)]))
    done[str(chunk.seq)] = {**report.counts(), "failures": [list(f) for f in report.failed]}
    updated = current.model_copy(update={"data": {**current.data, "done": done}})
    failures.save(tx, run.failures)
    for entry in run.entries():
        tx.add_audit(entry)
    if len(done) == len(current.data["chunks"]):
        _finish(engine, tx, updated, rule, moment)
        report.settled = True
    else:
        tx.put_timer(updated)
    return report


def _matching(
    engine: Engine, tx: Transaction, selection: Selection, ids: list[str], moment: datetime
) -> list[str]:
    """The clients of ``ids`` the condition holds for, decided here (no SQL decided it).

    A store that lends its records (the memory store) is read without a copy:
    the stored client's flat record and its manager's, as ``with_manager``
    gives them (the base's every client, every occurrence, in a simulated year).
    """
    condition = selection.condition()
    if getattr(tx, "lend_client", None) is None:
        clients = [c for c in (tx.get_client(i) for i in ids) if c is not None]
        return [c.id for c in clients if condition(selection.facts(tx, c, moment))]
    lending, managers = cast(Lending, tx), engine.regulation.managers
    matching = []
    for client_id in ids:
        lent = lending.lend_client(client_id)
        if lent is None:
            continue
        client, record = lent
        manager = None
        if client.responsible:
            found = lending.lend_manager(client.responsible)
            if found is not None:
                manager = found[1]
            elif (known := managers.get(client.responsible)) is not None:
                manager = known.record()
        if condition(Facts({"client": record, "manager": manager}, moment)):
            matching.append(client_id)
    return matching


def _run(
    engine: Engine,
    tx: Transaction,
    timer: Timer,
    rule: Rule,
    moment: datetime,
    chunk: Chunk,
    ids: list[str],
    *,
    locked: bool,
) -> Run:
    """The rule for each client, isolated from the others.

    First all together in one savepoint, no savepoint per client, their
    tasks written by multi-row INSERTs; if any client's run fails (or a task
    was there already), that is undone and the chunk runs again with a
    savepoint per client, so the failure is that client's alone. Either way
    the effects are the same as running the clients one by one.
    """
    event = _timer_event(timer, moment)
    event_id = f"timer:{timer.key}#{chunk.seq}"
    run = Run(engine.setting, tx, moment, _result(engine, event_id), optimistic=True)
    sql = _sql(tx)
    try:
        with tx.savepoint(), sql.deferred_tasks() if sql is not None else nullcontext():
            _each(run, event, rule, ids, locked)
        return run
    except failures.INFRASTRUCTURE:
        raise
    except Exception:  # some client failed: run the chunk again, isolating each
        run = Run(engine.setting, tx, moment, _result(engine, event_id))
        _each(run, event, rule, ids, locked)
        return run


def _result(engine: Engine, event_id: str) -> Result:
    return Result(event_id, regulation=engine.regulation.release.id)


def _each(run: Run, event: Event, rule: Rule, ids: list[str], locked: bool) -> None:
    for client_id in ids:
        if not locked:
            run.tx.lock_subject(client_id, None)
        per_client = timers.updated(event, {"id": f"{event.id}:{client_id}", "client": client_id})

        def work(step: failures.Step, per_client: Event = per_client) -> None:
            run.cascade(per_client, [rule])

        failures.isolate(run, per_client, 0, rule, work, refuse=False)


def summary(timer: Timer) -> dict[str, int]:
    """The occurrence's counts so far: clients considered and matched, fired, effects, failed."""
    totals = {"considered": 0, "matched": 0, "fired": 0, "effects": 0, "failed": 0}
    for counts in timer.data.get("done", {}).values():
        for name in totals:
            totals[name] += int(counts.get(name, 0))
    totals["chunks"] = len(timer.data.get("chunks", []))
    return totals


def _finish(
    engine: Engine,
    tx: Transaction,
    timer: Timer,
    rule: Rule,
    moment: datetime,
) -> None:
    """The last chunk is done: the summary, the timer fired, the next occurrence planned."""
    totals = summary(timer)
    text = (
        f"occurrence due {engine.regulation.calendar.local(timer.due_at).isoformat()}: "
        f"{totals['considered']} client(s) considered, {totals['matched']} matched, "
        f"{totals['fired']} fired, {totals['effects']} effect(s), {totals['failed']} failed"
    )
    event = _timer_event(timer, moment)
    tx.add_audit(
        AuditEntry(
            at=moment,
            event_id=event.id,
            event_type=event.type,
            kind="occurrence",
            rule=rule.id,
            message=text,
            data=totals,
        )
    )
    note = text
    if totals["failed"]:
        done = timer.data.get("done", {})
        first = next(
            (
                counts["failures"][0][1]
                for _, counts in sorted(done.items(), key=lambda i: int(i[0]))
                if counts.get("failures")
            ),
            "",
        )
        note += f"; {totals['failed']} client(s) failed (see crmrules failures), first: {first}"
    _settle(tx, timer, moment, TimerStatus.FIRED, note)
    _plan_next(engine, tx, timer, rule, moment)
    result = Result(event.id)
    result.events.append(EventRecord(event.id, event.type, 0, None, None))
    tx.save_event_result(event.id, result.to_dict())


# -- run_due's way: one worker fires the whole occurrence


def fire_occurrence(engine: Engine, timer: Timer, now: datetime, worker: str) -> Result | None:
    """Open the occurrence leased to ``worker`` and fire its chunks in turn.

    The Result has each client's outcomes and effects while the occurrence
    has at most ``DETAIL_LIMIT`` matching clients (a regulation test sees
    them as for any timer); None if it is not settled (another worker holds
    it, or settles it).
    """
    chunks = plan_chunks(engine, timer.key, CHUNK_SIZE, now=now, worker=worker)
    event = _timer_event(timer, now)
    detail: Result | None = Result(event.id, events=[EventRecord(event.id, "timer", 0, None, None)])
    settled = False
    for chunk in chunks:
        report = fire_chunk(engine, chunk)
        settled = settled or report.settled
        if detail is not None and report.result is not None:
            if report.matched + len(detail.events) > DETAIL_LIMIT:
                detail = None
            else:
                detail.events += report.result.events
                detail.outcomes += report.result.outcomes
                detail.effects += report.result.effects
                detail.errors += report.result.errors
    with engine.store.transaction() as tx:
        saved = tx.event_result(event.id)
        current = tx.get_timer(timer.key)
    if saved is None or current is None or current.status is TimerStatus.PENDING:
        return None
    if detail is not None and settled:
        return detail
    return Result.from_dict(saved)


# -- explaining one client


def find_occurrence(engine: Engine, rule_id: str, when: datetime | date) -> Timer:
    """The occurrence of schedule ``rule_id`` due on the day ``when`` (in the calendar's zone),
    or, for a moment, the last one due at or before it."""
    calendar = engine.regulation.calendar
    with engine.store.transaction() as tx:
        found = tx.find_timers(rule=rule_id, kind="schedule")
    if isinstance(when, datetime):
        earlier = [t for t in found if t.due_at <= timers.utc(when)]
        if earlier:
            return earlier[-1]
        raise OccurrenceError(f"rule {rule_id} has no occurrence due by {when.isoformat()}")
    on_day = [t for t in found if calendar.local(t.due_at).date() == when]
    if not on_day:
        raise OccurrenceError(f"rule {rule_id} has no occurrence on {when.isoformat()}")
    return on_day[0]


def explain(engine: Engine, timer_key: str, client_id: str) -> OccurrenceExplanation:
    """Why ``client_id`` did or did not match the occurrence of schedule timer ``timer_key``.

    The condition is decided again on the client **as stored now**, at the
    occurrence's moment (its relative dates, "30 days ago", count from
    then); the audit lines are what the occurrence recorded for the client.
    """
    with engine.store.transaction() as tx:
        timer = tx.get_timer(timer_key)
        if timer is None or timer.kind != "schedule":
            raise OccurrenceError(f"no schedule occurrence {timer_key!r} in the store")
        rule = engine.rules_by_id.get(timer.rule or "")
        if rule is None:
            raise OccurrenceError(f"rule {timer.rule} of occurrence {timer_key} is gone")
        client = tx.get_client(client_id)
        if client is None:
            raise OccurrenceError(f"no client {client_id!r} in the store")
        moment = datetime.fromisoformat(str(timer.data.get("moment", timer.due_at.isoformat())))
        facts = with_manager(engine.regulation)(tx, engine.typed_client(client), moment)
        event_id = f"timer:{timer.key}:{client_id}"
        audit = tuple(f"{e.kind}: {e.message}" for e in tx.audit_log(event_id=event_id))
    trace = explain_condition(rule.condition, facts)
    return OccurrenceExplanation(
        timer=timer_key,
        rule=rule.id,
        client=client_id,
        moment=moment,
        matched=trace.result,
        reason=trace.describe(),
        trace=tuple(leaf.describe() for leaf in trace.leaves),
        audit=audit,
    )


__all__ = [
    "CHUNK_SIZE",
    "DETAIL_LIMIT",
    "Chunk",
    "ChunkReport",
    "OccurrenceError",
    "OccurrenceExplanation",
    "explain",
    "find_occurrence",
    "fire_chunk",
    "fire_occurrence",
    "parse_moment",
    "plan_chunks",
    "schedule_timer",
    "summary",
]
