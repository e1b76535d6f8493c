"""The field registry: every field path a rule may name, with its type.

Rules never reach Python attributes by a name from a file; they go through
this registry, which knows the built-in fields of the spec and the custom
fields a regulation declares. It also turns admin-written values into the
field's type, so type errors surface when the regulation loads.
"""

from __future__ import annotations

import contextlib
import difflib
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from crmrules.calendar import BusinessCalendar
from crmrules.errors import RecordError
from crmrules.rules.events import BUILTIN_EVENT_FIELDS


class FieldType(StrEnum):
    """The type of a field: what values it takes and which operators fit it."""

    STRING = "string"
    INTEGER = "integer"
    DECIMAL = "decimal"
    BOOLEAN = "boolean"
    DATE = "date"
    DATETIME = "datetime"
    ENUM = "enum"
    SET = "set"


NUMBER_TYPES = frozenset({FieldType.INTEGER, FieldType.DECIMAL})
TIME_TYPES = frozenset({FieldType.DATE, FieldType.DATETIME})
TEXT_TYPES = frozenset({FieldType.STRING, FieldType.ENUM})

#: The records a rule can look at; a field path is ``<namespace>.<key>``.
NAMESPACES = ("client", "deal", "event", "manager")


@dataclass(frozen=True)
class FieldSpec:
    path: str
    type: FieldType
    values: tuple[str, ...] = ()
    default: Any = None
    builtin: bool = False

    @property
    def namespace(self) -> str:
        return self.path.split(".", 1)[0]

    @property
    def key(self) -> str:
        return self.path.split(".", 1)[1]


def _builtins() -> dict[str, FieldSpec]:
    S, D, DT = FieldType.STRING, FieldType.DECIMAL, FieldType.DATETIME
    table: dict[str, FieldType] = {
        "client.id": S,
        "client.name": S,
        "client.email": S,
        "client.phone": S,
        "client.region": S,
        "client.city": S,
        "client.country": S,
        "client.industry": S,
        "client.source": S,
        "client.campaign": S,
        "client.request": S,
        "client.kind": FieldType.ENUM,
        "client.tags": FieldType.SET,
        "client.territories": FieldType.SET,
        "client.segments": FieldType.SET,
        "client.responsible": S,
        "client.created_at": DT,
        "client.last_contact_at": DT,
        "deal.id": S,
        "deal.client": S,
        "deal.pipeline": S,
        "deal.stage": S,
        "deal.amount": D,
        "deal.campaign": S,
        "deal.request": S,
        "deal.created_at": DT,
        "deal.stage_entered_at": DT,
        "event.id": S,
        "event.type": S,
        "event.occurred_at": DT,
        "manager.id": S,
        "manager.name": S,
        "manager.email": S,
        "manager.skills": FieldType.SET,
        "manager.capacity": FieldType.INTEGER,
    }
    specs = {path: FieldSpec(path, kind, builtin=True) for path, kind in table.items()}
    specs["client.kind"] = FieldSpec(
        "client.kind", FieldType.ENUM, values=("company", "person"), builtin=True
    )
    # The data of the events crmrules raises: read without a declaration, which may
    # still give one a stricter type (see rules/events.py).
    for path, kind in BUILTIN_EVENT_FIELDS.items():
        specs[path] = FieldSpec(path, FieldType(kind), builtin=True)
    return specs


BUILTIN_FIELDS: Mapping[str, FieldSpec] = _builtins()

#: Custom keys are identifiers: letters (any script), digits and underscores.
CUSTOM_KEY = re.compile(r"[^\W\d]\w{0,63}")


