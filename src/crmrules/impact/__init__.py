"""The impact of a regulation change, on the current base, before it is made.

``impact(engine, new)`` evaluates both versions over the clients as stored
and writes nothing:

- territories and segments: the realignment's own dry run
  (crmrules.realign) under NEW, so the clients that would enter or leave
  each territory and segment are those ``realign`` would move;
- timers: the engine's own timer sync under NEW, through a dry ledger
  (crmrules.impact.ledger), so the timers planned, re-planned and
  cancelled are those ``Engine.reload(new)`` would touch, with due times;
- rules added, removed and changed (anything but their place in the files),
  each with how many clients its condition takes on the current state under
  OLD and NEW (by SQL on the SQL store, crmrules.selection) and how many
  timers NEW plans for it (its next occurrences);
- the clients whose **manager** a rule of NEW would reassign: an
  ``assign_manager`` rule listening to ``territory.entered`` /
  ``territory.left`` whose condition holds for a client the realignment
  moves (the manager it picks depends on the rotation at that moment, so
  the report says who would be reassigned and by which rule, not to whom);
- the lint findings of NEW.

Memory does not grow with the base: realignment, selection and the timer
sync read it a chunk per transaction, the dry sync keeps the timers it
would write in a temporary file (crmrules.impact.ledger), and every part
of the report keeps counts and a bounded number of example clients (the
realignment's ``failed`` keeps each client that could not be read, with
its reason).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from crmrules import selection
from crmrules.impact.ledger import TimerChanges, sync
from crmrules.lint import Finding, lint
from crmrules.model import Client, Event
from crmrules.realign import EXAMPLES, RealignReport, realign
from crmrules.result import Result
from crmrules.rules.conditions import All, AnyOf, Leaf, Node, Not
from crmrules.rules.regulation import Regulation, Rule
from crmrules.run import Run
from crmrules.store import Transaction

if TYPE_CHECKING:
    from crmrules.engine import Engine


@dataclass(frozen=True)
class RuleChange:
    """A rule added, removed or changed, and how many clients it takes under each version."""

    rule: str
    change: str
    trigger: str
    clients_old: int | None
    clients_new: int | None
    #: timers NEW's sync would plan, re-plan and cancel for it (its next occurrences)
    timers: dict[str, int] = field(default_factory=dict)
    examples: tuple[str, ...] = ()

    def timers_text(self) -> str:
        shown = [f"{n} {kind}" for kind, n in sorted(self.timers.items())]
        return ", ".join(shown) or "no timers"


@dataclass
class Reassignments:
    """Clients whose manager a rule of NEW would reassign as the realignment moves them."""

    engine: Engine
    clients: int = 0
    by_rule: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)

    def observe(
        self, tx: Transaction, client: Client, territories: frozenset[str], now: datetime
    ) -> None:
        run = Run(self.engine.setting, tx, now, Result("impact"))
        placed = self.engine.typed_client(client).model_copy(update={"territories": territories})
        moves = [("territory.entered", t) for t in sorted(territories - client.territories)]
        moves += [("territory.left", t) for t in sorted(client.territories - territories)]
        for event_type, territory in moves:
            event = Event(
                id="impact",
                type=event_type,
                occurred_at=now,
                client=client.id,
                data={"territory": territory},
            )
            facts = run.facts(event, placed, None)
            for rule in self.engine.rules_for(event_type):
                if not any(a.name == "assign_manager" for a in rule.actions):
                    continue
                if (
                    rule.enabled
                    and rule.condition(facts)
                    and not run.policy_hold(rule, placed, None)
                ):
                    self.clients += 1
                    self.by_rule[rule.id] = self.by_rule.get(rule.id, 0) + 1
                    if len(self.examples) < EXAMPLES:
                        self.examples.append(client.id)
                    return


@dataclass
class Impact:
    """What switching from OLD to NEW would do (see the module docstring)."""

    old_version: dict[str, Any]
    new_version: dict[str, Any]
    clients: int
    realignment: RealignReport
    timers: TimerChanges
    managers: Reassignments
    rules: list[RuleChange] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    def summary(self) -> dict[str, int]:
        moves = self.realignment
        return {
            "clients": self.clients,
            "clients_moved": moves.changed,
            "managers_reassigned": self.managers.clients,
            "territory_entries": sum(m.entered for m in moves.territories.values()),
            "territory_exits": sum(m.left for m in moves.territories.values()),
            "segment_entries": sum(m.entered for m in moves.segments.values()),
            "segment_exits": sum(m.left for m in moves.segments.values()),
            "timers_planned": self.timers.planned,
            "timers_replanned": self.timers.replanned,
            "timers_cancelled": self.timers.cancelled,
            "rules_added": sum(r.change == "added" for r in self.rules),
            "rules_removed": sum(r.change == "removed" for r in self.rules),
            "rules_changed": sum(r.change == "changed" for r in self.rules),
            "lint_errors": sum(f.severity == "error" for f in self.findings),
            "lint_warnings": sum(f.severity == "warning" for f in self.findings),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "old": self.old_version,
            "new": self.new_version,
            "summary": self.summary(),
            "territories": self.realignment.to_dict()["territories"],
            "segments": self.realignment.to_dict()["segments"],
            "failed": dict(self.realignment.failed),
            "managers": {
                "clients": self.managers.clients,
                "by_rule": dict(self.managers.by_rule),
                "examples": list(self.managers.examples),
            },
            "timers": self.timers.to_dict(),
            "rules": [
                vars(r) | {"examples": list(r.examples), "timers": dict(r.timers)}
                for r in self.rules
            ],
            "lint": [f.to_dict() for f in self.findings],
        }

    def describe(self) -> str:
        lines = [
            f"from {self.old_version['id']} to {self.new_version['id']} "
            f"over {self.clients} clients:"
        ]
        lines.extend(
            f"  {name.replace('_', ' ')}: {value}" for name, value in self.summary().items()
        )
        for kind, table in (
            ("territory", self.realignment.territories),
            ("segment", self.realignment.segments),
        ):
            for name, moves in sorted(table.items()):
                examples = ", ".join([*moves.entering, *moves.leaving])
                lines.append(f"{kind} {name}: +{moves.entered} -{moves.left} (e.g. {examples})")
        for change in self.rules:
            old = "-" if change.clients_old is None else change.clients_old
            new = "-" if change.clients_new is None else change.clients_new
            lines.append(
                f"rule {change.rule} {change.change} ({change.trigger}): clients {old} → {new}, "
                f"timers: {change.timers_text()}"
            )
        for name, kept in self.timers.examples.items():
            for move in kept[:5]:
                due = f"{move.due_before or '-'} → {move.due_after or '-'}"
                lines.append(f"timer {name}: {move.key} due {due}")
        lines.extend(f.describe() for f in self.findings)
        return "\n".join(lines)


def _strip(node: Node) -> Node:
    """The tree without source locations (moving a rule in its file changes nothing)."""
    if isinstance(node, Leaf):
        return replace(node, location=None)
    if isinstance(node, All):
        return All(tuple(_strip(i) for i in node.items))
    if isinstance(node, AnyOf):
        return AnyOf(tuple(_strip(i) for i in node.items))
    if isinstance(node, Not):
        return Not(_strip(node.item))
    return node


def fingerprint(rule: Rule) -> tuple[Any, ...]:
    """What a rule does, without where it is written."""
    actions = tuple((a.name, repr(a.params.model_dump())) for a in rule.actions)
    return (
        rule.trigger.describe(),
        repr(_strip(rule.condition.tree)),
        actions,
        rule.priority,
        rule.stop,
        rule.once,
        str(rule.cooldown),
        rule.enabled,
        str(rule.max_lateness),
        rule.on_error,
    )


def _count(
    engine: Engine, regulation: Regulation, rule: Rule, now: datetime
) -> tuple[int, list[str]]:
    chosen = selection.Selection(
        rule.condition.tree, regulation.calendar, now, selection.with_manager(regulation)
    )
    count, examples = 0, list[str]()
    for chunk in selection.id_chunks(engine.store, chosen):
        count += len(chunk)
        examples.extend(chunk[: max(0, 5 - len(examples))])
    return count, examples


def rule_changes(
    engine: Engine, old: Regulation, new: Regulation, timers: TimerChanges, now: datetime
) -> list[RuleChange]:
    before = {r.id: r for r in old.rules}
    after = {r.id: r for r in new.rules}
    changes: list[RuleChange] = []
    for rule_id in sorted(before.keys() | after.keys()):
        was, will = before.get(rule_id), after.get(rule_id)
        if was is not None and will is not None and fingerprint(was) == fingerprint(will):
            continue
        kind = "added" if was is None else "removed" if will is None else "changed"
        old_count = None if was is None else _count(engine, old, was, now)[0]
        new_count, examples = (
            (None, list[str]()) if will is None else _count(engine, new, will, now)
        )
        shown = will or was
        assert shown is not None
        changes.append(
            RuleChange(
                rule_id,
                kind,
                shown.trigger.describe(),
                old_count,
                new_count,
                dict(timers.by_rule.get(rule_id, {})),
                tuple(examples),
            )
        )
    return changes


def impact(
    engine: Engine,
    new: Regulation,
    *,
    now: datetime | None = None,
    data: dict[str, Any] | None = None,
) -> Impact:
    """See the module docstring; ``data`` (NEW's merged document) completes its lint."""
    from crmrules.engine import Engine

    moment = now or engine.clock.now()
    future = Engine(new, engine.store, engine.clock, plugin_manager=engine.plugins)
    managers = Reassignments(future)
    moves = realign(future, dry_run=True, observe=managers.observe)
    timers = sync(future, moment, dry=True)
    return Impact(
        old_version=engine.regulation.release.to_dict(),
        new_version=new.release.to_dict(),
        clients=moves.clients,
        realignment=moves,
        timers=timers,
        managers=managers,
        rules=rule_changes(engine, engine.regulation, new, timers, moment),
        findings=lint(new, data),
    )


__all__ = ["Impact", "Reassignments", "RuleChange", "fingerprint", "impact", "rule_changes"]
