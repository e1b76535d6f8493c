"""The Engine: a host reports what happened; the regulation decides what follows.

One call (``handle`` or a host operation) is one store transaction:

1. if the event id was handled before, return that result (exactly once);
2. store the host's change, if any, recomputing the client's territories;
3. run the cascade: for each event (the reported one first, then those the
   changes raise), consider the rules listening to its type in priority
   order; check ``enabled``, the condition, the cascade guard, ``once`` and
   ``cooldown``; run the actions of each rule that fires, in order;
4. save the result and the audit log, and commit.

An exception anywhere rolls the whole transaction back, so the store is
exactly as it was before the call.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from crmrules import failures, firing, selection, timers
from crmrules import realign as realigning
from crmrules.actions import BUILTIN_HANDLERS, ActionContext, ActionRefused
from crmrules.adapters.memory import MemoryStore
from crmrules.adapters.notifiers import LogNotifier
from crmrules.adapters.sqlalchemy import SQLAlchemyStore, default_store
from crmrules.clock import Clock, SystemClock
from crmrules.delivery import DEFAULT_CALL_TIMEOUT, DeliveryReport, Notifier, deliver_due
from crmrules.errors import CrmRulesError, RefusedError
from crmrules.firing import DueReport, plan_rule
from crmrules.host_input import (
    apply_changes,
    check_changes,
    check_event_data,
    check_references,
    check_time_range,
    host_id,
)
from crmrules.model import (
    Client,
    Deal,
    Event,
    Interaction,
    Manager,
    MembershipSource,
    TaskStatus,
)
from crmrules.plugins import ActionPlugin, PluginManager
from crmrules.reading import Reading
from crmrules.result import Effect, EventRecord, Result, RuleOutcome
from crmrules.rules import segments as segmenting
from crmrules.rules.conditions import Facts
from crmrules.rules.regulation import Regulation, Rule, load_regulation
from crmrules.rules.ruleset import explain
from crmrules.rules.templates import TemplateLimits
from crmrules.rules.territories import clear_override, override, recompute
from crmrules.store import (
    AuditEntry,
    ConflictError,
    FailureStatus,
    RuleFailure,
    Store,
    Transaction,
)

#: How many events deep a cascade may go before it is stopped.
CASCADE_LIMIT = 10
#: How often a call is tried when another process changed the same rows meanwhile.
CONFLICT_RETRIES = 5


class ActionError(RefusedError):
    """A rule with ``on_error: refuse`` failed at run time, so the whole call was refused.

    Nothing was changed. ``reason`` says which rule and action failed, and
    why, in words an admin reads; the exception itself is ``__cause__``.
    """

    def __init__(self, rule: str, action: str, event_id: str, reason: str) -> None:
        super().__init__(
            f"rule {rule} failed on event {event_id} ({reason}); it has on_error: refuse, "
            "so the whole call was refused and nothing was changed"
        )
        self.rule = rule
        self.action = action
        self.event_id = event_id
        #: why the rule failed, without the words about refusing
        self.detail = reason


def _new_id() -> str:
    return uuid.uuid4().hex


@dataclass
class _Pending:
    event: Event
    depth: int


@dataclass
class Run:
    """One transaction's worth of work: the cascade of one reported event."""

    engine: Engine
    tx: Transaction
    now: datetime
    result: Result
    queue: list[_Pending] = field(default_factory=list)
    #: (rule id, subject) pairs that fired in this cascade
    fired: set[tuple[str, str]] = field(default_factory=set)
    audit: list[AuditEntry] = field(default_factory=list)
    #: rule runs that failed and were rolled back alone (see crmrules.failures)
    failures: list[RuleFailure] = field(default_factory=list)
    #: the event being considered with its client, deal and facts (see ``view``)
    _view: tuple[Event, Client | None, Deal | None, Facts] | None = None

    @property
    def regulation(self) -> Regulation:
        return self.engine.regulation

    # -- events

    def raise_event(
        self,
        parent: Event | None,
        depth: int,
        event_type: str,
        *,
        client: str | None,
        deal: str | None,
        data: Mapping[str, Any] | None = None,
        before: Mapping[str, Any] | None = None,
        after: Mapping[str, Any] | None = None,
        suffix: str = "",
    ) -> None:
        """Queue an event raised by a change; its id derives from its parent's."""
        base = parent.id if parent is not None else self.result.event_id
        event = Event(
            id=f"{base}/{event_type}{suffix}",
            type=event_type,
            occurred_at=self.now,
            client=client,
            deal=deal,
            data=dict(data or {}),
            before=dict(before or {}),
            after=dict(after or {}),
        )
        self.queue.append(_Pending(event, depth))

    def cascade(self, first: Event, rules: list[Rule] | None = None) -> None:
        """Process ``first`` (with ``rules``, else those listening to its type) and what follows."""
        self.process(first, 0, rules)
        while self.queue:
            pending = self.queue.pop(0)
            if pending.depth > CASCADE_LIMIT:
                message = (
                    f"cascade stopped: {pending.event.type} ({pending.event.id}) is "
                    f"{pending.depth} events deep (limit {CASCADE_LIMIT}); check rules that "
                    "trigger each other"
                )
                self.result.errors.append(message)
                self.note(pending.event, "error", None, message)
                self.queue.clear()
                break
            self.process(pending.event, pending.depth)

    def process(self, event: Event, depth: int, rules: list[Rule] | None = None) -> None:
        self.result.events.append(
            EventRecord(event.id, event.type, depth, event.client, event.deal)
        )
        stopped_by: str | None = None
        for rule in self.engine.rules_for(event.type) if rules is None else rules:
            if stopped_by is not None:
                self.outcome(event, rule, "held", f"stopped by rule {stopped_by} (stop: true)")
                continue
            if self.consider(event, depth, rule) and rule.stop:
                stopped_by = rule.id

    # -- one rule

    def facts(self, event: Event, client: Client | None, deal: Deal | None) -> Facts:
        manager = None
        if client is not None and client.responsible:
            manager = self.find_manager(client.responsible)
        namespace = (
            "deal"
            if event.type.startswith("deal.")
            or (event.deal and not event.type.startswith("client."))
            else "client"
        )
        changes = {
            f"{namespace}.{key}": (event.before.get(key), event.after.get(key))
            for key in event.before.keys() | event.after.keys()
        }
        return Facts(
            records={
                "client": client.record() if client else None,
                "deal": deal.record() if deal else None,
                "event": event.record(),
                "manager": manager.record() if manager else None,
            },
            now=self.now,
            changes=changes,
        )

    def subjects(self, event: Event) -> tuple[Client | None, Deal | None]:
        deal = self.tx.get_deal(event.deal) if event.deal else None
        client_id = event.client or (deal.client if deal else None)
        client = self.tx.get_client(client_id) if client_id else None
        return client, deal

    def consider(self, event: Event, depth: int, rule: Rule) -> bool:
        """Decide and, if it fires, run one rule; True if it fired."""
        if not rule.enabled:
            self.outcome(event, rule, "held", "disabled (enabled: false)")
            return False
        client, deal, facts = self.view(event)
        if not rule.condition(facts):
            trace = explain(rule.condition, facts)  # the deciding leaf, short-circuit
            leaf, reason = trace.decided_by, trace.describe()
            field, operator, expected = leaf.leaf.parts() if leaf else (None, None, None)
            self.result.outcomes.append(
                RuleOutcome(
                    rule=rule.id,
                    event_id=event.id,
                    event_type=event.type,
                    status="not_matched",
                    reason=reason,
                    field=field,
                    operator=operator,
                    expected=expected,
                    actual=None if leaf is None else leaf.shown_actual(),
                )
            )
            self.note(event, "not_matched", rule.id, reason)
            return False
        subject = f"deal:{deal.id}" if deal else f"client:{client.id}" if client else event.id
        if (rule.id, subject) in self.fired:
            self.outcome(event, rule, "held", f"already fired for {subject} in this cascade")
            return False
        held = self.policy_hold(rule, client, deal)
        if held:
            self.outcome(event, rule, "held", held)
            return False
        self.fired.add((rule.id, subject))

        def work(step: failures.Step) -> None:
            self.record_policy(rule, client, deal)
            self.outcome(event, rule, "fired", rule.trigger.describe())
            for index, action in enumerate(rule.actions):
                step.action, step.index = action.name, index
                context = ActionContext(self, event, depth, rule, index, action)
                before = len(self.result.effects)
                try:
                    self.engine.action_handler(action.name)(action.params, context)
                except ActionRefused as refusal:
                    context.effect("refused", f"{action.name} refused: {refusal.reason}")
                self.engine.plugins.after_action(
                    action.name, rule.id, event, self.result.effects[before:]
                )

        self._view = None  # the rule's actions may change the subject: read it again
        failures.isolate(self, event, depth, rule, work)
        return True

    def view(self, event: Event) -> tuple[Client | None, Deal | None, Facts]:
        """The event's client, deal and facts, read once until a rule fires."""
        if self._view is None or self._view[0] is not event:
            client, deal = self.subjects(event)
            self._view = (event, client, deal, self.facts(event, client, deal))
        return self._view[1], self._view[2], self._view[3]

    def policy_hold(self, rule: Rule, client: Client | None, deal: Deal | None) -> str | None:
        scope = _once_scope(rule.once, client, deal)
        if scope is not None:
            if scope.startswith("-"):
                return scope[1:]
            last = self.tx.last_fired(rule.id, scope)
            if last is not None:
                return f"once {rule.once}: already fired for {scope} at {last.isoformat()}"
        if rule.cooldown is not None and client is not None:
            last = self.tx.last_fired(rule.id, f"client:{client.id}")
            if last is not None:
                until = self.regulation.calendar.add(last, rule.cooldown)
                if self.now < until:
                    return (
                        f"cooldown {rule.cooldown}: fired for client {client.id} at "
                        f"{last.isoformat()}, not again before {until.isoformat()}"
                    )
        return None

    def record_policy(self, rule: Rule, client: Client | None, deal: Deal | None) -> None:
        scope = _once_scope(rule.once, client, deal)
        if scope is not None:
            self.tx.record_fired(rule.id, scope, self.now)
        if rule.cooldown is not None and client is not None and scope != f"client:{client.id}":
            self.tx.record_fired(rule.id, f"client:{client.id}", self.now)

    # -- recording

    def outcome(self, event: Event, rule: Rule, status: Any, reason: str) -> None:
        self.result.outcomes.append(RuleOutcome(rule.id, event.id, event.type, status, reason))
        self.note(event, status, rule.id, reason)

    def note(self, event: Event, kind: str, rule: str | None, message: str) -> None:
        self.audit.append(
            AuditEntry(
                at=self.now,
                event_id=event.id,
                event_type=event.type,
                kind=kind,
                rule=rule,
                message=message,
            )
        )

    def add_effect(self, effect: Effect, event: Event) -> None:
        self.result.effects.append(effect)
        self.audit.append(
            AuditEntry(
                at=self.now,
                event_id=event.id,
                event_type=event.type,
                kind="refused" if effect.kind == "refused" else "effect",
                rule=effect.rule,
                message=effect.summary,
                data={"effect": effect.kind, **effect.data},
            )
        )

    # -- managers and records shared by host operations and actions

    def find_manager(self, manager_id: str) -> Manager | None:
        return self.tx.get_manager(manager_id) or self.regulation.managers.get(manager_id)

    def store_client(
        self, client: Client, old: Client | None, parent: Event | None, depth: int, origin: str = ""
    ) -> Client:
        """Store a client, recompute its territories, and raise created/updated events."""
        client = self.engine.typed_client(client)
        territorial, segmental = segmenting.split(self.tx.memberships(client.id))
        change = recompute(
            self.regulation,
            client,
            Facts({"client": client.record()}, self.now),
            territorial,
            self.now,
        )
        client = client.model_copy(update={"territories": change.territories})
        in_segments = segmenting.recompute(
            self.regulation.segments,
            client,
            Facts({"client": client.record()}, self.now),
            segmental,
            self.now,
        )
        client = client.model_copy(update={"segments": segmenting.members(in_segments)})
        check_time_range(self.regulation, client, old)
        self.tx.set_memberships(client.id, [*change.memberships, *in_segments])
        self.tx.put_client(client)
        timers.plan_for_record(self.tx, self.regulation, self.now, client=client)
        for territory in change.entered:
            timers.plan_contact(self.tx, self.regulation, client.id, territory, self.now, self.now)
        for territory in change.left:
            timers.cancel_contact(self.tx, client.id, territory, self.now)
        if old is None:
            self.raise_event(
                parent, depth, "client.created", client=client.id, deal=None, suffix=origin
            )
        else:
            before, after = _diff(old.record(), client.record())
            for membership in ("territories", "segments"):  # their own events, or none
                before.pop(membership, None)
                after.pop(membership, None)
            if before or after:
                self.raise_event(
                    parent,
                    depth,
                    "client.updated",
                    client=client.id,
                    deal=None,
                    before=before,
                    after=after,
                    suffix=origin,
                )
        for territory in change.entered:
            self.raise_event(
                parent,
                depth,
                "territory.entered",
                client=client.id,
                deal=None,
                data={"territory": territory},
                suffix=f"{origin}:{territory}",
            )
        for territory in change.left:
            self.raise_event(
                parent,
                depth,
                "territory.left",
                client=client.id,
                deal=None,
                data={"territory": territory},
                suffix=f"{origin}:{territory}",
            )
        return client

    def store_deal(
        self, deal: Deal, old: Deal | None, parent: Event | None, depth: int, origin: str = ""
    ) -> None:
        """Store a deal and raise created / stage_changed / updated events."""
        deal = self.engine.typed_deal(deal)
        pipeline = self.regulation.pipelines.get(deal.pipeline)
        if pipeline is None:
            raise RefusedError(
                f"deal {deal.id}: unknown pipeline {deal.pipeline!r}; the regulation has "
                f"{', '.join(self.regulation.pipelines) or 'no pipelines'}"
            )
        if pipeline.stage(deal.stage) is None:
            raise RefusedError(
                f"deal {deal.id}: pipeline {pipeline.id} has no stage {deal.stage!r}"
            )
        if old is not None and old.stage != deal.stage:
            refusal = pipeline.refuse_move(deal.id, old.stage, deal.stage)
            if refusal is not None:
                raise RefusedError(refusal)
            deal = deal.model_copy(update={"stage_entered_at": self.now})
        if old is None and deal.stage_entered_at is None:
            deal = deal.model_copy(update={"stage_entered_at": self.now})
        if old is None and deal.created_at is None:
            deal = deal.model_copy(update={"created_at": self.now})
        check_time_range(self.regulation, deal, old)
        self.tx.put_deal(deal)
        timers.plan_for_record(self.tx, self.regulation, self.now, deal=deal)
        if old is None:
            self.raise_event(
                parent, depth, "deal.created", client=deal.client, deal=deal.id, suffix=origin
            )
            return
        before, after = _diff(old.record(), deal.record())
        if "stage" in after:
            self.raise_event(
                parent,
                depth,
                "deal.stage_changed",
                client=deal.client,
                deal=deal.id,
                before={"stage": old.stage},
                after={"stage": deal.stage},
                suffix=origin,
            )
        if before or after:
            self.raise_event(
                parent,
                depth,
                "deal.updated",
                client=deal.client,
                deal=deal.id,
                before=before,
                after=after,
                suffix=origin,
            )


