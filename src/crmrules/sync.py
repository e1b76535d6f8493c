"""Keeping timers in step with the regulation, without walking the base at every start.

``sync_timers`` runs at engine start and after a reload. What it must do
depends only on what the regulation says about time: the rules' triggers
(and whether they are enabled), the territories' contact plans, the stages'
deadlines, the calendar. Their fingerprint is kept in the store after each
sync, so a start with the same regulation as the last sync only makes sure
each schedule has its next occurrence planned: a query per schedule rule,
whatever the size of the base.

When the fingerprint differs (a time rule added or changed, a contact plan
added, a calendar moved), the pending timers are checked one by one
(cancelled, re-planned) and the clients are walked, both a chunk per
transaction, to plan what the new regulation wants for records already
stored. Records
written to the store behind the engine's back (an import straight into the
tables) get their timers with ``sync_timers(full=True)``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa

from crmrules import failures, occurrences, selection, timers
from crmrules.adapters.sqlalchemy import SQLAlchemyTransaction
from crmrules.model import Client
from crmrules.rules.conditions import ALWAYS, Leaf, Node
from crmrules.rules.regulation import Regulation
from crmrules.selection import Selection, id_chunks
from crmrules.store import Store, Timer, TimerStatus, Transaction

if TYPE_CHECKING:
    from crmrules.engine import Engine

log = logging.getLogger("crmrules.timers")

#: Rotation counters that record the last sync: a generation, and the fingerprint's own key.
GENERATION = "crmrules.sync:generation"
SYNCED = "crmrules.sync:"
#: Pending timers re-checked, and clients walked, per transaction when the timing changed.
CHUNK = selection.CHUNK


def fingerprint(regulation: Regulation) -> str:
    """A digest of everything in the regulation that decides which timers exist and when."""
    calendar = regulation.calendar
    parts: list[str] = [
        "calendar",
        str(calendar.tz.key),
        repr(sorted(calendar.weekend)),
        repr(sorted(calendar.extra_holidays)),
        repr(sorted(calendar.extra_workdays)),
        repr(calendar.working_hours),
        repr(calendar.country),
        repr(calendar.subdivision),
        repr(calendar.short_pre_holidays),
    ]
    for rule in sorted(regulation.rules, key=lambda r: r.id):
        if rule.trigger.kind != "event":
            parts += ["rule", rule.id, repr(rule.enabled), rule.trigger.describe()]
    for territory in sorted(regulation.territories.values(), key=lambda t: t.id):
        parts += ["territory", territory.id, *(str(p.every) for p in territory.contact_plan)]
    for pipeline in sorted(regulation.pipelines.values(), key=lambda p: p.id):
        parts += ["pipeline", pipeline.id]
        parts += [f"{stage.id}={stage.deadline}" for stage in pipeline.stages]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def _in_step(tx: Transaction, digest: str) -> bool:
    generation = tx.get_rotation(GENERATION)
    return generation > 0 and tx.get_rotation(SYNCED + digest) == generation


def _mark(tx: Transaction, digest: str) -> None:
    """This regulation's timers are in step now; any other fingerprint is not."""
    generation = tx.get_rotation(GENERATION) + 1
    tx.set_rotation(GENERATION, generation)
    tx.set_rotation(SYNCED + digest, generation)


def sync_timers(
    engine: Engine, now: datetime | None = None, *, full: bool = False, store: Store | None = None
) -> None:
    """Bring every timer in step with the regulation; after loading or reloading it.

    Always: each enabled schedule has its next occurrence planned. When the
    regulation's timing changed since the last sync (or ``full``): timers of
    removed or disabled rules (and removed contact plans) are cancelled,
    timers of rules whose offset or schedule changed are re-planned, and
    time triggers, stage deadlines and contact plans are planned for the
    records already in the store, a chunk of clients per transaction.
    ``store``: the engine's store seen through a wrapper (the impact report's
    ledger, which counts the changes and, dry, keeps them from the database).
    """
    store = store or engine.store
    now = timers.utc(now or engine.clock.now())
    digest = fingerprint(engine.regulation)
    with store.transaction() as tx:
        walk = full or not _in_step(tx, digest)
        if not walk:
            _plan_schedules(engine, tx, now)
    if not walk:
        return
    for keys in pending_keys(engine.store, CHUNK):  # keys only: read past any wrapper
        with store.transaction() as tx:
            for key in keys:
                _resync(engine, tx, key, now)
    with store.transaction() as tx:
        _plan_schedules(engine, tx, now)
    needs = _Needs.of(engine.regulation)
    if needs.clients is not None:
        chosen = Selection(needs.clients, engine.regulation.calendar, now)
        for ids in id_chunks(engine.store, chosen, chunk=CHUNK):  # ids only: past any wrapper
            with store.transaction() as tx:
                for client_id in ids:
                    _plan_client(engine, tx, client_id, now, needs)
    with store.transaction() as tx:
        _mark(tx, digest)


