"""``engine.explain``: why the rules would or would not act on one client now, read-only.

For the client as stored (and, with ``at``, as of another moment): which
rules listening to an event would fire, and for each other rule the first
condition that fails with its actual value, or the policy that holds it
(disabled, ``once``, ``cooldown``, stopped by a rule with ``stop: true``);
its territories and segments and why; its pending timers and what each will
do. The rule decisions are the engine's own (``Run.facts``, ``Run.policy_hold``
and the same short-circuit trace), taken in a transaction that writes nothing.

The client and deal are read in one function, ``_subjects``, so that a
caller limited to some clients can refuse the others in one place.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from crmrules.errors import RefusedError
from crmrules.model import Client, Deal, Event, MembershipSource
from crmrules.result import Result
from crmrules.rules import segments as segmenting
from crmrules.rules.conditions import Condition, Facts
from crmrules.rules.regulation import Rule
from crmrules.rules.ruleset import explain as short_trace
from crmrules.run import Run
from crmrules.store import TimerStatus, Transaction

if TYPE_CHECKING:
    from crmrules.engine import Engine


@dataclass(frozen=True)
class RuleVerdict:
    """What one rule would do: ``fire``, ``not_matched``, ``held`` or ``not_listening``."""

    rule: str
    status: str
    reason: str
    field: str | None = None
    operator: str | None = None
    expected: str | None = None
    actual: str | None = None
    actions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Membership:
    """A territory or segment: whether the client is in it, and why."""

    id: str
    kind: str
    member: bool
    reason: str


@dataclass(frozen=True)
class PendingTimer:
    key: str
    kind: str
    due_at: str
    does: str
    regulation: str | None


@dataclass
class Explanation:
    """Everything ``explain`` found, as text (``describe``) or plain data (``to_dict``)."""

    client: str
    deal: str | None
    event: str | None
    at: datetime
    regulation: str
    rules: list[RuleVerdict] = field(default_factory=list)
    memberships: list[Membership] = field(default_factory=list)
    timers: list[PendingTimer] = field(default_factory=list)

    @property
    def would_fire(self) -> list[str]:
        return [v.rule for v in self.rules if v.status == "fire"]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["at"] = self.at.isoformat()
        data["would_fire"] = self.would_fire
        return data

    def describe(self) -> str:
        about = f"client {self.client}" + (f", deal {self.deal}" if self.deal else "")
        event = f" on {self.event}" if self.event else ""
        lines = [f"{about}{event} at {self.at.isoformat()} (regulation {self.regulation})"]
        marks = {"fire": "✓", "not_matched": "✗", "held": "‖", "not_listening": "·"}
        lines.append("rules:")
        for verdict in self.rules:
            word = {"fire": "would fire", "not_matched": "not matched"}.get(
                verdict.status, verdict.status.replace("_", " ")
            )
            does = f" → {', '.join(verdict.actions)}" if verdict.status == "fire" else ""
            reason = f": {verdict.reason}" if verdict.reason and verdict.status != "fire" else ""
            lines.append(f"  {marks[verdict.status]} {verdict.rule}: {word}{reason}{does}")
        lines.append("territories and segments:")
        for item in self.memberships:
            mark = "✓" if item.member else "✗"
            lines.append(f"  {mark} {item.kind} {item.id}: {item.reason}")
        lines.append("pending timers:" if self.timers else "pending timers: none")
        for timer in self.timers:
            by = f" [planned by {timer.regulation}]" if timer.regulation else ""
            lines.append(f"  {timer.due_at} {timer.kind} {timer.key}: {timer.does}{by}")
        return "\n".join(lines)


def _subjects(
    engine: Engine, tx: Transaction, client_id: str, deal_id: str | None
) -> tuple[Client, Deal | None]:
    """The client and deal explained: the one place they are read (and may be refused)."""
    client = tx.get_client(client_id)
    if client is None:
        raise RefusedError(f"no client {client_id!r} in the store")
    deal = tx.get_deal(deal_id) if deal_id else None
    if deal_id and (deal is None or deal.client != client.id):
        raise RefusedError(f"no deal {deal_id!r} of client {client_id!r} in the store")
    return engine.typed_client(client), engine.typed_deal(deal) if deal else None


def explain(
    engine: Engine,
    client_id: str,
    *,
    deal_id: str | None = None,
    event_type: str | None = None,
    at: datetime | None = None,
) -> Explanation:
    """See the module docstring; nothing is written."""
    now = at or engine.clock.now()
    with engine.store.transaction() as tx:
        client, deal = _subjects(engine, tx, client_id, deal_id)
        run = Run(engine.setting, tx, now, Result("explain"))
        event = Event(
            id="explain",
            type=event_type or ("deal.updated" if deal else "client.updated"),
            occurred_at=now,
            client=client.id,
            deal=deal.id if deal else None,
        )
        facts = run.facts(event, client, deal)
        result = Explanation(
            client.id, deal.id if deal else None, event_type, now, engine.regulation.release.id
        )
        result.rules = _verdicts(engine, run, event_type, facts, client, deal)
        result.memberships = _memberships(engine, tx, client, now)
        result.timers = _timers(engine, tx, client.id)
    return result


def _verdicts(
    engine: Engine,
    run: Run,
    event_type: str | None,
    facts: Facts,
    client: Client,
    deal: Deal | None,
) -> list[RuleVerdict]:
    listening = engine.rules_for(event_type) if event_type else []
    others = [r for r in engine.regulation.rules if r not in listening]
    verdicts: list[RuleVerdict] = []
    stopped_by: str | None = None
    for rule in listening if event_type else sorted(others, key=lambda r: (-r.priority, r.order)):
        verdict = _verdict(run, rule, facts, client, deal)
        if stopped_by is not None and verdict.status == "fire":
            verdict = RuleVerdict(rule.id, "held", f"stopped by rule {stopped_by} (stop: true)")
        elif verdict.status == "fire" and rule.stop and event_type:
            stopped_by = rule.id
        verdicts.append(verdict)
    if event_type:
        for rule in others:
            verdicts.append(
                RuleVerdict(rule.id, "not_listening", f"listens to {rule.trigger.describe()}")
            )
    return verdicts


def _verdict(run: Run, rule: Rule, facts: Facts, client: Client, deal: Deal | None) -> RuleVerdict:
    if not rule.enabled:
        return RuleVerdict(rule.id, "held", "disabled (enabled: false)")
    trace = short_trace(rule.condition, facts)
    if not trace.result:
        leaf = trace.decided_by
        field_, operator, expected = leaf.leaf.parts() if leaf else (None, None, None)
        return RuleVerdict(
            rule.id,
            "not_matched",
            trace.describe(),
            field=field_,
            operator=operator,
            expected=expected,
            actual=None if leaf is None else leaf.shown_actual(),
        )
    held = run.policy_hold(rule, client, deal)
    if held:
        return RuleVerdict(rule.id, "held", held)
    return RuleVerdict(
        rule.id, "fire", rule.trigger.describe(), actions=tuple(a.name for a in rule.actions)
    )


def _why(condition: Condition, facts: Facts) -> str:
    trace = short_trace(condition, facts)
    return ("holds: " if trace.result else "does not hold: ") + trace.describe()


def _memberships(
    engine: Engine, tx: Transaction, client: Client, now: datetime
) -> list[Membership]:
    regulation = engine.regulation
    facts = Facts({"client": client.record()}, now)
    stored = {m.territory: m for m in tx.memberships(client.id)}
    found: list[Membership] = []
    for territory in regulation.territories.values():
        entry = stored.get(territory.id)
        if entry is not None and entry.source is not MembershipSource.RULE:
            reason = f"manual override ({entry.source.value})"
        else:
            reason = _why(territory.condition, facts)
            if territory.parent and territory.parent not in client.territories:
                reason += f"; its parent {territory.parent} does not take the client"
        found.append(
            Membership(territory.id, "territory", territory.id in client.territories, reason)
        )
    placed = Facts({"client": client.record()}, now)
    for segment in regulation.segments.values():
        entry = stored.get(segmenting.key(segment.id))
        if entry is not None and entry.source is not MembershipSource.RULE:
            reason = f"manual override ({entry.source.value})"
        else:
            reason = _why(segment.condition, placed)
        found.append(Membership(segment.id, "segment", segment.id in client.segments, reason))
    return found


def _timers(engine: Engine, tx: Transaction, client_id: str) -> list[PendingTimer]:
    found: list[PendingTimer] = []
    for timer in sorted(
        tx.find_timers(client=client_id, status=TimerStatus.PENDING), key=lambda t: t.due_at
    ):
        found.append(
            PendingTimer(
                timer.key,
                timer.kind,
                timer.due_at.isoformat(),
                _does(engine, timer.kind, timer.rule, timer.data),
                timer.regulation,
            )
        )
    return found


def _does(engine: Engine, kind: str, rule_id: str | None, data: dict[str, Any]) -> str:
    """What a timer will do when it falls due, in an admin's words."""
    regulation = engine.regulation
    if kind == "rule":
        rule = engine.rules_by_id.get(rule_id or "")
        if rule is None:
            return f"rule {rule_id} (no longer in the regulation: it will be cancelled)"
        actions = ", ".join(a.name for a in rule.actions)
        return f"run rule {rule.id} ({rule.trigger.describe()}) if its condition holds: {actions}"
    if kind == "plan":
        territory = regulation.territories.get(rule_id or "")
        index = int(data.get("index", 0))
        if territory is None or index >= len(territory.contact_plan):
            return f"contact plan of {rule_id} (removed: it will be cancelled)"
        actions = ", ".join(a.name for a in territory.contact_plan[index].actions)
        return f"contact plan of territory {territory.id} every {data.get('every')}: {actions}"
    if kind == "task":
        return f"task {data.get('task')} falls overdue (task.overdue)"
    if kind == "stage":
        return f"deal overstays stage {data.get('stage')} (deal.stage_overdue)"
    return kind


__all__ = ["Explanation", "Membership", "PendingTimer", "RuleVerdict", "explain"]