def _once_scope(once: str, client: Client | None, deal: Deal | None) -> str | None:
    """The key a ``once`` policy is kept under; a leading '-' is a reason to hold instead."""
    if once == "per_client":
        return f"client:{client.id}" if client else "-once per_client: the event has no client"
    if once == "per_deal":
        return f"deal:{deal.id}" if deal else "-once per_deal: the event has no deal"
    if once == "per_stage_entry":
        if deal is None:
            return "-once per_stage_entry: the event has no deal"
        entered = deal.stage_entered_at.isoformat() if deal.stage_entered_at else "?"
        return f"stage:{deal.id}:{deal.stage}:{entered}"
    return None  # per_event is guaranteed by handling each event id once; always: no limit


def _diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    keys = [k for k in old.keys() | new.keys() if old.get(k) != new.get(k)]
    return {k: old.get(k) for k in keys}, {k: new.get(k) for k in keys}


class Engine(Reading):
    """Runs one regulation against one store.

    ``plugins`` are objects with ``@hookimpl`` functions (see crmrules.plugins);
    plugins installed through the ``crmrules`` entry point group are loaded too
    unless ``entry_points=False``.
    """

    def __init__(
        self,
        regulation: Regulation,
        store: Store | str | None = None,
        clock: Clock | None = None,
        plugins: Iterable[object] = (),
        *,
        entry_points: bool = True,
        plugin_manager: PluginManager | None = None,
    ) -> None:
        self.regulation = regulation
        self.clock: Clock = clock or SystemClock()
        self.plugins = plugin_manager or PluginManager(plugins, entry_points=entry_points)
        self.store: Store = _open_store(store, self.plugins)
        self._actions: dict[str, ActionPlugin] = self.plugins.actions()
        self._index()

    def _index(self) -> None:
        """Rules by event type (in priority order) and by id; contact plans as rules."""
        regulation = self.regulation
        self._by_event: dict[str, list[Rule]] = {}
        for rule in sorted(regulation.rules, key=lambda r: (-r.priority, r.order)):
            if rule.trigger.kind == "event":
                for event_type in rule.trigger.events:
                    self._by_event.setdefault(event_type, []).append(rule)
        self.rules_by_id = {rule.id: rule for rule in regulation.rules}
        self.plan_rules: dict[tuple[str, int], Rule] = {
            (territory.id, index): plan_rule(territory, index, plan, regulation.calendar)
            for territory in regulation.territories.values()
            for index, plan in enumerate(territory.contact_plan)
        }

    @classmethod
    def from_path(
        cls,
        *paths: str | Path,
        store: Store | str | None = None,
        clock: Clock | None = None,
        plugins: Iterable[object] = (),
        entry_points: bool = True,
        allow_destinations: Iterable[str] = (),
        template_limits: TemplateLimits | None = None,
    ) -> Engine:
        """Load the regulation at ``paths`` (with the plugins' actions and operators).

        ``allow_destinations``: internal webhook addresses the regulation may
        write literally (the notifier must allow them too; see crmrules.destinations).
        ``template_limits``: bounds on each template render (crmrules.TemplateLimits).
        """
        manager = PluginManager(plugins, entry_points=entry_points)
        regulation = load_regulation(
            *paths,
            actions=manager.action_models(),
            operators=manager.operators(),
            allow_destinations=allow_destinations,
            template_limits=template_limits,
        )
        return cls(regulation, store, clock, plugin_manager=manager)

    # -- lookups used by a run

    def rules_for(self, event_type: str) -> list[Rule]:
        return self._by_event.get(event_type, [])

    def action_handler(self, name: str) -> Callable[[Any, ActionContext], None]:
        builtin = BUILTIN_HANDLERS.get(name)
        if builtin is not None:
            return builtin
        return self._actions[name].handler

    def typed_client(self, client: Client) -> Client:
        fields = self.regulation.fields.coerce_record(
            "client", client.id, client.fields, self.regulation.calendar
        )
        return client.model_copy(update={"fields": fields})

    def typed_deal(self, deal: Deal) -> Deal:
        fields = self.regulation.fields.coerce_record(
            "deal", deal.id, deal.fields, self.regulation.calendar
        )
        return deal.model_copy(update={"fields": fields})

    # -- the public operations

    def handle(self, event: Event) -> Result:
        """Handle an event the host reports; the same event id twice acts once."""
        return self.plugins.handle_event(event, self._handle_reported)

    def _handle_reported(self, event: Event) -> Result:
        check_event_data(self.regulation, event)
        data = self.regulation.fields.coerce_record(
            "event", event.id, event.data, self.regulation.calendar
        )
        typed = event.model_copy(update={"data": data})

        def body(run: Run) -> None:
            check_references(run.tx, f"event {typed.id}", typed.client, typed.deal)
            run.cascade(typed)

        return self.transact(typed.id, (typed.client, typed.deal), body)

    def transact(
        self,
        event_id: str,
        subject: tuple[str | None, str | None],
        body: Callable[[Run], None],
    ) -> Result:
        """One transaction: lock the subject, act once per event id, keep result and audit.

        A ConflictError (another process touched the same rows) rolls back
        and retries the whole call; the retry usually finds the other
        process's result under the same event id.
        """
        for attempt in range(1, CONFLICT_RETRIES + 1):
            try:
                with self.store.transaction() as tx:
                    tx.lock_subject(*subject)
                    earlier = tx.event_result(event_id)
                    if earlier is not None:
                        return Result.from_dict(earlier, duplicate=True)
                    run = Run(self, tx, self.clock.now(), Result(event_id))
                    body(run)
                    failures.save(tx, run.failures)
                    for entry in run.audit:
                        tx.add_audit(entry)
                    tx.save_event_result(event_id, run.result.to_dict())
                    return run.result
            except ConflictError:
                if attempt == CONFLICT_RETRIES:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _host_change(
        self,
        event_id: str | None,
        subject: tuple[str | None, str | None],
        change: Callable[[Run], None],
    ) -> Result:
        """Apply a host's change and run the events it raises, as one transaction."""

        def body(run: Run) -> None:
            change(run)
            if run.queue:
                run.cascade(run.queue.pop(0).event)

        return self.transact(event_id or _new_id(), subject, body)

    def create_client(self, client: Client, *, event_id: str | None = None) -> Result:
        def change(run: Run) -> None:
            if run.tx.get_client(client.id) is not None:
                raise RefusedError(f"client {client.id} already exists")
            self._check_responsible(run, client.responsible)
            self.regulation.fields.check_declared("client", client.id, client.fields)
            stamped = (
                client if client.created_at else client.model_copy(update={"created_at": run.now})
            )
            run.store_client(stamped, None, None, 0)

        return self._host_change(event_id, (client.id, None), change)

    def update_client(
        self, client_id: str, changes: Mapping[str, Any], *, event_id: str | None = None
    ) -> Result:
        """Change fields of a client (built-in or custom) and raise client.updated."""
        client_id = host_id("client", client_id)
        check_changes("client", client_id, changes)

        def change(run: Run) -> None:
            old = run.tx.get_client(client_id)
            if old is None:
                raise RefusedError(f"no client {client_id!r}")
            new = apply_changes(old, changes, "client", self.regulation)
            if "responsible" in changes:
                self._check_responsible(run, new.responsible)
            run.store_client(new, old, None, 0)

        return self._host_change(event_id, (client_id, None), change)

    def clear_territory_override(
        self, client_id: str, territory: str, *, event_id: str | None = None
    ) -> Result:
        """Drop the client's manual add to or removal from ``territory``; its rule decides again.

        Raises territory.entered / territory.left if that changes the client's
        territories. A territory no longer in the regulation may be named: its
        override outlives the rule and is cleared all the same.
        """
        client_id = host_id("client", client_id)

        def change(run: Run) -> None:
            client = run.tx.get_client(client_id)
            if client is None:
                raise RefusedError(f"no client {client_id!r}")
            current = run.tx.memberships(client_id)
            run.tx.set_memberships(client_id, clear_override(current, territory))
            run.store_client(client, client, None, 0)

        return self._host_change(event_id, (client_id, None), change)

    def add_to_segment(
        self, client_id: str, segment: str, *, event_id: str | None = None
    ) -> Result:
        """Put the client in ``segment`` by hand, whatever its condition says, until cleared."""
        return self._segment_override(client_id, segment, MembershipSource.MANUAL_ADD, event_id)

    def remove_from_segment(
        self, client_id: str, segment: str, *, event_id: str | None = None
    ) -> Result:
        """Keep the client out of ``segment`` by hand, whatever its condition says, till cleared."""
        return self._segment_override(client_id, segment, MembershipSource.MANUAL_REMOVE, event_id)

    def clear_segment_override(
        self, client_id: str, segment: str, *, event_id: str | None = None
    ) -> Result:
        """Drop a manual add to or removal from ``segment``; its condition decides again."""
        return self._segment_override(client_id, segment, None, event_id)

    def _segment_override(
        self,
        client_id: str,
        segment: str,
        source: MembershipSource | None,
        event_id: str | None,
    ) -> Result:
        client_id = host_id("client", client_id)
        if source is not None and segment not in self.regulation.segments:
            known = ", ".join(sorted(self.regulation.segments)) or "none"
            raise RefusedError(f"no segment {segment!r} in the regulation (segments: {known})")

        def change(run: Run) -> None:
            client = run.tx.get_client(client_id)
            if client is None:
                raise RefusedError(f"no client {client_id!r}")
            current = run.tx.memberships(client_id)
            name = segmenting.key(segment)
            if source is None:
                updated = clear_override(current, name)
            else:
                updated = override(current, client_id, name, source, run.now)
            run.tx.set_memberships(client_id, updated)
            run.store_client(client, client, None, 0)

        return self._host_change(event_id, (client_id, None), change)

    def create_deal(self, deal: Deal, *, event_id: str | None = None) -> Result:
        def change(run: Run) -> None:
            if run.tx.get_deal(deal.id) is not None:
                raise RefusedError(f"deal {deal.id} already exists")
            if run.tx.get_client(deal.client) is None:
                raise RefusedError(f"deal {deal.id}: no client {deal.client!r}")
            self.regulation.fields.check_declared("deal", deal.id, deal.fields)
            run.store_deal(deal, None, None, 0)

        return self._host_change(event_id, (deal.client, None), change)

    def update_deal(
        self, deal_id: str, changes: Mapping[str, Any], *, event_id: str | None = None
    ) -> Result:
        """Change fields of a deal; a changed ``stage`` must follow the transitions."""
        deal_id = host_id("deal", deal_id)
        check_changes("deal", deal_id, changes)

        def change(run: Run) -> None:
            old = run.tx.get_deal(deal_id)
            if old is None:
                raise RefusedError(f"no deal {deal_id!r}")
            new = apply_changes(old, changes, "deal", self.regulation)
            if new.client != old.client and run.tx.get_client(new.client) is None:
                raise RefusedError(f"deal {deal_id}: no client {new.client!r}")
            run.store_deal(new, old, None, 0)

        return self._host_change(event_id, (None, deal_id), change)

    def move_stage(self, deal_id: str, stage: str, *, event_id: str | None = None) -> Result:
        return self.update_deal(deal_id, {"stage": stage}, event_id=event_id)

    def complete_task(self, task_id: str, *, event_id: str | None = None) -> Result:
        task_id = host_id("task", task_id)

        def change(run: Run) -> None:
            task = run.tx.get_task(task_id)
            if task is None:
                raise RefusedError(f"no task {task_id!r}")
            # Lock the task's client and deal, then read it again: another
            # process may have completed it while we waited for the lock.
            run.tx.lock_subject(task.client, task.deal)
            task = run.tx.get_task(task_id)
            assert task is not None
            if task.status is not TaskStatus.OPEN:
                raise RefusedError(f"task {task_id} is already {task.status.value}")
            run.tx.put_task(
                task.model_copy(update={"status": TaskStatus.DONE, "closed_at": run.now})
            )
            timers.cancel_task(run.tx, task, "completed")
            run.raise_event(
                None,
                0,
                "task.completed",
                client=task.client,
                deal=task.deal,
                data={"task": task.id, "kind": task.kind, "rule": task.rule},
            )

        return self._host_change(event_id, (None, None), change)

    def log_interaction(self, interaction: Interaction, *, event_id: str | None = None) -> Result:
        """Record a call, meeting or e-mail; it moves the client's last_contact_at forward."""

        def change(run: Run) -> None:
            client = run.tx.get_client(interaction.client)
            if client is None:
                raise RefusedError(
                    f"interaction {interaction.id}: no client {interaction.client!r}"
                )
            check_references(
                run.tx, f"interaction {interaction.id}", interaction.client, interaction.deal
            )
            earlier = run.tx.get_interaction(interaction.id)
            if earlier == interaction:
                return  # the host logged it again (a retry): nothing new happened
            if earlier is not None:
                raise RefusedError(
                    f"interaction {interaction.id} already exists with other content; "
                    "log a new interaction under a new id"
                )
            run.tx.add_interaction(interaction)
            run.raise_event(
                None,
                0,
                "interaction.logged",
                client=interaction.client,
                deal=interaction.deal,
                data={
                    "interaction": interaction.id,
                    "kind": interaction.kind,
                    "direction": interaction.direction,
                    "outcome": interaction.outcome,
                },
            )
            last = client.last_contact_at
            if last is None or interaction.occurred_at > last:
                # A real update: it raises client.updated and re-plans timers on the field.
                moved = client.model_copy(update={"last_contact_at": interaction.occurred_at})
                run.store_client(moved, client, None, 0)

        return self._host_change(event_id, (interaction.client, interaction.deal), change)

    def client_saved(
        self,
        client_id: str,
        *,
        created: bool = False,
        before: Mapping[str, Any] | None = None,
        event_id: str | None = None,
    ) -> Result:
        """The host stored a client itself (in its own tables): run the regulation on it.

        crmrules reads the client from the store, recomputes its territories
        and raises ``client.created`` (``created=True``) or ``client.updated``
        with ``before`` as the values the changed fields had.
        """
        client_id = host_id("client", client_id)
        if before is not None:
            check_changes("client", client_id, before)

        def change(run: Run) -> None:
            client = run.tx.get_client(client_id)
            if client is None:
                raise RefusedError(f"no client {client_id!r} in the store")
            old = (
                None if created else apply_changes(client, before or {}, "client", self.regulation)
            )
            run.store_client(client, old, None, 0)

        return self._host_change(event_id, (client_id, None), change)

    def deal_saved(
        self,
        deal_id: str,
        *,
        created: bool = False,
        before: Mapping[str, Any] | None = None,
        event_id: str | None = None,
    ) -> Result:
        """The host stored a deal itself: run the regulation on it, as ``client_saved`` does.

        A changed stage (``before={"stage": ...}``) must follow the pipeline.
        """

        def change(run: Run) -> None:
            deal = run.tx.get_deal(deal_id)
            if deal is None:
                raise RefusedError(f"no deal {deal_id!r} in the store")
            old = None if created else apply_changes(deal, before or {}, "deal", self.regulation)
            run.store_deal(deal, old, None, 0)

        return self._host_change(event_id, (None, deal_id), change)

    def put_manager(self, manager: Manager) -> None:
        """Store or replace a manager (no rules run)."""
        with self.store.transaction() as tx:
            tx.put_manager(manager)

    def _check_responsible(self, run: Run, manager_id: str | None) -> None:
        if manager_id is not None and run.find_manager(manager_id) is None:
            raise RefusedError(f"unknown manager {manager_id!r}")

    def deliver(
        self,
        notifiers: Mapping[str, Notifier] | None = None,
        *,
        limit: int = 100,
        now: datetime | None = None,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
    ) -> DeliveryReport:
        """Deliver the mailings and notifications due at ``now`` (default: the clock's now).

        Channels: ``log`` (built in), the plugins' notifiers, and ``notifiers``
        given here (e.g. an SmtpNotifier named ``email``), later ones winning.
        """
        available: dict[str, Notifier] = {"log": LogNotifier()}
        available.update(self.plugins.notifiers())
        available.update(notifiers or {})
        return deliver_due(
            self.store,
            available,
            now or self.clock.now(),
            limit=limit,
            call_timeout=call_timeout,
        )

    # -- time: timers are planned by changes and fired here (see crmrules.firing)

    def run_due(
        self,
        now: datetime | None = None,
        *,
        limit: int | None = None,
        worker: str | None = None,
        lease: timedelta = timedelta(minutes=5),
    ) -> DueReport:
        """Fire every timer due at ``now`` (at most ``limit``), earliest first, each once."""
        return firing.run_due(self, now, limit=limit, worker=worker, lease=lease)

    def sync_timers(self, now: datetime | None = None) -> None:
        """Bring every timer in step with the regulation; after loading or reloading it."""
        firing.sync_timers(self, now)

    def reload(self, regulation: Regulation) -> None:
        """Switch to a new version of the regulation and bring the timers in step."""
        self.regulation = regulation
        self._index()
        self.sync_timers()

    # -- failed rule runs (see crmrules.failures)

    def failures(self, *, status: FailureStatus | None = None) -> list[RuleFailure]:
        """Rule runs that failed and were rolled back alone, oldest first."""
        with self.store.transaction() as tx:
            return tx.find_failures(status=status)

    def retry_failed(self, keys: list[str] | None = None) -> list[Result]:
        """Run each failed rule again on its event (after a fix); each runs at most once.

        A run that succeeds marks its failure resolved in the same transaction
        as its effects; one that fails again stays listed with one more attempt.
        """
        return failures.retry_failed(self, keys)

    def plan_rule_by_id(self, rule_id: str) -> Rule | None:
        """A territory's contact plan run as a rule, by its id."""
        return next((r for r in self.plan_rules.values() if r.id == rule_id), None)

    # -- reading

    def select(
        self,
        *,
        territory: str | None = None,
        rule: str | None = None,
        condition: Mapping[str, Any] | None = None,
        segment: str | None = None,
        now: datetime | None = None,
    ) -> Iterator[str]:
        """The ids of the clients a segment, a territory, a rule or a condition takes, streamed.

        By SQL on the SQL store (Python decides only what SQL cannot), by a
        loop elsewhere; ids in code-point order. See crmrules.selection.
        """
        chosen = selection.for_engine(
            self, territory=territory, rule=rule, condition=condition, segment=segment, now=now
        )
        return selection.select_ids(self.store, chosen)

    def realign(
        self, *, dry_run: bool = False, progress: Callable[[int], None] | None = None
    ) -> realigning.RealignReport:
        """Recompute every client's territories and segments (see crmrules.realign).

        A chunk of clients per transaction; changes raise territory.entered /
        territory.left once each, even when a killed run is started again. A dry
        run writes nothing and reports what would change.
        """
        return realigning.realign(self, dry_run=dry_run, progress=progress)

    def get_client(self, client_id: str) -> Client | None:
        with self.store.transaction() as tx:
            return tx.get_client(host_id("client", client_id))

    def get_deal(self, deal_id: str) -> Deal | None:
        with self.store.transaction() as tx:
            return tx.get_deal(host_id("deal", deal_id))


#: URL schemes the SQL store opens (with any ``+driver``).
SQL_SCHEMES = ("sqlite", "postgresql")


def _open_store(store: Store | str | None, plugins: PluginManager) -> Store:
    """A store as given, or opened from a URL; None is the embedded default.

    The default is the SQLite file in ``$CRMRULES_DATABASE_URL``, else
    ``crmrules.sqlite3`` in the current directory (created on first use).
    """
    if store is None:
        return default_store()
    if not isinstance(store, str):
        return store
    scheme = store.split(":", 1)[0]
    if scheme == "memory":
        return MemoryStore()
    if scheme.split("+", 1)[0] in SQL_SCHEMES:
        return SQLAlchemyStore(store)
    factories = plugins.stores()
    if scheme in factories:
        return factories[scheme](store)
    known = ", ".join(["memory", *SQL_SCHEMES, *sorted(factories)])
    raise CrmRulesError(f"no store for {scheme}:// URLs (known: {known})")


__all__ = ["CASCADE_LIMIT", "ActionError", "DueReport", "Engine", "RefusedError", "Run"]
