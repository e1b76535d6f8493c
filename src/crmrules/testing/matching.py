"""Matching what a scenario expects against what the engine made.

An expected item (a task, a mailing, a deal's fields) is a :class:`Pattern`:
the fields it names, each with a :class:`Expected` value that knows how to
compare itself. Times compare as instants; a date alone matches any time of
that day in the calendar's time zone; sets compare as sets; numbers as
numbers; text exactly, ignoring surrounding whitespace (a YAML ``|`` block
ends with a newline that a rendered template may not have).

Lists of expected items match lists of found items one to one, in any
order: :func:`assign` finds a perfect matching (patterns may be partial,
so a greedy pass could pair the wrong ones).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any
from zoneinfo import ZoneInfo

from crmrules.errors import Location


@dataclass(frozen=True)
class Expected:
    """One expected value, normalised when the scenario is loaded."""

    kind: str  # "null", "time", "day", "set", "number", "bool", "text"
    value: Any
    written: str

    def matches(self, actual: Any, tz: ZoneInfo) -> bool:
        if self.kind == "null":
            return actual is None or actual == "" or actual == frozenset()
        if actual is None:
            return False
        if self.kind == "time":
            if isinstance(actual, datetime):
                return bool(actual == self.value)
            if isinstance(actual, date):
                return bool(actual == self.value.astimezone(tz).date())
            return False
        if self.kind == "day":
            if isinstance(actual, datetime):
                return bool(actual.astimezone(tz).date() == self.value)
            return bool(actual == self.value)
        if self.kind == "set":
            if isinstance(actual, set | frozenset | list | tuple):
                return bool(frozenset(str(v) for v in actual) == self.value)
            return False
        if self.kind == "number":
            if isinstance(actual, bool) or not isinstance(actual, int | Decimal | float):
                return False
            return bool(Decimal(str(actual)) == self.value)
        if self.kind == "bool":
            return actual is self.value
        return bool(show(actual).strip() == self.value)

    def __str__(self) -> str:
        return self.written


def expected_value(raw: Any, *, time_field: bool = False) -> Expected:
    """Normalise a value as written; ValueError (admin-readable) if it cannot be one."""
    written = show(raw)
    if raw is None:
        return Expected("null", None, "null")
    if isinstance(raw, bool):
        return Expected("bool", raw, written)
    if isinstance(raw, list):
        return Expected("set", frozenset(show(v) for v in raw), written)
    if isinstance(raw, dict):
        raise ValueError("expected a plain value, not a mapping")
    if time_field:
        text = str(raw).strip()
        if "T" not in text and " " not in text:
            try:
                return Expected("day", date.fromisoformat(text), written)
            except ValueError:
                pass
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(
                f"{written} is not a moment; write 2026-03-04T10:00:00+03:00 or a date "
                "such as 2026-03-04 (any time that day)"
            ) from None
        if moment.tzinfo is None:
            raise ValueError(f"{written} has no time zone offset; write e.g. {text}+03:00")
        return Expected("time", moment, written)
    if isinstance(raw, int | Decimal):
        return Expected("number", Decimal(raw), written)
    return Expected("text", str(raw).strip(), written)


@dataclass(frozen=True)
class Pattern:
    """The fields an item must have; fields it does not name may be anything."""

    fields: Mapping[str, Expected]
    location: Location | None = None

    def mismatches(self, item: Mapping[str, Any], tz: ZoneInfo) -> list[str]:
        """The fields that differ, each as ``name: expected X, found Y``."""
        return [
            f"{name}: expected {want}, found {show(item.get(name), tz)}"
            for name, want in self.fields.items()
            if not want.matches(item.get(name), tz)
        ]

    def matches(self, item: Mapping[str, Any], tz: ZoneInfo) -> bool:
        return all(want.matches(item.get(name), tz) for name, want in self.fields.items())

    def __str__(self) -> str:
        return "{" + ", ".join(f"{k}: {v}" for k, v in self.fields.items()) + "}"


def assign(
    patterns: Sequence[Pattern], items: Sequence[Mapping[str, Any]], tz: ZoneInfo
) -> dict[int, int]:
    """A matching pattern index -> item index as large as possible (augmenting paths)."""
    fits: list[list[int]] = [
        [j for j, item in enumerate(items) if pattern.matches(item, tz)] for pattern in patterns
    ]
    owner: dict[int, int] = {}  # item -> pattern

    def place(i: int, seen: set[int]) -> bool:
        for j in fits[i]:
            if j in seen:
                continue
            seen.add(j)
            if j not in owner or place(owner[j], seen):
                owner[j] = i
                return True
        return False

    for i in range(len(patterns)):
        place(i, set())
    return {i: j for j, i in owner.items()}


def closest(
    pattern: Pattern, items: Sequence[Mapping[str, Any]], tz: ZoneInfo
) -> tuple[int, list[str]] | None:
    """The item that differs from ``pattern`` in the fewest fields, and how."""
    best: tuple[int, list[str]] | None = None
    for j, item in enumerate(items):
        diff = pattern.mismatches(item, tz)
        if best is None or len(diff) < len(best[1]):
            best = (j, diff)
    return best


def show(value: Any, tz: ZoneInfo | None = None) -> str:
    """A value as an admin would write it in a scenario."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return (value.astimezone(tz) if tz else value).isoformat()
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, set | frozenset):
        return "[" + ", ".join(sorted(show(v) for v in value)) + "]"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(show(v) for v in value) + "]"
    return str(value)


def describe_item(item: Mapping[str, Any], keys: Sequence[str], tz: ZoneInfo) -> str:
    """``{kind: call, title: ..., ...}`` with the keys that have a value."""
    shown = [f"{k}: {show(item.get(k), tz)}" for k in keys if item.get(k) not in (None, "")]
    return "{" + ", ".join(shown) + "}"


__all__ = [
    "Expected",
    "Pattern",
    "assign",
    "closest",
    "describe_item",
    "expected_value",
    "show",
]
