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

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from crmrules import dedup, failures, timers
from crmrules.actions import BUILTIN_HANDLERS, ActionContext, ActionRefused
from crmrules.campaigns import stage_move
from crmrules.errors import RefusedError
from crmrules.host_input import check_time_range
from crmrules.model import Client, Deal, Event, Manager, trusted
from crmrules.result import Effect, EventRecord, NotMatched, Result, RuleOutcome
from crmrules.rules import segments as segmenting
from crmrules.rules.conditions import Facts
from crmrules.rules.regulation import Regulation, Rule
from crmrules.rules.requirements import refuse_unfilled
from crmrules.rules.ruleset import RuleSet
from crmrules.rules.territories import recompute
from crmrules.rules.why import Miss, Seen, Why
from crmrules.store import AuditEntry, ConflictError, RuleFailure, Store, Transaction

if TYPE_CHECKING:
    from crmrules.clock import Clock
    from crmrules.plugins import PluginManager


class Lending(Protocol):
    """A transaction that lends its stored records for reading, without a copy (``Run.view``).

    Each loan is the stored record and its flat record (``Client.record``),
    neither to be changed; the memory store's transactions lend.
    """

    def lend_client(self, client_id: str) -> tuple[Client, Mapping[str, Any]] | None: ...
    def lend_deal(self, deal_id: str) -> tuple[Deal, Mapping[str, Any]] | None: ...
    def lend_manager(self, manager_id: str) -> tuple[Manager, Mapping[str, Any]] | None: ...


#: How many events deep a cascade may go before it is stopped.
CASCADE_LIMIT = 10
#: How many times a transaction that met a ConflictError is tried in all.
CONFLICT_RETRIES = 5


class Setting:
    """What a run works with besides its transaction: the regulation, its indexes, the plugins.

    Built once per regulation (the engine rebuilds it on reload), so the
    rules listening to each event type are sorted, and compiled together
    into one ``RuleSet``, once and not per event.
    """

    def __init__(self, regulation: Regulation, plugins: PluginManager) -> None:
        self.regulation = regulation
        self.plugins = plugins
        self._actions = plugins.actions()
        self.by_event: dict[str, list[Rule]] = {}
        for rule in sorted(regulation.rules, key=lambda r: (-r.priority, r.order)):
            if rule.trigger.kind == "event":
                for event_type in rule.trigger.events:
                    self.by_event.setdefault(event_type, []).append(rule)
        self.rules_by_id = {rule.id: rule for rule in regulation.rules}
        self._rule_sets: dict[str, RuleSet] = {}
        #: the regulation version's id, which every outcome and audit line keeps (made once)
        self.version = regulation.release.id

    def rules_for(self, event_type: str) -> list[Rule]:
        return self.by_event.get(event_type, [])

    def rule_set_for(self, event_type: str) -> RuleSet:
        """The conditions of the rules listening to ``event_type``, compiled together once."""
        found = self._rule_sets.get(event_type)
        if found is None:
            rules = self.rules_for(event_type)
            found = self._rule_sets[event_type] = RuleSet([rule.condition for rule in rules])
        return found

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


@dataclass
class _Pending:
    event: Event
    depth: int