def pending_keys(store: Store, chunk: int) -> Iterator[list[str]]:
    """The pending timers' keys in key order, up to ``chunk`` per short transaction (none empty).

    So a change that re-plans a timer of each of a million clients never holds
    them all: each chunk is re-checked in a transaction of its own. On the SQL
    store each chunk is one query that walks the primary key on from the last
    key read; the status is tested on the rows it reads, not in the query,
    else SQLite takes the status index and sorts every pending timer for each
    chunk. Other stores list the keys once.
    """
    after: str | None = None
    while True:
        with store.transaction() as tx:
            if not isinstance(tx, SQLAlchemyTransaction):
                keys = sorted(t.key for t in tx.find_timers(status=TimerStatus.PENDING))
                for start in range(0, len(keys), chunk):
                    yield keys[start : start + chunk]
                return
            t = tx.tables.timers
            query = sa.select(t.c.key, t.c.status).order_by(t.c.key).limit(chunk)
            if after is not None:
                query = query.where(t.c.key > after)
            rows = tx.connection.execute(query).all()
        keys = [key for key, status in rows if status == TimerStatus.PENDING.value]
        if keys:
            yield keys
        if len(rows) < chunk:
            return
        after = rows[-1][0]


@dataclass(frozen=True)
class _Needs:
    """What the walk over stored records plans, and which clients it must visit for it."""

    client_rules: bool  # time triggers on a client's date field
    deals: bool  # time triggers on a deal's date field, or stage deadlines
    plans: frozenset[str]  # territories with a contact plan
    #: the clients to visit (None: none); only those in a planned territory when that is all
    clients: Node | None

    @staticmethod
    def of(regulation: Regulation) -> _Needs:
        anchored = {
            rule.trigger.anchor.namespace
            for rule in regulation.rules
            if rule.enabled and rule.trigger.anchor is not None
        }
        deadlines = any(
            stage.deadline is not None
            for pipeline in regulation.pipelines.values()
            for stage in pipeline.stages
        )
        plans = frozenset(t.id for t in regulation.territories.values() if t.contact_plan)
        client_rules, deals = "client" in anchored, "deal" in anchored or deadlines
        clients: Node | None = None
        if client_rules or deals:
            clients = ALWAYS
        elif plans:
            spec = regulation.fields.get("client.territories")
            assert spec is not None
            clients = Leaf(spec, "contains_any", plans)
        return _Needs(client_rules, deals, plans, clients)


def _plan_schedules(engine: Engine, tx: Transaction, now: datetime) -> None:
    """Each enabled schedule rule with no pending occurrence gets its next one."""
    for rule in engine.regulation.rules:
        if rule.trigger.kind != "schedule" or not rule.enabled:
            continue
        if tx.find_timers(rule=rule.id, kind="schedule", status=TimerStatus.PENDING):
            continue
        try:
            due = timers.next_schedule(rule.trigger, now, engine.regulation.calendar)
        except ValueError as error:
            timers.plan_failed(tx, now, rule.id, "its schedule", rule.id, error)
            continue
        tx.plan_timer(
            occurrences.schedule_timer(rule, due, now, version=engine.regulation.release.id)
        )


def _plan_client(
    engine: Engine, tx: Transaction, client_id: str, now: datetime, needs: _Needs
) -> None:
    client = _readable_client(tx, client_id)
    if client is None:
        return
    if needs.client_rules:
        timers.plan_for_record(tx, engine.regulation, now, client=client)
    if needs.deals:
        for deal in tx.deals_of(client.id):
            timers.plan_for_record(tx, engine.regulation, now, deal=deal)
    wanted = client.territories & needs.plans
    if wanted:
        planned: dict[str, set[int]] = {}
        for timer in tx.find_timers(client=client.id, kind="plan", status=TimerStatus.PENDING):
            planned.setdefault(timer.rule or "", set()).add(int(timer.data.get("index", 0)))
        for territory in sorted(wanted):
            skip = planned.get(territory, set())
            timers.plan_contact(tx, engine.regulation, client.id, territory, now, now, skip)


