"""The lint checks: each looks at a compiled regulation and yields located findings.

Every claim rests on crmrules.lint.logic, which only answers what it proved:
a rule is called shadowed, a condition impossible, a stage move refused
only when that was shown for every record, never guessed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any, Literal

from crmrules.errors import Location
from crmrules.lint.logic import Answer, always_holds, implies, never_holds, overlap, satisfiable
from crmrules.rules.conditions import ALWAYS, CHANGE_OPS, All, AnyOf, Const, Leaf, Node, Not
from crmrules.rules.fields import coerce
from crmrules.rules.regulation import Action, Regulation, Rule, Territory

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Finding:
    """One problem lint found: what, where (file:line:col), how bad, and what to do."""

    code: str
    severity: Severity
    message: str
    location: Location | None
    hint: str | None = None

    def describe(self) -> str:
        where = f"{self.location}: " if self.location else ""
        hint = f" ({self.hint})" if self.hint else ""
        return f"{where}{self.severity}: {self.message}{hint} [{self.code}]"

    def to_dict(self) -> dict[str, Any]:
        loc = self.location
        return {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "hint": self.hint,
            "file": loc.file if loc else None,
            "line": loc.line if loc else None,
            "column": loc.column if loc else None,
        }


def _if_location(regulation: Regulation, rule: Rule) -> Location | None:
    return regulation.source.locate(("rules", rule.order, "if"), key=True) or rule.location


def _first_leaf(node: Node) -> Leaf | None:
    if isinstance(node, Leaf):
        return node
    if isinstance(node, All | AnyOf):
        for item in node.items:
            found = _first_leaf(item)
            if found is not None:
                return found
    if isinstance(node, Not):
        return _first_leaf(node.item)
    return None


# -- conditions that never or always hold


def conditions(regulation: Regulation) -> Iterator[Finding]:
    calendar = regulation.calendar
    written: list[tuple[str, Node, Location | None]] = []
    for rule in regulation.rules:
        if ("rules", rule.order, "if") in regulation.source.keys:
            written.append((f"rule {rule.id}", rule.condition.tree, _if_location(regulation, rule)))
    for territory in regulation.territories.values():
        written.append((f"territory {territory.id}", territory.condition.tree, territory.location))
    for segment in regulation.segments.values():
        written.append((f"segment {segment.id}", segment.condition.tree, segment.location))
    for what, tree, location in written:
        if tree == ALWAYS and isinstance(tree, Const):
            if location is not None and what.startswith("rule"):
                yield Finding(
                    "always-holds",
                    "warning",
                    f"the condition of {what} always holds",
                    location,
                    "remove it, or write the case it should tell apart",
                )
            continue
        if never_holds(tree, calendar):
            leaf = _first_leaf(tree)
            yield Finding(
                "never-holds",
                "error",
                f"the condition of {what} can never hold",
                (leaf.location if leaf else None) or location,
                "its parts contradict each other (bounds that exclude each other, "
                "two different values, an empty list); fix the values",
            )
        elif always_holds(tree, calendar):
            yield Finding(
                "always-holds",
                "warning",
                f"the condition of {what} always holds",
                location,
                "remove it, or write the case it should tell apart",
            )


# -- shadowed rules


def _always_fires(rule: Rule) -> bool:
    """Whether the rule fires every time its condition holds (no policy can hold it)."""
    return rule.enabled and rule.cooldown is None and rule.once in ("per_event", "always")


def shadowed(regulation: Regulation) -> Iterator[Finding]:
    ordered = sorted(regulation.rules, key=lambda r: (-r.priority, r.order))
    for index, rule in enumerate(ordered):
        if rule.trigger.kind != "event" or not rule.enabled:
            continue
        for earlier in ordered[:index]:
            if not (earlier.stop and earlier.trigger.kind == "event" and _always_fires(earlier)):
                continue
            if not set(rule.trigger.events) <= set(earlier.trigger.events):
                continue
            if implies(rule.condition.tree, earlier.condition.tree, regulation.calendar):
                yield Finding(
                    "shadowed-rule",
                    "warning",
                    f"rule {rule.id} never runs: whenever its condition holds, rule "
                    f"{earlier.id} (priority {earlier.priority}, stop: true) fires first "
                    "and stops the others",
                    rule.location,
                    f"give {rule.id} a higher priority, narrow {earlier.id}, or remove one",
                )
                break


# -- cycles: one rule's change undoes another's


@dataclass(frozen=True)
class _Change:
    """What an action changes: a field path and the value it sets."""

    event: str
    path: str
    value: Any


def _changes(action: Action) -> list[_Change]:
    params = action.params
    if action.name == "move_stage":
        to = getattr(params, "to", None)
        if to is None or to == "next":
            return []
        return [
            _Change("deal.stage_changed", "deal.stage", to),
            _Change("deal.updated", "deal.stage", to),
        ]
    if action.name == "set_field":
        path = getattr(params, "field", "")
        value = getattr(params, "value", None)
        if isinstance(value, str) and "{{" in value:
            return []
        namespace = path.split(".", 1)[0]
        if namespace in ("client", "deal"):
            return [_Change(f"{namespace}.updated", path, value)]
    return []


def _after_change(node: Node, change: _Change) -> Node:
    """``node`` for an event raised by ``change``: change operators decided where they can."""
    if isinstance(node, Leaf):
        if node.op not in CHANGE_OPS:
            return node
        if node.field.path != change.path:
            return Const(node.negated)  # only that field changed
        if node.op == "changed":
            return Const(not node.negated)
        if node.op == "changed_to" and not node.ignore_case:
            return Const((node.value == change.value) != node.negated)
        return Const(True)  # changed_from: the value before is not known; assume it may hold
    if isinstance(node, All):
        return All(tuple(_after_change(item, change) for item in node.items))
    if isinstance(node, AnyOf):
        return AnyOf(tuple(_after_change(item, change) for item in node.items))
    return node


def _may_fire(rule: Rule, change: _Change, regulation: Regulation) -> bool:
    if rule.trigger.kind != "event" or not rule.enabled or change.event not in rule.trigger.events:
        return False
    spec = regulation.fields.get(change.path)
    tree = _after_change(rule.condition.tree, change)
    if spec is not None and not isinstance(change.value, dict | list):
        try:
            value = coerce(spec, change.value, regulation.calendar)
        except (ValueError, TypeError):  # a value of another type: only change operators decide
            value = None
        if value is not None:
            tree = All((tree, Leaf(spec, "eq", value)))
    return satisfiable(tree, regulation.calendar) is not Answer.UNSAT


def cycles(regulation: Regulation) -> Iterator[Finding]:
    rules = [r for r in regulation.rules if r.enabled]
    reported: set[frozenset[str]] = set()
    for a in rules:
        for b in rules:
            if a.id == b.id or frozenset((a.id, b.id)) in reported:
                continue
            for change_a in (c for action in a.actions for c in _changes(action)):
                if not _may_fire(b, change_a, regulation):
                    continue
                undo = [
                    c
                    for action in b.actions
                    for c in _changes(action)
                    if c.path == change_a.path and c.value != change_a.value
                ]
                if any(_may_fire(a, change_b, regulation) for change_b in undo):
                    reported.add(frozenset((a.id, b.id)))
                    first, second = sorted((a, b), key=lambda r: r.order)
                    yield Finding(
                        "rule-cycle",
                        "error",
                        f"rules {first.id} and {second.id} undo each other's change of "
                        f"{change_a.path}: each one's change raises the event that fires the "
                        "other, back and forth until the cascade limit",
                        first.location,
                        "add a condition that stops one of them (e.g. on the value it sets)",
                    )
                    break


# -- territories


def _ancestors(regulation: Regulation, territory: Territory) -> list[Territory]:
    found: list[Territory] = []
    parent = territory.parent
    while parent is not None and parent in regulation.territories:
        node = regulation.territories[parent]
        if node in found:
            break
        found.append(node)
        parent = node.parent
    return found


def territories(regulation: Regulation) -> Iterator[Finding]:
    calendar = regulation.calendar
    listed = list(regulation.territories.values())
    for territory in listed:
        ancestors = _ancestors(regulation, territory)
        if ancestors:
            together = All((territory.condition.tree, *(t.condition.tree for t in ancestors)))
            if never_holds(together, calendar) and not never_holds(
                territory.condition.tree, calendar
            ):
                yield Finding(
                    "territory-unreachable",
                    "error",
                    f"territory {territory.id} can never take a client: no client its parent "
                    f"{territory.parent} takes satisfies its condition",
                    territory.location,
                    "a child only takes clients of its parent; fix its when: or its parent",
                )
    for index, a in enumerate(listed):
        for b in listed[index + 1 :]:
            if not (a.exclusive and b.exclusive and a.parent == b.parent):
                continue
            if a.priority == b.priority and overlap(a.condition.tree, b.condition.tree, calendar):
                yield Finding(
                    "territory-overlap",
                    "warning",
                    f"exclusive territories {a.id} and {b.id} overlap with equal priority "
                    f"{a.priority}: a client both take goes to {a.id} only because it is "
                    "listed first",
                    b.location,
                    "give one a higher priority, or make their conditions exclude each other",
                )


# -- stage moves the pipelines never allow


def _stage_tree(node: Node) -> Node:
    """``node`` with ``deal.stage changed_to X`` read as "the deal is now in X"."""
    if isinstance(node, Leaf):
        if node.field.path == "deal.stage" and node.op == "changed_to" and not node.negated:
            return replace(node, op="eq", location=None)
        return Const(True) if node.op in CHANGE_OPS else node
    if isinstance(node, All):
        return All(tuple(_stage_tree(item) for item in node.items))
    if isinstance(node, AnyOf):
        return AnyOf(tuple(_stage_tree(item) for item in node.items))
    return node


def stage_moves(regulation: Regulation) -> Iterator[Finding]:
    spec = regulation.fields.get("deal.stage")
    if spec is None:
        return
    for rule in regulation.rules:
        tree = _stage_tree(rule.condition.tree)
        for action in rule.actions:
            target = getattr(action.params, "to", None) if action.name == "move_stage" else None
            if target is None or target == "next":
                continue
            possible: list[str] = []
            allowed = False
            for pipeline in regulation.pipelines.values():
                if pipeline.stage(target) is None:
                    continue
                for stage in pipeline.stages:
                    if stage.id == target:
                        continue
                    here = All((tree, Leaf(spec, "eq", stage.id)))
                    if never_holds(here, regulation.calendar):
                        continue
                    possible.append(stage.id)
                    allowed = allowed or pipeline.can_move(stage.id, target)
            if possible and not allowed:
                yield Finding(
                    "impossible-move",
                    "error",
                    f"rule {rule.id} moves deals to {target}, but no stage it can run from "
                    f"({', '.join(possible)}) allows a move to {target}",
                    action.location or rule.location,
                    "add the move to the pipeline's transitions, or narrow the rule's condition",
                )


# -- declared and never used


def _strings(data: Any, skip: tuple[str, ...] = ()) -> Iterator[str]:
    if isinstance(data, dict):
        for key, value in data.items():
            if key in skip:
                continue
            yield str(key)
            yield from _strings(value)
    elif isinstance(data, list):
        for item in data:
            yield from _strings(item)
    elif isinstance(data, str):
        yield data


def _condition_segments(node: Node) -> Iterator[str]:
    if isinstance(node, Leaf) and node.segment is not None:
        yield node.segment
    elif isinstance(node, All | AnyOf):
        for item in node.items:
            yield from _condition_segments(item)


def unused(regulation: Regulation, data: Any) -> Iterator[Finding]:
    source = regulation.source
    all_actions = [a for r in regulation.rules for a in r.actions] + [
        a for t in regulation.territories.values() for p in t.contact_plan for a in p.actions
    ]
    named = {str(getattr(a.params, "template", "")) for a in all_actions}
    for template_id in regulation.templates:
        if template_id not in named:
            yield Finding(
                "unused-template",
                "warning",
                f"template {template_id} is declared and never used",
                source.locate(("templates", template_id), key=True),
                "send it from a rule (send_mailing) or remove it",
            )
    text = "\n".join(_strings(data, ("fields",)))
    for spec in regulation.fields:
        if spec.builtin:
            continue
        if not re.search(rf"(?<![\w]){re.escape(spec.key)}(?![\w])", text):
            yield Finding(
                "unused-field",
                "warning",
                f"field {spec.path} is declared and never used by a condition, template, "
                "trigger or action",
                source.locate(("fields", spec.path), key=True),
                "use it or remove the declaration (the host may keep sending it)",
            )
    used_segments = {s for r in regulation.rules for s in _condition_segments(r.condition.tree)}
    used_segments |= {str(getattr(a.params, "segment", "")) for a in all_actions}
    for segment in regulation.segments.values():
        if segment.id not in used_segments:
            yield Finding(
                "unused-segment",
                "warning",
                f"segment {segment.id} is declared and never used by a rule",
                segment.location,
                "name it in a condition ({segment: id}) or an action, or remove it",
            )


# -- mailings repeated every period


def repeated_mailings(regulation: Regulation) -> Iterator[Finding]:
    for rule in regulation.rules:
        if rule.trigger.kind != "schedule" or rule.trigger.every is None:
            continue
        if rule.cooldown is not None or rule.once not in ("per_event", "always"):
            continue
        for action in rule.actions:
            if action.name == "send_mailing":
                yield Finding(
                    "repeated-mailing",
                    "warning",
                    f"rule {rule.id} sends {getattr(action.params, 'template', '?')} to every "
                    f"client it selects every {rule.trigger.every}, without cooldown or once",
                    action.location or rule.location,
                    "add cooldown: <duration> or once: per_client if a client should get it "
                    "less often",
                )


__all__ = ["Finding", "Severity"]
