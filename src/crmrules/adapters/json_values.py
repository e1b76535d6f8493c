"""Records and free-form values as the JSON the SQL store keeps.

Each record is stored as one JSON ``data`` column: typed fields as
pydantic writes them, free-form ones (custom fields, a timer's data,
``dict[str, Any]``) tagged by ``encode`` so a Decimal comes back a Decimal
and a datetime a datetime with its offset. Read by every version of the
store, so what is written here must stay what it was.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, TypeVar, get_args

from pydantic import AwareDatetime, BaseModel, TypeAdapter

from crmrules.rules.why import Miss
from crmrules.store import AuditEntry

M = TypeVar("M", bound=BaseModel)

# Custom fields and free-form data (``dict[str, Any]``) may hold values JSON has
# no type for; they are written as one-key objects tagged with the type, so a
# Decimal comes back a Decimal and a datetime a datetime with its offset.
DECODERS: dict[str, Callable[[Any], Any]] = {
    "$decimal": Decimal,
    "$datetime": datetime.fromisoformat,
    "$date": date.fromisoformat,
    "$time": time.fromisoformat,
    "$timedelta": lambda v: timedelta(days=v[0], seconds=v[1], microseconds=v[2]),
    "$float": float,
    "$tuple": lambda v: tuple(decode(i) for i in v),
    "$set": lambda v: {decode(i) for i in v},
    "$frozenset": lambda v: frozenset(decode(i) for i in v),
    "$pairs": lambda v: {decode(k): decode(i) for k, i in v},
    "$dict": lambda v: {k: decode(i) for k, i in v.items()},  # a dict that looks like a tag
}


#: The types JSON holds as they are (exactly these: a subclass takes the long way).
PLAIN = frozenset({type(None), bool, int, str})
_ONLY_STR = frozenset({str})


def encode(value: Any) -> Any:
    """``value`` as JSON data that ``decode`` turns back into an equal value of the same type."""
    kind = type(value)
    if kind in PLAIN:
        return value
    # The common shapes first (an event's result, an audit line): no isinstance chain.
    if kind is dict and _ONLY_STR.issuperset(map(type, value)):  # every key a str
        encoded = {k: v if type(v) in PLAIN else encode(v) for k, v in value.items()}
        if len(encoded) == 1 and next(iter(encoded)) in DECODERS:
            return {"$dict": encoded}
        return encoded
    if kind is list:
        return [v if type(v) in PLAIN else encode(v) for v in value]
    return _encode_other(value)


def _encode_other(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"$float": repr(value)}
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, time):
        return {"$time": value.isoformat()}
    if isinstance(value, timedelta):
        return {"$timedelta": [value.days, value.seconds, value.microseconds]}
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, tuple):
        return {"$tuple": [encode(v) for v in value]}
    if isinstance(value, frozenset):
        return {"$frozenset": [encode(v) for v in value]}
    if isinstance(value, set):
        return {"$set": [encode(v) for v in value]}
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            return {"$pairs": [[encode(k), encode(v)] for k, v in value.items()]}
        encoded = {k: encode(v) for k, v in value.items()}
        if len(encoded) == 1 and next(iter(encoded)) in DECODERS:
            return {"$dict": encoded}
        return encoded
    raise TypeError(f"crmrules cannot store a value of type {type(value).__name__}: {value!r}")


def decode(value: Any) -> Any:
    """The value ``encode`` was given."""
    if isinstance(value, list):
        return [decode(v) for v in value]
    if isinstance(value, dict):
        if len(value) == 1:
            ((tag, inner),) = value.items()
            decoder = DECODERS.get(tag)
            if decoder is not None:
                return decoder(inner)
        return {k: decode(v) for k, v in value.items()}
    return value


def _holds_any(annotation: Any) -> bool:
    return annotation is Any or any(_holds_any(arg) for arg in get_args(annotation))


@functools.cache
def free_fields(model: type[BaseModel]) -> frozenset[str]:
    """The fields typed ``Any`` somewhere (custom fields, free data): they need ``encode``."""
    return frozenset(n for n, f in model.model_fields.items() if _holds_any(f.annotation))


def dump(record: BaseModel) -> dict[str, Any]:
    """A record as JSON: typed fields as pydantic writes them, free-form ones tagged."""
    free = free_fields(type(record))
    data = record.model_dump(mode="json", exclude=set(free))
    for name in free:
        data[name] = encode(getattr(record, name))
    return data


def load(model: type[M], data: dict[str, Any]) -> M:
    """A record from ``dump``'s JSON; keys of fields the model no longer has are dropped."""
    free = free_fields(model)
    fields = model.model_fields
    values = {k: decode(v) if k in free else v for k, v in data.items() if k in fields}
    return model.model_validate(values)