class FieldRegistry:
    """Built-in and declared fields of one regulation."""

    def __init__(self, custom: Iterable[FieldSpec] = ()) -> None:
        self._fields: dict[str, FieldSpec] = dict(BUILTIN_FIELDS)
        for spec in custom:
            self._fields[spec.path] = spec
        #: per namespace: its fields by key, and those with a default (see ``coerce_record``)
        self._plans: dict[str, tuple[dict[str, FieldSpec], list[FieldSpec]]] = {}

    def get(self, path: str) -> FieldSpec | None:
        return self._fields.get(path)

    def __contains__(self, path: object) -> bool:
        return path in self._fields

    def __iter__(self) -> Iterator[FieldSpec]:
        return iter(self._fields.values())

    def suggest(self, path: str, namespace: str | None = None) -> str | None:
        """The closest known path, for "did you mean ...?" hints."""
        candidates = [p for p in self._fields if namespace is None or p.startswith(namespace)]
        close = difflib.get_close_matches(path, candidates, n=1, cutoff=0.6)
        return close[0] if close else None

    def of(self, namespace: str) -> list[FieldSpec]:
        return [spec for spec in self._fields.values() if spec.namespace == namespace]

    def check_declared(
        self,
        namespace: str,
        record_id: str,
        keys: Iterable[str],
        allowed: Iterable[str] = (),
    ) -> None:
        """Refuse a key that is neither declared nor ``allowed``: a typo must not pass silently."""
        free = set(allowed)
        for key in keys:
            if key in free or f"{namespace}.{key}" in self._fields:
                continue
            close = difflib.get_close_matches(key, [s.key for s in self.of(namespace)], n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise RecordError(
                f"{namespace} {record_id}",
                key,
                f"no such field; {hint}declare it under `fields:` as {namespace}.{key}",
            )

    def coerce_record(
        self, namespace: str, record_id: str, data: Mapping[str, Any], calendar: BusinessCalendar
    ) -> dict[str, Any]:
        """A host record's values in their field types; unknown keys are kept as they are.

        Raises RecordError naming the record and field, so a host sees which
        of its rows is wrong instead of a traceback from deep in the engine.
        """
        plan = self._plans.get(namespace)
        if plan is None:
            fields = self.of(namespace)
            plan = self._plans[namespace] = (
                {spec.key: spec for spec in fields},
                [spec for spec in fields if spec.default is not None],
            )
        specs, defaults = plan
        result: dict[str, Any] = {}
        for key, value in data.items():
            spec = specs.get(key)
            if spec is None or value is None or _typed(spec, value):
                result[key] = value
                continue
            try:
                result[key] = coerce(spec, value, calendar)
            except ValueError as error:
                raise RecordError(f"{namespace} {record_id}", key, str(error)) from None
        for spec in defaults:
            if result.get(spec.key) is None:
                result[spec.key] = spec.default
        return result


#: the class a value of each type has once coerced (``coerce`` returns such a value as it is)
_EXACT: dict[FieldType, type] = {
    FieldType.STRING: str,
    FieldType.INTEGER: int,
    FieldType.BOOLEAN: bool,
    FieldType.DATE: date,
}


def _typed(spec: FieldSpec, value: Any) -> bool:
    """Whether ``value`` is already what ``coerce`` makes of it: the fast path of stored records."""
    kind, cls = spec.type, value.__class__
    if cls is _EXACT.get(kind):
        return True
    if kind is FieldType.DECIMAL:
        return cls is Decimal and value.is_finite()
    if kind is FieldType.SET:
        return cls is frozenset and all(item.__class__ is str for item in value)
    if kind is FieldType.ENUM:
        return cls is str and value in spec.values
    return False


def _describe(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def coerce(spec: FieldSpec, value: Any, calendar: BusinessCalendar) -> Any:
    """``value`` in the type of ``spec``; ValueError with an admin-readable message if not."""
    kind = spec.type
    if isinstance(value, bool) and kind is not FieldType.BOOLEAN:
        raise ValueError(f"expected a {kind} value, got {str(value).lower()}")
    if kind is FieldType.STRING:
        if isinstance(value, str):
            return value
        if isinstance(value, int):
            return str(value)
        raise ValueError(f"expected text, got {_describe(value)}")
    if kind is FieldType.ENUM:
        text = str(value) if isinstance(value, int) else value
        if not isinstance(text, str):
            raise ValueError(f"expected one of {', '.join(spec.values)}, got {_describe(value)}")
        if text not in spec.values:
            close = difflib.get_close_matches(text, spec.values, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise ValueError(
                f"{_describe(text)} is not one of {', '.join(spec.values)} for {spec.path}{hint}"
            )
        return text
    if kind is FieldType.INTEGER:
        if isinstance(value, int):
            return value
        if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
            return int(value)
        if isinstance(value, str) and re.fullmatch(r"[-+]?\d{1,30}", value.strip()):
            return int(value)
        raise ValueError(f"expected a whole number, got {_describe(value)}")
    if kind is FieldType.DECIMAL:
        number: Decimal | None = None
        if isinstance(value, int | Decimal):
            number = Decimal(value)
        elif isinstance(value, float):
            number = Decimal(str(value))
        elif isinstance(value, str) and len(value) <= 40:
            with contextlib.suppress(InvalidOperation):
                number = Decimal(value.strip().replace(",", "."))
        # NaN and infinities would poison every later comparison and sum on the record.
        if number is not None and number.is_finite():
            return number
        if number is not None:
            raise ValueError(f"expected a finite number, got {_describe(value)}")
        raise ValueError(f"expected a number, got {_describe(value)}")
    if kind is FieldType.BOOLEAN:
        if isinstance(value, bool):
            return value
        raise ValueError(f"expected true or false, got {_describe(value)}")
    if kind is FieldType.DATE:
        if isinstance(value, datetime):
            raise ValueError(f"expected a date (YYYY-MM-DD), got the moment {value.isoformat()}")
        if isinstance(value, date):
            return value
        if isinstance(value, str):
            try:
                return date.fromisoformat(value.strip())
            except ValueError:
                pass
        raise ValueError(f"expected a date such as 2026-03-02, got {_describe(value)}")
    if kind is FieldType.DATETIME:
        return coerce_datetime(value, calendar)
    if kind is FieldType.SET:
        if isinstance(value, str):
            raise ValueError(f"expected a list of text values, got {_describe(value)}")
        if isinstance(value, list | tuple | set | frozenset):
            items = [str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
            if all(isinstance(item, str) for item in items):
                return frozenset(items)
        raise ValueError(f"expected a list of text values, got {_describe(value)}")
    raise AssertionError(kind)  # pragma: no cover


def coerce_datetime(value: Any, calendar: BusinessCalendar) -> datetime:
    """An aware moment; a moment written without an offset is in the calendar's time zone."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(
                f"expected a moment such as 2026-03-02T10:00:00+03:00, got {_describe(value)}"
            ) from None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return calendar.combine(value.date(), value.time())
        return value
    if isinstance(value, date):
        return calendar.combine(value, time(0, 0))
    raise ValueError(f"expected a moment such as 2026-03-02T10:00:00+03:00, got {_describe(value)}")


def unknown_field_hint(path: str, suggestion: str | None, example_type: str = "string") -> str:
    """What to do about an unknown field: declare it, or the look-alike that exists.

    An event's data keys are always the admin's own, so declaring comes first
    there; for a client or deal a typo of a built-in field is the likelier case.
    """
    namespace, _, key = path.partition(".")
    close = f"did you mean {suggestion}?" if suggestion else None
    if namespace == "manager":
        return close or "manager fields are built in; fields: declares client, deal and event ones"
    if namespace not in ("client", "deal", "event") or not CUSTOM_KEY.fullmatch(key):
        return close or "a field is client.<name>, deal.<name>, event.<name> or manager.<name>"
    declare = f"declare it under fields:, e.g. fields: {{{path}: {{type: {example_type}}}}}"
    if close is None:
        return declare
    return f"{declare}; or {close}" if namespace == "event" else f"{close} Or {declare}"


__all__ = [
    "BUILTIN_FIELDS",
    "CUSTOM_KEY",
    "NAMESPACES",
    "NUMBER_TYPES",
    "TEXT_TYPES",
    "TIME_TYPES",
    "FieldRegistry",
    "FieldSpec",
    "FieldType",
    "coerce",
    "coerce_datetime",
    "unknown_field_hint",
]