@dataclass
class Run:
    """One transaction's worth of work: the cascade of one reported event."""

    setting: Setting
    tx: Transaction
    now: datetime
    result: Result
    queue: list[_Pending] = field(default_factory=list)
    #: (rule id, subject) pairs that fired in this cascade
    fired: set[tuple[str, str]] = field(default_factory=set)
    #: the audit lines, each a not_matched one written with its explanation (see ``entries``)
    audit: list[AuditEntry | Miss] = field(default_factory=list)
    #: rule runs that failed and were rolled back alone (see crmrules.failures)
    failures: list[RuleFailure] = field(default_factory=list)
    #: rule runs without savepoints: the first failure goes up to the caller, which
    #: undoes the whole batch and runs it again one savepoint per rule (crmrules.occurrences)
    optimistic: bool = False
    #: the event being considered with its client, deal and facts (see ``view``)
    _view: tuple[Event, Client | None, Deal | None, Facts] | None = None
    #: the event whose rule set was evaluated, its facts, and each listening rule's answer
    _matched: tuple[Event, Facts, tuple[bool, ...]] | None = None
    #: the facts of the view and what its rule set saw (see ``seen``)
    _seen: tuple[Facts, Seen] | None = None
    #: whether the transaction lends its records (``Lending``); found out at the first view
    _lends: bool | None = None

    @property
    def regulation(self) -> Regulation:
        return self.setting.regulation

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
        listening = rules is None
        considered = self.setting.rules_for(event.type) if rules is None else rules
        for index, rule in enumerate(considered):
            if stopped_by is not None:
                self.outcome(event, rule, "held", f"stopped by rule {stopped_by} (stop: true)")
                continue
            if self.consider(event, depth, rule, index if listening else None) and rule.stop:
                stopped_by = rule.id

    # -- one rule

    def facts(self, event: Event, client: Client | None, deal: Deal | None) -> Facts:
        """What the conditions see of the event, its client and deal, and the client's manager."""
        manager = None
        if client is not None and client.responsible:
            manager = self.find_manager(client.responsible)
        return self._facts(
            event,
            client.record() if client else None,
            deal.record() if deal else None,
            manager.record() if manager else None,
        )

    def _facts(
        self,
        event: Event,
        client: Mapping[str, Any] | None,
        deal: Mapping[str, Any] | None,
        manager: Mapping[str, Any] | None,
    ) -> Facts:
        values = event.__dict__  # exactly the event's fields (see ``Event.record``)
        before, after = values["before"], values["after"]
        changes = {}
        if before or after:
            namespace = (
                "deal"
                if event.type.startswith("deal.")
                or (event.deal and not event.type.startswith("client."))
                else "client"
            )
            changes = {
                f"{namespace}.{key}": (before.get(key), after.get(key))
                for key in before.keys() | after.keys()
            }
        return Facts(
            {"client": client, "deal": deal, "event": event.record(), "manager": manager},
            self.now,
            changes,
        )

    def subjects(self, event: Event) -> tuple[Client | None, Deal | None]:
        deal = self.tx.get_deal(event.deal) if event.deal else None
        client_id = event.client or (deal.client if deal else None)
        client = self.tx.get_client(client_id) if client_id else None
        return client, deal

    def consider(self, event: Event, depth: int, rule: Rule, position: int | None = None) -> bool:
        """Decide and, if it fires, run one rule; True if it fired.

        ``position``: the rule's place among those listening to the event
        type, whose conditions are evaluated together once per view of the
        event (see ``matches``); None for a rule considered on its own.
        """
        if not rule.enabled:
            self.outcome(event, rule, "held", "disabled (enabled: false)")
            return False
        client, deal, facts = self.view(event)
        holds = rule.condition(facts) if position is None else self.matches(event)[position]
        if not holds:  # explained when read, from what the evaluation saw (crmrules.rules.why)
            why = Why(rule.condition, self.seen(event, facts, rule, position))
            self.result.outcomes.append(NotMatched(rule.id, event.id, event.type, why))
            self.audit.append(Miss(self.now, event, rule.id, why, self.setting.version))
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
                    self.setting.action_handler(action.name)(action.params, context)
                except ActionRefused as refusal:
                    context.effect("refused", f"{action.name} refused: {refusal.reason}")
                self.setting.plugins.after_action(
                    action.name, rule.id, event, self.result.effects[before:]
                )

        self._view = None  # the rule's actions may change the subject: read it again
        failures.isolate(self, event, depth, rule, work)
        return True

    def view(self, event: Event) -> tuple[Client | None, Deal | None, Facts]:
        """The event's client, deal and facts, read once until a rule fires.

        Read only (the rules' conditions and policies look at them), so a store
        that can lend its own records (the memory store's ``lend_client``) hands
        them out without a copy, with their flat records made once per version.
        """
        found = self._view
        if found is None or found[0] is not event:
            found = self._read(event)
        return found[1], found[2], found[3]

    def _read(self, event: Event) -> tuple[Event, Client | None, Deal | None, Facts]:
        """The view of ``event`` read now, from loans when the store lends (see ``view``)."""
        lends = self._lends
        if lends is None:  # once per run: whether its transaction lends
            lends = self._lends = getattr(self.tx, "lend_client", None) is not None
        if not lends:
            client, deal = self.subjects(event)
            found = self._view = (event, client, deal, self.facts(event, client, deal))
            return found
        tx: Lending = self.tx  # type: ignore[assignment]
        values = event.__dict__  # exactly the event's fields (see ``Event.record``)
        deal = deal_record = None
        if values["deal"]:
            lent_deal = tx.lend_deal(values["deal"])
            if lent_deal is not None:
                deal, deal_record = lent_deal
        client_id = values["client"] or (deal.client if deal else None)
        client = client_record = manager_record = None
        if client_id:
            lent = tx.lend_client(client_id)
            if lent is not None:
                client, client_record = lent
                if client.responsible:
                    manager = tx.lend_manager(client.responsible)
                    if manager is not None:
                        manager_record = manager[1]
                    else:
                        known = self.regulation.managers.get(client.responsible)
                        manager_record = known.record() if known else None
        if values["data"] or values["before"] or values["after"]:
            facts = self._facts(event, client_record, deal_record, manager_record)
        else:  # the usual event, no data nor changes: ``_facts`` and ``Event.record`` written out
            record = {
                "id": values["id"],
                "type": values["type"],
                "occurred_at": values["occurred_at"],
            }
            facts = Facts(
                {
                    "client": client_record,
                    "deal": deal_record,
                    "event": record,
                    "manager": manager_record,
                },
                self.now,
                {},
            )
        found = self._view = (event, client, deal, facts)
        return found

    def seen(self, event: Event, facts: Facts, rule: Rule, position: int | None) -> Seen:
        """What the evaluation of ``rule`` saw: once per view for the event type's rule set."""
        version = self.setting.version
        if position is None:
            return Seen.take(rule.condition.reads, facts, version)
        if self._seen is None or self._seen[0] is not facts:
            reads = self.setting.rule_set_for(event.type).reads
            self._seen = (facts, Seen.take(reads, facts, version))
        return self._seen[1]

    def matches(self, event: Event) -> tuple[bool, ...]:
        """Whether each listening rule's condition holds on the current view, by position.

        One evaluation of the event type's compiled rule set per view: each
        field read once, shared sub-conditions tested once. A rule that
        fires may change the subject; the next view evaluates again.
        """
        view = self._view
        if view is None or view[0] is not event:
            view = self._read(event)
        facts = view[3]
        found = self._matched
        if found is not None and found[1] is facts:
            return found[2]
        results = self.setting.rule_set_for(event.type).results(facts)
        self._matched = (event, facts, results)
        return results

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

    def entries(self) -> list[AuditEntry]:
        """The audit lines to write, each not_matched one explained now."""
        return [e.entry() if isinstance(e, Miss) else e for e in self.audit]

    def note(self, event: Event, kind: str, rule: str | None, message: str) -> None:
        self.audit.append(
            trusted(  # the engine's own values: not validated again
                AuditEntry,
                {
                    "at": self.now,
                    "event_id": event.id,
                    "event_type": event.type,
                    "kind": kind,
                    "rule": rule,
                    "message": message,
                    "data": {},
                    "regulation": self.setting.version,
                    "client": event.client,
                },
            )
        )

    def add_effect(self, effect: Effect, event: Event) -> None:
        self.result.effects.append(effect)
        values = {
            "at": self.now,
            "event_id": event.id,
            "event_type": event.type,
            "kind": "refused" if effect.kind == "refused" else "effect",
            "rule": effect.rule,
            "message": effect.summary,
            "data": {"effect": effect.kind, **effect.data},
            "regulation": self.setting.version,
            "client": event.client,
        }
        # the engine's own values, as in ``note``; a plugin's summary is checked
        plain = type(effect.summary) is str and type(effect.kind) is str
        self.audit.append(trusted(AuditEntry, values) if plain else AuditEntry(**values))

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
        client = self.setting.typed_client(client)
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
        deal = self.setting.typed_deal(deal)
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
        refuse_unfilled(pipeline, deal, old, lambda: self.tx.get_client(deal.client))
        if old is not None and old.stage != deal.stage:
            deal = deal.model_copy(update={"stage_entered_at": self.now})
        if old is None and deal.stage_entered_at is None:
            deal = deal.model_copy(update={"stage_entered_at": self.now})
        if old is None and deal.created_at is None:
            deal = deal.model_copy(update={"created_at": self.now})
        check_time_range(self.regulation, deal, old)
        self.tx.put_deal(deal)
        if old is None or old.stage != deal.stage:  # the history time in stage is read from
            self.tx.add_stage_move(stage_move(deal, pipeline, deal.stage_entered_at or self.now))
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


