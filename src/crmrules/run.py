"""One transaction's worth of work: the cascade of one reported event.

A ``Run`` is what a call of the engine (``handle``, a host operation, a timer
firing) works in: the store's transaction, the moment, the result being
built, the queue of events still to consider, and the audit log. It stores
the host's and the rules' changes (``store_client``, ``store_deal``), raises
the events they cause, and considers the rules listening to each event
(conditions, the cascade guard, ``once``/``cooldown``, each rule's actions in
a savepoint of its own, see ``crmrules.failures``). The ``Engine`` facade
opens the transaction and hands it a Run; ``crmrules.firing`` and
``crmrules.realign`` use the cascade the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from crmrules import dedup, failures, timers
from crmrules.actions import ActionContext, ActionRefused
from crmrules.errors import RefusedError
from crmrules.host_input import check_time_range
from crmrules.model import Client, Deal, Event, Manager
from crmrules.result import Effect, EventRecord, Result, RuleOutcome
from crmrules.rules import segments as segmenting
from crmrules.rules.conditions import Facts
from crmrules.rules.regulation import Regulation, Rule
from crmrules.rules.ruleset import explain
from crmrules.rules.territories import recompute
from crmrules.store import AuditEntry, RuleFailure, Transaction

if TYPE_CHECKING:
    from crmrules.engine import Engine

#: How many events deep a cascade may go before it is stopped.
CASCADE_LIMIT = 10


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
        self,
        client: Client,
        old: Client | None,
        parent: Event | None,
        depth: int,
        origin: str = "",
        created: Mapping[str, Any] | None = None,
    ) -> Client:
        """Store a client, recompute its territories, and raise created/updated events.

        ``created``: the data of its client.created event (an import's id and source).
        """
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
        dedup.index_client(self.tx, self.regulation, client)
        timers.plan_for_record(self.tx, self.regulation, self.now, client=client)
        for territory in change.entered:
            timers.plan_contact(self.tx, self.regulation, client.id, territory, self.now, self.now)
        for territory in change.left:
            timers.cancel_contact(self.tx, client.id, territory, self.now)
        if old is None:
            self.raise_event(
                parent,
                depth,
                "client.created",
                client=client.id,
                deal=None,
                data=created,
                suffix=origin,
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


__all__ = ["CASCADE_LIMIT", "Run"]