def _readable_client(tx: Transaction, client_id: str) -> Client | None:
    """The client, or None (logged) if its record cannot be read: one bad record alone."""
    try:
        return tx.get_client(client_id)
    except failures.INFRASTRUCTURE:
        raise
    except Exception as error:
        reason = failures.describe(error, origin="reading the record")
        log.warning("client %s skipped while planning timers: %s", client_id, reason)
        return None


def _resync(engine: Engine, tx: Transaction, key: str, now: datetime) -> None:
    # A worker may have fired it since the list was read: lock it and look again.
    current = tx.lock_timer(key)
    if current is None or current.status is not TimerStatus.PENDING:
        return
    timer = current
    rule = engine.rules_by_id.get(timer.rule or "")
    gone: str | None = None
    if timer.kind in ("rule", "schedule"):
        if rule is None or not rule.enabled:
            gone = f"rule {timer.rule} was removed or disabled"
        elif (rule.trigger.kind == "schedule") != (timer.kind == "schedule"):
            gone = f"rule {timer.rule} changed its trigger"
        elif timer.kind == "rule" and (
            rule.trigger.anchor is None or rule.trigger.anchor.path != timer.data.get("anchor")
        ):
            gone = f"rule {timer.rule} watches another field now"
    elif timer.kind == "plan":
        territory = engine.regulation.territories.get(timer.rule or "")
        if territory is None or int(timer.data.get("index", 0)) >= len(territory.contact_plan):
            gone = f"the contact plan of {timer.rule} was removed"
    if gone is not None:
        tx.put_timer(timer.model_copy(update={"status": TimerStatus.CANCELLED, "note": gone}))
        return
    if timer.kind == "plan":
        timers.replan_visit(tx, engine.regulation, timer, now)
    if timer.kind == "stage":
        _replan_deadline(engine, tx, timer)
    if timer.kind == "rule" and rule is not None:
        value = occurrences.parse_moment(str(timer.data.get("value")))
        try:
            due = timers.anchor_due(rule.trigger, value, engine.regulation.calendar)
        except ValueError as error:
            timers.plan_failed(tx, now, rule.id, f"timer {timer.key}", timer.key, error)
            note = f"cannot be planned any more: {error}"
            tx.put_timer(timer.model_copy(update={"status": TimerStatus.CANCELLED, "note": note}))
            return
        if due != timer.due_at:
            update = {
                "due_at": due,
                "note": "re-planned",
                "regulation": engine.regulation.release.id,
            }
            tx.put_timer(timer.model_copy(update=update))
    if timer.kind == "schedule" and rule is not None:
        # Only a changed trigger re-plans: an overdue occurrence (the worker was down)
        # stays, to fire late once. A timer planned before schedules kept their trigger
        # is taken as unchanged; the next occurrence it plans keeps it.
        described = timer.data.get("trigger")
        if described is not None and described != rule.trigger.describe():
            note = "the schedule changed"
            tx.put_timer(timer.model_copy(update={"status": TimerStatus.CANCELLED, "note": note}))
            due = timers.next_schedule(rule.trigger, now, engine.regulation.calendar)
            tx.plan_timer(
                occurrences.schedule_timer(rule, due, now, version=engine.regulation.release.id)
            )


def _replan_deadline(engine: Engine, tx: Transaction, timer: Timer) -> None:
    """A deal's stage deadline again under the stage's deadline now; cancelled without one."""
    deal = tx.get_deal(timer.deal or "")
    entered = deal.stage_entered_at if deal is not None else None
    if (
        deal is None
        or entered is None
        or not timer.key.endswith(f":{deal.stage}:{entered.isoformat()}")
    ):
        return  # the deal left the stage: the timer is cancelled when it falls due
    pipeline = engine.regulation.pipelines.get(deal.pipeline)
    stage = pipeline.stage(deal.stage) if pipeline else None
    if stage is None or stage.deadline is None:
        note = "the stage has no deadline any more"
        tx.put_timer(timer.model_copy(update={"status": TimerStatus.CANCELLED, "note": note}))
        return
    due = engine.regulation.calendar.add(entered, stage.deadline)
    if due == timer.due_at and timer.data.get("deadline") == str(stage.deadline):
        return
    update = {
        "due_at": due,
        "data": {**timer.data, "deadline": str(stage.deadline)},
        "note": "re-planned",
        "regulation": engine.regulation.release.id,
    }
    tx.put_timer(timer.model_copy(update=update))


__all__ = ["GENERATION", "SYNCED", "fingerprint", "sync_timers"]
