"""Rule triggers (``on``): event types, time offsets from a date field, schedules.

Parsing is here; planning and firing timers belong to the engine. A cron
expression is parsed into the sets of minutes, hours, days, months and
weekdays it allows, so a bad one is refused at load time with the part that
is wrong.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import time
from typing import Literal

from crmrules.calendar import Duration
from crmrules.rules.events import (
    BUILTIN_EVENT_INFO,
    BUILTIN_EVENTS,
    TIMER_EVENT,
    BuiltinEvent,
    EventKey,
)
from crmrules.rules.fields import TIME_TYPES, FieldRegistry, FieldSpec, unknown_field_hint

_BUILTIN_PREFIXES = frozenset(name.split(".", 1)[0] for name in BUILTIN_EVENTS)
EVENT_TYPE = re.compile(r"[^\W\d][\w\-]{0,63}(\.[\w\-]{1,64}){0,4}")


def check_event_type(name: object) -> str | None:
    """An error message for a malformed or mistyped event type, or None if it is fine."""
    if not isinstance(name, str) or not EVENT_TYPE.fullmatch(name):
        return (
            f"{name!r} is not an event type; write names such as invoice.issued "
            "(letters, digits, '_' and '-', parts joined by '.')"
        )
    if name in BUILTIN_EVENTS or name.split(".", 1)[0] not in _BUILTIN_PREFIXES:
        return None
    close = difflib.get_close_matches(name, BUILTIN_EVENTS, n=1, cutoff=0.85)
    if close:
        return f"unknown built-in event {name!r}; did you mean {close[0]}?"
    return None


@dataclass(frozen=True)
class Cron:
    """A five-field cron expression: minute hour day-of-month month day-of-week."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Monday ... 6 = Sunday
    #: Vixie cron: when neither day field starts with '*', a day matching either one is enough
    day_or_weekday: bool
    #: the minute or hour field starts with '*': runs in both passes of a repeated DST hour
    wildcard: bool = False


_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    )
}
_DAYS = {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
_CRON_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)


def _cron_field(text: str, name: str, low: int, high: int, names: dict[str, int]) -> set[int]:
    values: set[int] = set()

    def number(token: str) -> int:
        if not token:
            raise ValueError(f"{name}: a range needs a number on both sides of '-', e.g. 1-5")
        lowered = token.lower()
        value = names.get(lowered) if lowered in names else int(token) if token.isdigit() else None
        if value is None or not low <= value <= high:
            raise ValueError(f"{name} {token!r} is out of range {low}-{high}")
        return value

    for part in text.split(","):
        if not part:
            raise ValueError(f"{name}: empty item in {text!r}; write values separated by ','")
        body, slash, step_text = part.partition("/")
        step = int(step_text) if step_text.isdigit() and int(step_text) > 0 else None
        if slash and step is None:
            raise ValueError(f"{name}: step {step_text!r} must be a positive number, e.g. */15")
        if body == "*":
            start, end = low, high
        elif "-" in body:
            first, _, last = body.partition("-")
            start, end = number(first), number(last)
            if start > end:
                raise ValueError(f"{name}: range {body!r} runs backwards")
        else:
            start = number(body)
            end = high if step else start
        values.update(range(start, end + 1, step or 1))
    return values


#: The longest each month can be (February: 29, in leap years).
_MONTH_DAYS = dict(enumerate((31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31), start=1))


def parse_cron(text: str) -> Cron:
    """A five-field cron expression; ValueError names the field that is wrong.

    An expression that can never fall due (31 February) is refused here,
    so a worker never meets it.
    """
    parts = text.split()
    if len(parts) != 5:
        raise ValueError(
            f"cron {text!r} needs 5 fields (minute hour day-of-month month day-of-week), "
            f"found {len(parts)}"
        )
    sets = [
        _cron_field(part, name, low, high, names)
        for part, (name, low, high, names) in zip(parts, _CRON_FIELDS, strict=True)
    ]
    # cron counts Sunday as 0 or 7; Python's weekday() has Monday as 0.
    weekdays = frozenset((d - 1) % 7 for d in sets[4])
    either = not (parts[2].startswith("*") or parts[4].startswith("*"))
    if not either and not any(day <= _MONTH_DAYS[month] for month in sets[3] for day in sets[2]):
        raise ValueError(
            f"cron {text!r} never falls due: no month it names has day {parts[2]} "
            "(check the day-of-month and month fields)"
        )
    return Cron(
        text=text,
        minutes=frozenset(sets[0]),
        hours=frozenset(sets[1]),
        days=frozenset(sets[2]),
        months=frozenset(sets[3]),
        weekdays=weekdays,
        day_or_weekday=either,
        wildcard=parts[0].startswith("*") or parts[1].startswith("*"),
    )


TriggerKind = Literal["event", "after", "before", "schedule"]