def copied(value: Any) -> Any:
    """``value`` with its dicts, lists and sets copied (the rest is immutable)."""
    if isinstance(value, dict):
        return {k: copied(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copied(v) for v in value]
    if isinstance(value, set):
        return {copied(v) for v in value}
    return value


def fresh(record: M) -> M:
    """A copy of a validated client or deal that shares nothing mutable with it (its custom
    fields; the rest is immutable: text, numbers, moments, frozensets)."""
    return record.model_copy(update={"fields": copied(record.__dict__["fields"])})


def flat_record(record: Any) -> dict[str, Any]:
    """``record.record()`` (a client's, deal's or manager's flat record) sharing nothing
    mutable with ``record``: lent with it to be read, so its containers are copies."""
    flat: dict[str, Any] = record.record()
    for key, value in flat.items():
        if value.__class__ in _CONTAINERS:
            flat[key] = copied(value)
    return flat


_CONTAINERS = frozenset({dict, list, set})
_MOMENT: TypeAdapter[datetime] = TypeAdapter(AwareDatetime)
_TEXT = frozenset({str, type(None)})
#: the last moment written and its JSON (an event's audit lines share the run's moment)
_last_moment: tuple[datetime, str] | None = None


def moment(at: datetime) -> str:
    """``at`` as pydantic writes an ``AwareDatetime`` in JSON, worked out once per moment."""
    global _last_moment
    last = _last_moment
    if last is not None and last[0] is at:
        return last[1]
    text: str = _MOMENT.dump_python(at, mode="json")
    _last_moment = (at, text)
    return text


def audit_data(entry: AuditEntry) -> dict[str, Any]:
    """``dump(entry)`` for an audit line, without pydantic's serializer for each line (an
    event writes about ten): the same keys, in the same order, with the same values."""
    values = entry.__dict__
    if type(values["at"]) is not datetime or not _TEXT.issuperset(map(type, _texts(values))):
        return dump(entry)  # a subclass somewhere: pydantic's own way
    data = {name: values[name] for name in _AUDIT_FIELDS}  # dump's order
    data["at"] = moment(values["at"])
    data["data"] = encode(values["data"])
    return data


def miss_data(miss: Miss) -> dict[str, Any]:
    """``audit_data(miss.entry())``, the explained line of a rule that did not match,
    without making the ``AuditEntry`` (an event writes about ten)."""
    message = miss.why.shown()[0]
    texts = (miss.event_id, miss.event_type, miss.rule, message, miss.regulation, miss.client)
    if type(miss.at) is not datetime or not _TEXT.issuperset(map(type, texts)):
        return audit_data(miss.entry())
    return {  # dump's order (``_AUDIT_FIELDS``), as ``Miss.entry`` fills it
        "at": moment(miss.at),
        "event_id": miss.event_id,
        "event_type": miss.event_type,
        "kind": "not_matched",
        "rule": miss.rule,
        "message": message,
        "regulation": miss.regulation,
        "client": miss.client,
        "data": {},
    }


#: ``dump``'s order: the typed fields, then the free-form one
_AUDIT_FIELDS = (*(name for name in AuditEntry.model_fields if name != "data"), "data")
_texts = operator.itemgetter(*(n for n in AuditEntry.model_fields if n not in ("at", "data")))


__all__ = [
    "DECODERS",
    "audit_data",
    "copied",
    "decode",
    "dump",
    "encode",
    "flat_record",
    "free_fields",
    "fresh",
    "load",
    "miss_data",
    "moment",
]
