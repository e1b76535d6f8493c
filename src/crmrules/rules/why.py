"""Why a rule did not match: what its evaluation saw, and the explanation rebuilt from it.

Explaining a rule that did not match (its deciding condition, the actual
value, in the admin's words) costs more than deciding it. So the engine
does not explain while it evaluates: it keeps a ``Seen``, the values of the
fields the evaluated rules read (taken once per view of an event, shared
by all its rules), the moment, the update's changes and the regulation
version, and a ``Why`` per rule that did not match. The explanation is
worked out from the ``Seen`` when someone reads it (``RuleOutcome.reason``,
the audit line written at the end of the transaction), with
``Condition.trace``, so it is the text an eager explanation gives
(``tests/test_why_property.py`` checks it on random rules and records).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from crmrules.model import Event, trusted
from crmrules.rules.conditions import Condition, Facts, LeafTrace, Trace
from crmrules.store import AuditEntry

#: namespace -> the keys read in it, in the order first read
Reads = Mapping[str, tuple[str, ...]]


def reads_of(conditions: Iterable[Condition]) -> dict[str, tuple[str, ...]]:
    """Every record field some of the conditions read (``Condition.reads``), merged."""
    found: dict[str, dict[str, None]] = {}
    for condition in conditions:
        for namespace, keys in condition.reads.items():
            found.setdefault(namespace, {}).update(dict.fromkeys(keys))
    return {namespace: tuple(keys) for namespace, keys in found.items()}


class Seen:
    """What one evaluation saw: the values its rules read, the moment, the changes, the version.

    Made once per view of an event, so a plain class: a frozen dataclass
    costs as much to make as the rule set takes to evaluate a small record.
    Nothing changes it once made.
    """

    __slots__ = ("_rebuilt", "changes", "now", "records", "regulation")

    def __init__(
        self,
        records: tuple[tuple[str, tuple[str, ...], tuple[Any, ...] | None], ...],
        now: datetime,
        changes: Mapping[str, tuple[Any, Any]],
        regulation: str | None = None,
    ) -> None:
        #: (namespace, keys, their values; None when the event had no such record)
        self.records = records
        self.now = now
        self.changes = changes
        self.regulation = regulation
        self._rebuilt: Facts | None = None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Seen):
            return NotImplemented
        return (self.records, self.now, dict(self.changes), self.regulation) == (
            other.records,
            other.now,
            dict(other.changes),
            other.regulation,
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Seen({self.records!r}, {self.now!r}, {self.changes!r}, {self.regulation!r})"

    @classmethod
    def take(cls, reads: Reads, facts: Facts, regulation: str | None = None) -> Seen:
        """The values ``reads`` names, out of ``facts`` (one tuple per namespace)."""
        records = facts.records
        taken = []
        for namespace, keys in reads.items():
            record = records.get(namespace)
            values = None if record is None else tuple(map(record.get, keys))
            taken.append((namespace, keys, values))
        return cls(tuple(taken), facts.now, facts.changes, regulation)

    def facts(self) -> Facts:
        """Facts holding only what was seen: enough for the conditions that read it.

        Rebuilt once, for all the rules explained from this Seen.
        """
        if self._rebuilt is None:
            records: dict[str, Mapping[str, Any] | None] = {
                namespace: None if values is None else dict(zip(keys, values, strict=True))
                for namespace, keys, values in self.records
            }
            self._rebuilt = Facts(records, self.now, self.changes)
        return self._rebuilt


#: (reason, field, operator, expected, actual): what a not_matched outcome shows
Shown = tuple[str, str | None, str | None, str | None, str | None]


class Why:
    """The explanation of one condition on what an evaluation saw, worked out when first read."""

    __slots__ = ("_shown", "_trace", "condition", "seen")

    def __init__(self, condition: Condition, seen: Seen) -> None:
        self.condition = condition
        self.seen = seen
        self._trace: Trace | None = None
        self._shown: Shown | None = None

    def trace(self) -> Trace:
        """The short-circuit trace (the leaves an evaluation looks at), as ``explain`` gives it."""
        if self._trace is None:
            self._trace = self.condition.trace(self.seen.facts(), short_circuit=True)
        return self._trace

    def shown(self) -> Shown:
        """The reason and the deciding condition's field, operator, expected and actual value.

        The words of ``trace().describe()``, from the deciding leaf alone
        (``Condition.decide``).
        """
        if self._shown is None:
            result, leaf = self.condition.decide(self.seen.facts())
            self._shown = shown(result, leaf)
        return self._shown


def shown(result: bool, leaf: LeafTrace | None) -> Shown:
    """What a not_matched outcome shows for a trace's result and deciding leaf (as before)."""
    if leaf is None:
        return Trace(result, (), None).describe(), None, None, None, None
    actual = leaf.shown_actual()
    path, operator, expected = leaf.leaf.parts()
    return leaf.describe_shown(actual), path, operator, expected, actual


class Miss:
    """A not_matched audit line, written with its explanation when the transaction ends."""

    __slots__ = ("at", "client", "event_id", "event_type", "regulation", "rule", "why")

    def __init__(
        self, at: datetime, event: Event, rule: str, why: Why, regulation: str | None
    ) -> None:
        self.at, self.rule, self.why, self.regulation = at, rule, why, regulation
        self.event_id, self.event_type, self.client = event.id, event.type, event.client

    def entry(self) -> AuditEntry:
        """The audit line, explained: what an eager explanation wrote."""
        return trusted(
            AuditEntry,
            {
                "at": self.at,
                "event_id": self.event_id,
                "event_type": self.event_type,
                "kind": "not_matched",
                "rule": self.rule,
                "message": self.why.shown()[0],
                "data": {},
                "regulation": self.regulation,
                "client": self.client,
            },
        )


__all__ = ["Miss", "Reads", "Seen", "Shown", "Why", "reads_of", "shown"]