def apply(
    setting: Setting,
    tx: Transaction,
    now: datetime,
    event_id: str,
    subject: tuple[str | None, str | None],
    body: Callable[[Run], None],
    *,
    optimistic: bool = False,
) -> Result:
    """Within ``tx``: lock the subject, act once per event id, keep the result and the audit.

    ``optimistic``: the rules run without a savepoint each, and the first
    failure goes up to the caller, which undoes ``tx`` and applies again
    without (see ``transact``).
    """
    tx.lock_subject(*subject)
    earlier = tx.event_result(event_id)
    if earlier is not None:
        return Result.from_dict(earlier, duplicate=True)
    result = Result(event_id, regulation=setting.version)
    run = Run(setting, tx, now, result, optimistic=optimistic)
    body(run)
    failures.save(tx, run.failures)
    keeps = getattr(tx, "keeps_explanations", False)  # the memory store: explained when read
    # the SQL store explains a Miss as it writes it, without an AuditEntry first
    takes = keeps or getattr(tx, "writes_misses", False)
    for entry in run.audit if takes else run.entries():
        tx.add_audit(entry)  # type: ignore[arg-type]
    tx.save_event_result(event_id, run.result.to_dict(explained=not keeps))
    return run.result


def transact(
    store: Store,
    setting: Setting,
    clock: Clock,
    event_id: str,
    subject: tuple[str | None, str | None],
    body: Callable[[Run], None],
) -> Result:
    """``apply`` in a transaction of its own.

    A ConflictError (another process touched the same rows) rolls back and
    retries the whole call; the retry usually finds the other process's
    result under the same event id. The rules run optimistically first, no
    savepoint each (two statements, two round trips on a server, per rule
    that fires); if anything fails, the transaction is rolled back and the
    call applied again with a savepoint per rule, so a failing rule is
    undone alone as ever (crmrules.failures). A plugin's hooks may hear of
    the first attempt's actions too, as they do of a retry after a conflict.
    """
    optimistic = True
    attempt = 1
    while True:
        try:
            with store.transaction() as tx:
                now = clock.now()
                return apply(setting, tx, now, event_id, subject, body, optimistic=optimistic)
        except ConflictError:
            if attempt == CONFLICT_RETRIES:
                raise
            attempt += 1
        except failures.INFRASTRUCTURE:
            raise
        except Exception:
            if not optimistic:
                raise
            optimistic = False  # again, each rule in a savepoint of its own


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


__all__ = ["CASCADE_LIMIT", "CONFLICT_RETRIES", "Run", "Setting", "apply", "transact"]
