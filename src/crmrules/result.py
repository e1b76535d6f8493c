"""What handling an event produced, and why: effects, rule outcomes, explanations.

A Result is kept in the store as plain data (``to_dict``) under the event's
id, so a duplicate delivery returns the first result instead of acting
again, and the audit log can be read back long after.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal, Protocol

OutcomeStatus = Literal["fired", "not_matched", "held", "failed"]


#: How ``explain`` marks each outcome.
_MARKS = {"fired": "✓", "not_matched": "✗", "held": "‖", "failed": "!"}


@dataclass(frozen=True)
class Effect:
    """One change crmrules made: a task created, a stage moved, a mailing queued..."""

    kind: str
    event_id: str
    rule: str | None
    summary: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RuleOutcome:
    """Why a rule did or did not fire for one event."""

    rule: str
    event_id: str
    event_type: str
    status: OutcomeStatus
    reason: str = ""
    #: for not_matched: the first failing condition
    field: str | None = None
    operator: str | None = None
    expected: str | None = None
    actual: str | None = None

    def describe(self) -> str:
        if self.status == "fired":
            return f"{self.rule}: fired"
        word = {"not_matched": "not matched", "failed": "failed"}.get(self.status, "held")
        return f"{self.rule}: {word}: {self.reason}"


class Explained(Protocol):
    """What rebuilds a not_matched outcome's explanation (``crmrules.rules.why.Why``)."""

    def shown(self) -> tuple[str, str | None, str | None, str | None, str | None]: ...


class NotMatched(RuleOutcome):
    """A not_matched outcome explained when first read, from what its evaluation saw.

    ``reason``, ``field``, ``operator``, ``expected`` and ``actual`` are what a
    ``RuleOutcome`` built eagerly holds; it compares, prints, copies and
    pickles as that ``RuleOutcome``.
    """

    why: Explained

    def __init__(self, rule: str, event_id: str, event_type: str, why: Explained) -> None:
        _set(self, "rule", rule)
        _set(self, "event_id", event_id)
        _set(self, "event_type", event_type)
        _set(self, "status", "not_matched")
        _set(self, "why", why)

    @property
    def reason(self) -> str:
        return self.why.shown()[0]

    @property
    def field(self) -> str | None:
        return self.why.shown()[1]

    @property
    def operator(self) -> str | None:
        return self.why.shown()[2]

    @property
    def expected(self) -> str | None:
        return self.why.shown()[3]

    @property
    def actual(self) -> str | None:
        return self.why.shown()[4]

    def eager(self) -> RuleOutcome:
        """The same outcome with its explanation worked out."""
        reason, field_, operator, expected, actual = self.why.shown()
        return RuleOutcome(
            self.rule, self.event_id, self.event_type, "not_matched", reason,
            field_, operator, expected, actual,
        )  # fmt: skip

    def __eq__(self, other: object) -> bool:
        return self.eager() == other

    def __hash__(self) -> int:
        return hash(self.eager())

    def __repr__(self) -> str:
        return repr(self.eager())

    def __reduce__(self) -> tuple[Any, ...]:
        eager = self.eager()
        return (RuleOutcome, tuple(getattr(eager, f.name) for f in fields(eager)))


_set = object.__setattr__


def _outcome(outcome: RuleOutcome) -> dict[str, Any]:
    if type(outcome) is NotMatched:  # its explanation read once, not once per field
        reason, field_, operator, expected, actual = outcome.why.shown()
        return {
            "rule": outcome.rule,
            "event_id": outcome.event_id,
            "event_type": outcome.event_type,
            "status": outcome.status,
            "reason": reason,
            "field": field_,
            "operator": operator,
            "expected": expected,
            "actual": actual,
        }
    return {
        "rule": outcome.rule,
        "event_id": outcome.event_id,
        "event_type": outcome.event_type,
        "status": outcome.status,
        "reason": outcome.reason,
        "field": outcome.field,
        "operator": outcome.operator,
        "expected": outcome.expected,
        "actual": outcome.actual,
    }


@dataclass(frozen=True)
class EventRecord:
    """One event of a cascade: the event reported or raised, and its depth."""

    id: str
    type: str
    depth: int
    client: str | None
    deal: str | None