@dataclass(frozen=True)
class Trigger:
    kind: TriggerKind
    events: tuple[str, ...] = ()
    #: after/before: the offset and the date field it is measured from
    offset: Duration | None = None
    anchor: FieldSpec | None = None
    #: schedule: every <duration> at <time>, or cron
    every: Duration | None = None
    at: time | None = None
    cron: Cron | None = None

    def describe(self) -> str:
        if self.kind == "event":
            return ", ".join(self.events)
        if self.kind in ("after", "before") and self.anchor is not None:
            return f"{self.offset} {self.kind} {self.anchor.path}"
        if self.cron is not None:
            return f"cron {self.cron.text}"
        at = f" at {self.at.strftime('%H:%M')}" if self.at else ""
        return f"every {self.every}{at}"


def _time_of_day(text: object) -> time:
    if isinstance(text, str) and re.fullmatch(r"\d{1,2}:\d{2}", text.strip()):
        hours, minutes = (int(p) for p in text.strip().split(":"))
        if hours < 24 and minutes < 60:
            return time(hours, minutes)
    raise ValueError(f"{text!r} is not a time of day; write HH:MM, e.g. 09:00")


class TriggerError(ValueError):
    """A bad trigger; ``key`` names the part of the mapping that is wrong."""

    def __init__(self, message: str, key: str | int | None = None, *, at_key: bool = False) -> None:
        super().__init__(message)
        self.key = key
        self.at_key = at_key


def _anchor(name: object, registry: FieldRegistry, word: str) -> FieldSpec:
    if name is None:
        raise TriggerError(f"the trigger needs {word}: <date field>", word)
    spec = registry.get(name) if isinstance(name, str) else None
    if spec is None:
        hint = unknown_field_hint(str(name), registry.suggest(str(name)), "date")
        raise TriggerError(f"unknown field {name!r} ({hint})", word)
    if spec.type not in TIME_TYPES or spec.namespace not in ("client", "deal"):
        raise TriggerError(
            f"{word}: {spec.path} is not a date or datetime field of the client or deal", word
        )
    return spec


def _keys(raw: dict[str, object], required: Iterable[str], optional: Iterable[str] = ()) -> None:
    allowed = {*required, *optional}
    for key in raw:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise TriggerError(f"unexpected key {key!r} in the trigger{hint}", key, at_key=True)


def parse_trigger(raw: object, registry: FieldRegistry) -> Trigger:
    """The trigger of ``on``; TriggerError with the offending key."""
    if isinstance(raw, str | list):
        names = [raw] if isinstance(raw, str) else raw
        if not names:
            raise TriggerError("on: the list of events is empty")
        for index, name in enumerate(names):
            problem = check_event_type(name)
            if problem:
                raise TriggerError(problem, None if isinstance(raw, str) else index)
        return Trigger("event", events=tuple(str(n) for n in names))
    if not isinstance(raw, dict):
        raise TriggerError(
            "on: write an event type, a list of them, {after: 7 days, since: <field>}, "
            "{before: 30 days, of: <field>}, {every: 1 month, at: '09:00'} or {cron: ...}"
        )
    if "after" in raw or "since" in raw:
        _keys(raw, ("after", "since"))
        return Trigger(
            "after",
            offset=_duration(raw.get("after"), "after"),
            anchor=_anchor(raw.get("since"), registry, "since"),
        )
    if "before" in raw or "of" in raw:
        _keys(raw, ("before", "of"))
        return Trigger(
            "before",
            offset=_duration(raw.get("before"), "before"),
            anchor=_anchor(raw.get("of"), registry, "of"),
        )
    if "every" in raw:
        _keys(raw, ("every",), ("at",))
        every = _duration(raw["every"], "every")
        if every.is_zero:
            raise TriggerError("every: the period must be longer than zero", "every")
        try:
            at = _time_of_day(raw["at"]) if "at" in raw else None
        except ValueError as error:
            raise TriggerError(str(error), "at") from None
        return Trigger("schedule", every=every, at=at)
    if "cron" in raw:
        _keys(raw, ("cron",))
        if not isinstance(raw["cron"], str):
            raise TriggerError("cron takes a text such as '0 9 * * 1'", "cron")
        try:
            return Trigger("schedule", cron=parse_cron(raw["cron"]))
        except ValueError as error:
            raise TriggerError(str(error), "cron") from None
    first = next(iter(raw), None)
    raise TriggerError("on: a time trigger takes after/since, before/of, every or cron", first)


def _duration(raw: object, key: str) -> Duration:
    if not isinstance(raw, str):
        raise TriggerError(f"{key} takes a duration such as '7 days'", key)
    try:
        return Duration.parse(raw)
    except ValueError as error:
        raise TriggerError(str(error), key) from None


__all__ = [
    "BUILTIN_EVENTS",
    "BUILTIN_EVENT_INFO",
    "TIMER_EVENT",
    "BuiltinEvent",
    "Cron",
    "EventKey",
    "Trigger",
    "TriggerError",
    "check_event_type",
    "parse_cron",
    "parse_trigger",
]