@dataclass
class Result:
    """Everything one event (with its cascade) did; ``explain()`` reads it to people."""

    event_id: str
    duplicate: bool = False
    events: list[EventRecord] = field(default_factory=list)
    outcomes: list[RuleOutcome] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: the regulation version that decided it (crmrules.rules.versions)
    regulation: str | None = None

    @property
    def fired(self) -> list[str]:
        """Ids of the rules that fired, in the order they fired."""
        return [o.rule for o in self.outcomes if o.status == "fired"]

    @property
    def failed(self) -> list[str]:
        """Ids of the rules that failed at run time and were rolled back alone."""
        return [o.rule for o in self.outcomes if o.status == "failed"]

    def effects_of(self, kind: str) -> list[Effect]:
        return [e for e in self.effects if e.kind == kind]

    def explain(self) -> str:
        """The whole story, one line per event, rule outcome, effect and error."""
        lines: list[str] = []
        if self.duplicate:
            lines.append(f"event {self.event_id} was handled before; nothing done again")
        # each event's outcomes and each outcome's effects, in their order: looked up, not
        # searched (a schedule's occurrence has an event, outcome and effect per client)
        outcomes: dict[str, list[RuleOutcome]] = {}
        for outcome in self.outcomes:
            outcomes.setdefault(outcome.event_id, []).append(outcome)
        effects: dict[tuple[str, str | None], list[Effect]] = {}
        for effect in self.effects:
            effects.setdefault((effect.event_id, effect.rule), []).append(effect)
        for event in self.events:
            about = ", ".join(
                f"{name} {value}"
                for name, value in (("client", event.client), ("deal", event.deal))
                if value
            )
            indent = "  " * event.depth
            lines.append(f"{indent}{event.type} ({event.id}{', ' + about if about else ''})")
            for outcome in outcomes.get(event.id, ()):
                mark = _MARKS[outcome.status]
                lines.append(f"{indent}  {mark} {outcome.describe()}")
                for effect in effects.get((event.id, outcome.rule), ()):
                    lines.append(f"{indent}      → {effect.summary}")
            if event.id not in outcomes:
                lines.append(f"{indent}  (no rule listens to {event.type})")
        lines.extend(f"error: {error}" for error in self.errors)
        return "\n".join(lines)

    def to_dict(self, *, explained: bool = True) -> dict[str, Any]:
        """Plain data for the store; effects' data are plain JSON values already.

        ``explained=False``: each ``NotMatched`` outcome stays as it is, not
        explained (for a store that keeps it in this process, see ``explain_stored``).
        """
        return {
            "event_id": self.event_id,
            "duplicate": self.duplicate,
            "events": [dict(vars(e)) for e in self.events],
            "outcomes": [
                o if not explained and isinstance(o, NotMatched) else _outcome(o)
                for o in self.outcomes
            ],
            "effects": [{**vars(e), "data": dict(e.data)} for e in self.effects],
            "errors": list(self.errors),
            "regulation": self.regulation,
        }

    @staticmethod
    def explain_stored(data: dict[str, Any]) -> dict[str, Any]:
        """``data`` from ``to_dict(explained=False)`` as ``to_dict()`` gives it."""
        outcomes = data.get("outcomes", [])
        if any(isinstance(o, NotMatched) for o in outcomes):
            data = {
                **data,
                "outcomes": [_outcome(o) if isinstance(o, NotMatched) else o for o in outcomes],
            }
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, duplicate: bool = False) -> Result:
        return cls(
            event_id=data["event_id"],
            duplicate=duplicate,
            events=[EventRecord(**e) for e in data.get("events", [])],
            outcomes=[RuleOutcome(**o) for o in data.get("outcomes", [])],
            effects=[Effect(**e) for e in data.get("effects", [])],
            errors=list(data.get("errors", [])),
            regulation=data.get("regulation"),
        )


__all__ = [
    "Effect",
    "EventRecord",
    "Explained",
    "NotMatched",
    "OutcomeStatus",
    "Result",
    "RuleOutcome",
]
