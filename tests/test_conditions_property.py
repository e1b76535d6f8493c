"""Compiled conditions against a plain reference interpreter written from the spec.

The reference below follows the rule language literally: it walks the raw mapping an
admin wrote, turns ``not`` into Python ``not`` (no pushing down), and decides each leaf
from the spec's wording. It shares no logic with ``crmrules.rules.conditions``; only the
public entry points (``parse``, ``Condition``, ``Facts``) are used to get the other side.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import re2
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st

from crmrules.calendar import BusinessCalendar, Duration
from crmrules.rules.conditions import Condition, Facts, Scope, parse
from crmrules.rules.fields import FieldRegistry, FieldSpec, FieldType
from crmrules.rules.source import SourceMap

TZ_NAME = "Europe/Moscow"
MSK = ZoneInfo(TZ_NAME)
CAL = BusinessCalendar(TZ_NAME)

TERRITORIES: dict[str, frozenset[str]] = {
    "msk": frozenset({"msk", "msk-ent"}),
    "msk-ent": frozenset({"msk-ent"}),
}

CUSTOM = [
    FieldSpec("client.segment", FieldType.ENUM, ("A", "B", "C")),
    FieldSpec("client.employees", FieldType.INTEGER),
    FieldSpec("client.revenue", FieldType.DECIMAL),
    FieldSpec("client.subscribed", FieldType.BOOLEAN),
    FieldSpec("client.contract_end", FieldType.DATE),
    FieldSpec("deal.delivered_at", FieldType.DATETIME),
]

# The reference's own view of the fields: path -> (type name, enum values).
FIELDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "client.segment": ("enum", ("A", "B", "C")),
    "client.employees": ("integer", ()),
    "client.revenue": ("decimal", ()),
    "client.subscribed": ("boolean", ()),
    "client.contract_end": ("date", ()),
    "deal.delivered_at": ("datetime", ()),
    "client.name": ("string", ()),
    "client.region": ("string", ()),
    "client.email": ("string", ()),
    "client.kind": ("enum", ("company", "person")),
    "client.tags": ("set", ()),
    "client.territories": ("set", ()),
    "client.created_at": ("datetime", ()),
    "deal.stage": ("string", ()),
    "deal.amount": ("decimal", ()),
    "manager.capacity": ("integer", ()),
}
NAMESPACES = ("client", "deal", "manager")


def make_scope(problems: list[Any]) -> Scope:
    return Scope(FieldRegistry(CUSTOM), CAL, SourceMap(), problems, territories=dict(TERRITORIES))


def compile_raw(raw: Mapping[str, Any]) -> tuple[Condition | None, list[Any]]:
    problems: list[Any] = []
    tree = parse(raw, ("if",), make_scope(problems))
    return (None if tree is None else Condition(tree, CAL)), problems


# ============================================================================================
# The reference interpreter
# ============================================================================================

NEGATED = {"ne": "eq", "not_in": "in", "not_contains": "contains"}
ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "lt": operator.lt,
    "lte": operator.le,
    "gt": operator.gt,
    "gte": operator.ge,
}


def field_value(facts: Facts, path: str) -> Any:
    namespace, key = path.split(".", 1)
    record = facts.records.get(namespace)
    if record is None:
        return None
    return record.get(key)


def is_date_only(raw: Any) -> bool:
    if isinstance(raw, datetime):
        return False
    if isinstance(raw, date):
        return True
    return isinstance(raw, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw.strip()) is not None


def as_day(raw: Any) -> date:
    return raw if isinstance(raw, date) else date.fromisoformat(raw.strip())


def day_start(day: date) -> datetime:
    """Local midnight in the calendar zone (Moscow has no DST in the dates used here)."""
    return datetime.combine(day, time(0), tzinfo=MSK)


def literal(kind: str, raw: Any) -> Any:
    """An admin's literal in the field's type (date-only literals on datetimes excluded)."""
    if kind == "string":
        return str(raw)
    if kind == "enum":
        return str(raw)
    if kind == "integer":
        return int(raw)
    if kind == "decimal":
        return Decimal(str(raw))
    if kind == "boolean":
        return bool(raw)
    if kind == "date":
        return as_day(raw)
    if kind == "datetime":
        moment = raw if isinstance(raw, datetime) else datetime.fromisoformat(raw.strip())
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=MSK)
    if kind == "set":
        return frozenset(str(item) for item in raw)
    raise AssertionError(kind)


def fold(value: Any) -> Any:
    if isinstance(value, str):
        return value.casefold()
    if isinstance(value, frozenset):
        return frozenset(item.casefold() for item in value)
    return value


def empty(value: Any) -> bool:
    return value is None or (isinstance(value, str | frozenset) and len(value) == 0)


def ago(now: datetime, text: str) -> datetime:
    """``now`` minus a duration written as '<n> <unit>'."""
    number, unit = text.split(" ", 1)
    n = int(number)
    if unit.startswith("business"):
        return CAL.subtract(now, Duration.parse(text))
    step = {
        "minute": timedelta(minutes=1),
        "minutes": timedelta(minutes=1),
        "hour": timedelta(hours=1),
        "hours": timedelta(hours=1),
        "day": timedelta(days=1),
        "days": timedelta(days=1),
        "week": timedelta(weeks=1),
        "weeks": timedelta(weeks=1),
    }[unit]
    # Calendar days are wall-clock days; Moscow has a fixed offset, so that is elapsed time.
    return now - n * step


def changed(facts: Facts, path: str) -> bool:
    if path not in facts.changes:
        return False
    before, after = facts.changes[path]
    return before != after and not (empty(before) and empty(after))


def equals(kind: str, value: Any, raw: Any, ignore_case: bool) -> bool:
    if value is None:
        return False
    if kind == "datetime" and is_date_only(raw):
        start = day_start(as_day(raw))
        return start <= value < day_start(as_day(raw) + timedelta(days=1))
    expected = literal(kind, raw)
    if ignore_case:
        return fold(value) == fold(expected)
    return bool(value == expected)


def ordered(op: str, kind: str, value: Any, raw: Any) -> bool:
    if kind == "datetime" and is_date_only(raw):
        start = day_start(as_day(raw))
        end = day_start(as_day(raw) + timedelta(days=1))
        return {
            "lt": value < start,
            "lte": value < end,
            "gt": value >= end,
            "gte": value >= start,
        }[op]
    return ORDER[op](value, literal(kind, raw))


def positive(raw: Mapping[str, Any], op: str, arg: Any, facts: Facts) -> bool:
    path = raw["field"]
    kind = FIELDS[path][0]
    ignore_case = bool(raw.get("ignore_case", False))
    value = field_value(facts, path)
    f = fold if ignore_case else (lambda v: v)

    # operators that handle missing values themselves
    if op == "is_empty":
        return empty(value) if arg else not empty(value)
    if op == "changed":
        return changed(facts, path) if arg else not changed(facts, path)
    if op in ("changed_from", "changed_to"):
        if not changed(facts, path):
            return False
        side = facts.changes[path][0 if op == "changed_from" else 1]
        return equals(kind, side, arg, ignore_case)
    # empty lists are constants, whatever the field holds
    if op in ("in", "contains_any") and arg == []:
        return False
    if op == "contains_all" and arg == []:
        return True

    if value is None:
        return False
    if op == "eq":
        return equals(kind, value, arg, ignore_case)
    if op in ORDER:
        return ordered(op, kind, value, arg)
    if op == "between":
        low, high = arg
        return ordered("gte", kind, value, low) and ordered("lte", kind, value, high)
    if op == "in":
        return any(equals(kind, value, item, ignore_case) for item in arg)
    if op == "contains":  # substring of a string, element of a set
        return f(str(arg)) in f(value)
    if op == "starts_with":
        return bool(f(value).startswith(f(str(arg))))
    if op == "ends_with":
        return bool(f(value).endswith(f(str(arg))))
    if op == "matches":
        return re2.search(f(str(arg)), f(value)) is not None
    if op == "contains_any":
        return any(str(item) in value for item in arg)
    if op == "contains_all":
        return all(str(item) in value for item in arg)
    if op in ("older_than", "newer_than"):
        threshold = ago(facts.now, arg)
        if kind == "date":
            bound: Any = threshold.astimezone(MSK).date()
        else:
            bound = threshold
        return value < bound if op == "older_than" else value > bound
    if op in ("before", "after"):
        if kind == "datetime" and is_date_only(arg):
            day = as_day(arg)
            if op == "before":
                return value < day_start(day)
            return value >= day_start(day + timedelta(days=1))
        bound = literal(kind, arg)
        return value < bound if op == "before" else value > bound
    raise AssertionError(op)


def reference(raw: Mapping[str, Any], facts: Facts) -> bool:
    """The spec, read literally."""
    if "all" in raw:
        return all(reference(item, facts) for item in raw["all"])
    if "any" in raw:
        return any(reference(item, facts) for item in raw["any"])
    if "not" in raw:
        return not reference(raw["not"], facts)
    if "territory" in raw:
        held = field_value(facts, "client.territories")
        return held is not None and bool(held & TERRITORIES[raw["territory"]])
    [(op, arg)] = [(k, v) for k, v in raw.items() if k not in ("field", "ignore_case")]
    if op in NEGATED:
        return not positive(raw, NEGATED[op], arg, facts)
    return positive(raw, op, arg, facts)


# ============================================================================================
# Strategies
# ============================================================================================

BASE = date(2025, 6, 15)
NOWS = [
    datetime(2025, 6, 15, 12, 0, tzinfo=MSK),
    datetime(2025, 6, 15, 0, 0, tzinfo=MSK),
    datetime(2025, 6, 14, 21, 30, tzinfo=UTC),  # 00:30 on the 15th in Moscow
    datetime(2025, 6, 15, 23, 59, 59, tzinfo=MSK),
    datetime(2025, 6, 15, 22, 0, tzinfo=UTC),  # 01:00 on the 16th in Moscow
    datetime(2025, 6, 16, 9, 15, tzinfo=MSK),
]
DAY_OFFSETS = [-31, -30, -29, -8, -7, -2, -1, 0, 1, 2]
TIMES = [time(0, 0), time(0, 0, 1), time(0, 30), time(1, 0), time(9, 15), time(12, 0)]
TIMES += [time(23, 59, 59), time(21, 30), time(2, 59, 59)]

STRINGS = [
    "Москва",
    "МОСКВА",
    "москва",
    "Straße",
    "STRASSE",
    "strasse",
    "ß",
    "SS",
    "ss",
    "",
    "abc",
    "ABC",
    "Санкт-Петербург",
    "ivan@example.ru",
    "İstanbul",
    "Ǆ",
    "ǆ",
    "ẞ",
    "ΟΔΟΣ",
    "οδος",
]
FRAGMENTS = ["моск", "МОСК", "ква", "ВА", "ß", "SS", "ss", "str", "STRA", "", "a", "B", "ru"]
FRAGMENTS += ["ẞ", "ΟΣ", "ος"]
# No upper-case escapes (\D, \W, \S, \A, \P...): case-folding a pattern would change them.
PATTERNS = ["^моск", "(?i)москва", "ва$", "^$", "S+", "ß", "[а-я]+", "^STRA", ".", r"\w+@", "Б"]
PATTERNS += ["Straße", "STRASSE", "ẞ", "ΟΔΟΣ$"]
SET_ITEMS = ["vip", "VIP", "Москва", "МОСКВА", "ß", "ss", "SS", "msk", "msk-ent", "spb", ""]
DURATIONS = ["0 days", "1 day", "2 days", "30 days", "1 week", "1 hour", "5 hours", "24 hours"]
DURATIONS += ["90 minutes", "1 business day", "3 business days"]
DECIMALS = ["0", "1.5", "1.50", "-2", "10", "-0.5", "2.5", "100"]

text_values = st.sampled_from(STRINGS) | st.text(alphabet="aAßSsМмоОкК @", max_size=5)
set_values = st.frozensets(st.sampled_from(SET_ITEMS), max_size=4)
day_values = st.sampled_from(DAY_OFFSETS).map(lambda k: BASE + timedelta(days=k))


@st.composite
def moment_values(draw: st.DrawFn) -> datetime:
    moment = datetime.combine(draw(day_values), draw(st.sampled_from(TIMES)), tzinfo=MSK)
    if draw(st.booleans()):
        moment += timedelta(hours=draw(st.integers(-6, 6)))
    return moment.astimezone(UTC) if draw(st.booleans()) else moment


def record_value(path: str) -> st.SearchStrategy[Any]:
    kind, values = FIELDS[path]
    if path == "client.territories":
        return st.frozensets(st.sampled_from(["msk", "msk-ent", "spb", "MSK", ""]), max_size=3)
    return {
        "string": text_values,
        "enum": st.sampled_from(values),
        "integer": st.integers(-4, 4),
        "decimal": st.sampled_from(DECIMALS).map(Decimal),
        "boolean": st.booleans(),
        "date": day_values,
        "datetime": moment_values(),
        "set": set_values,
    }[kind]


# ---- literals as an admin writes them (YAML/JSON scalars) ----------------------------------


def date_literal() -> st.SearchStrategy[Any]:
    return day_values.flatmap(lambda d: st.sampled_from([d, d.isoformat()]))


@st.composite
def moment_literal(draw: st.DrawFn) -> Any:
    style = draw(st.sampled_from(["date", "date-obj", "aware", "naive", "utc", "object"]))
    day = draw(day_values)
    if style == "date":
        return day.isoformat()
    if style == "date-obj":
        return day
    at = draw(st.sampled_from(TIMES))
    local = datetime.combine(day, at, tzinfo=MSK)
    if style == "aware":
        return local.isoformat()
    if style == "naive":
        return local.replace(tzinfo=None).isoformat()
    if style == "utc":
        return local.astimezone(UTC).isoformat()
    return local


def scalar_literal(path: str) -> st.SearchStrategy[Any]:
    kind, values = FIELDS[path]
    return {
        "string": text_values,
        "enum": st.sampled_from(values),
        "integer": st.integers(-4, 4),
        "decimal": st.sampled_from([*DECIMALS, 0, 2, -1, 1.5]),
        "boolean": st.booleans(),
        "date": date_literal(),
        "datetime": moment_literal(),
        "set": st.lists(st.sampled_from(SET_ITEMS), max_size=3),
    }[kind]


def lower_bound(kind: str, raw: Any) -> Any:
    if kind == "datetime" and is_date_only(raw):
        return day_start(as_day(raw))
    return literal(kind, raw)


@st.composite
def between_literal(draw: st.DrawFn, path: str) -> list[Any]:
    kind = FIELDS[path][0]
    a, b = draw(scalar_literal(path)), draw(scalar_literal(path))
    if lower_bound(kind, a) > lower_bound(kind, b):
        a, b = b, a
    return [a, b]


CASE_OPS = ("eq", "ne", "in", "not_in", "contains", "not_contains", "starts_with")
CASE_OPS += ("ends_with", "matches", "changed_from", "changed_to")


@st.composite
def leaves(draw: st.DrawFn, *, empty_lists: bool = True) -> dict[str, Any]:
    if draw(st.integers(0, 15)) == 0:
        return {"territory": draw(st.sampled_from(sorted(TERRITORIES)))}
    path = draw(st.sampled_from(sorted(FIELDS)))
    kind = FIELDS[path][0]
    ops = ["eq", "ne", "is_empty", "changed", "changed_from", "changed_to"]
    if kind in ("integer", "decimal", "date", "datetime"):
        ops += ["lt", "lte", "gt", "gte", "between"]
    if kind in ("string", "enum", "integer", "decimal"):
        ops += ["in", "not_in"]
    if kind in ("string", "set"):
        ops += ["contains", "not_contains"]
    if kind == "string":
        ops += ["starts_with", "ends_with", "matches"]
    if kind == "set":
        ops += ["contains_any", "contains_all"]
    if kind in ("date", "datetime"):
        ops += ["older_than", "newer_than", "before", "after"]
    op = draw(st.sampled_from(ops))
    scalar = scalar_literal(path)
    value: Any
    if op in ("is_empty", "changed"):
        value = draw(st.booleans())
    elif op in ("in", "not_in"):
        value = draw(st.lists(scalar, min_size=0 if empty_lists else 1, max_size=4))
    elif op in ("contains_any", "contains_all"):
        items = st.sampled_from(SET_ITEMS)
        value = draw(st.lists(items, min_size=0 if empty_lists else 1, max_size=3))
    elif op in ("contains", "not_contains"):
        value = draw(st.sampled_from(SET_ITEMS) if kind == "set" else st.sampled_from(FRAGMENTS))
    elif op in ("starts_with", "ends_with"):
        value = draw(st.sampled_from(FRAGMENTS))
    elif op == "matches":
        value = draw(st.sampled_from(PATTERNS))
    elif op == "between":
        value = draw(between_literal(path))
    elif op in ("older_than", "newer_than"):
        value = draw(st.sampled_from(DURATIONS))
    elif op in ("changed_from", "changed_to") and kind == "datetime":
        # the spec gives no whole-day meaning for changed_from/to; use full moments
        value = draw(moment_literal().filter(lambda v: not is_date_only(v)))
    else:
        value = draw(scalar)
    leaf: dict[str, Any] = {"field": path, op: value}
    if op in CASE_OPS and kind in ("string", "enum", "set") and draw(st.booleans()):
        leaf["ignore_case"] = True
    return leaf


def conditions(*, empty_lists: bool = True) -> st.SearchStrategy[dict[str, Any]]:
    def extend(inner: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
        return st.one_of(
            st.lists(inner, min_size=1, max_size=4).map(lambda items: {"all": items}),
            st.lists(inner, min_size=1, max_size=4).map(lambda items: {"any": items}),
            inner.map(lambda item: {"not": item}),
        )

    return st.recursive(leaves(empty_lists=empty_lists), extend, max_leaves=12)


def leaves_of(raw: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    if "all" in raw or "any" in raw:
        return [leaf for item in raw.get("all", raw.get("any", [])) for leaf in leaves_of(item)]
    if "not" in raw:
        return leaves_of(raw["not"])
    return [raw]


def near_values(leaf: Mapping[str, Any], now: datetime) -> list[Any]:
    """Record values close to a leaf's literal, so that leaves are not almost always false."""
    if "territory" in leaf:
        return [frozenset({leaf["territory"]}), frozenset({"msk-ent", "spb"})]
    path = leaf["field"]
    kind = FIELDS[path][0]
    [(op, arg)] = [(k, v) for k, v in leaf.items() if k not in ("field", "ignore_case")]
    out: list[Any] = []

    def add_scalar(raw: Any) -> None:
        if kind == "datetime" and is_date_only(raw):
            start = day_start(as_day(raw))
            out.extend([start, start - timedelta(seconds=1), start + timedelta(days=1)])
            out.append(start + timedelta(hours=12))
            out.append((start + timedelta(days=1) - timedelta(seconds=1)).astimezone(UTC))
        elif kind == "datetime":
            moment = literal(kind, raw)
            out.extend([moment, moment + timedelta(seconds=1), moment - timedelta(seconds=1)])
        elif kind == "date":
            day = as_day(raw)
            out.extend([day, day + timedelta(days=1), day - timedelta(days=1)])
        elif kind in ("integer", "decimal"):
            number = literal(kind, raw)
            out.extend([number, number + 1, number - 1])
        elif kind == "string":
            text = str(raw)
            out.extend([text, text.upper(), text.lower(), text.swapcase(), f"x{text}y"])
        elif kind == "set":
            items = literal(kind, raw) if isinstance(raw, list) else frozenset({str(raw)})
            out.extend([items, frozenset(i.upper() for i in items), items | {"spb"}])
        else:
            out.append(literal(kind, raw))

    if op in ("is_empty", "changed"):
        return out
    if op == "matches":
        text = re.sub(r"\(\?i\)|\\w|[\^$()?.+*\[\]]", "", arg)
        return [text, text.upper(), text.casefold(), f"x{text}y", text.swapcase()]
    if op in ("older_than", "newer_than"):
        threshold = ago(now, arg)
        if kind == "date":
            day = threshold.astimezone(MSK).date()
            return [day, day - timedelta(days=1), day + timedelta(days=1)]
        return [threshold, threshold - timedelta(seconds=1), threshold + timedelta(seconds=1)]
    if kind == "set" and op in ("contains_any", "contains_all"):
        items = frozenset(arg)
        return [items, items | {"spb"}, frozenset(list(items)[:1])]
    if isinstance(arg, list) and not (
        kind == "set" and op in ("eq", "ne", "changed_from", "changed_to")
    ):
        for item in arg:
            add_scalar(item)
    else:
        add_scalar(arg)
    return out


@st.composite
def change_pairs(draw: st.DrawFn, path: str, near: list[Any]) -> tuple[Any, Any]:
    kind = FIELDS[path][0]
    blank = {"string": "", "set": frozenset()}.get(kind)
    anything = st.one_of(st.none(), st.just(blank), record_value(path))
    side = st.sampled_from(near) | anything if near else anything
    before = draw(side)
    after = before if draw(st.integers(0, 4)) == 0 else draw(side)
    return before, after


@st.composite
def facts(draw: st.DrawFn, hints: Mapping[str, Any] | None = None) -> Facts:
    """Records and changes; with ``hints`` (a condition), values often sit near its literals."""
    now = draw(st.sampled_from(NOWS))
    near: dict[str, list[Any]] = {}
    for leaf in leaves_of(hints) if hints is not None else []:
        path = leaf.get("field", "client.territories")
        near.setdefault(path, []).extend(near_values(leaf, now))
    records: dict[str, dict[str, Any] | None] = {}
    for namespace in NAMESPACES:
        if draw(st.integers(0, 12)) == 0:
            records[namespace] = None
            continue
        record: dict[str, Any] = {}
        for path in FIELDS:
            if not path.startswith(namespace + "."):
                continue
            key = path.split(".", 1)[1]
            how = draw(st.sampled_from(["absent", "none", "value", "value", "near", "near"]))
            if how == "near" and not near.get(path):
                how = "value"
            if how == "none":
                record[key] = None
            elif how == "value":
                record[key] = draw(record_value(path))
            elif how == "near":
                record[key] = draw(st.sampled_from(near[path]))
        records[namespace] = record
    candidates = sorted(FIELDS)
    mentioned = sorted(p for p in near if p in FIELDS)
    paths = draw(st.lists(st.sampled_from(candidates), max_size=3, unique=True))
    paths += [path for path in mentioned if path not in paths and draw(st.integers(0, 2))]
    changes = {path: draw(change_pairs(path, near.get(path, []))) for path in paths}
    return Facts(records=records, now=now, changes=changes)


def all_of(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"all": items}


@st.composite
def cases(
    draw: st.DrawFn, conditions: st.SearchStrategy[dict[str, Any]]
) -> tuple[dict[str, Any], Facts]:
    raw = draw(conditions)
    return raw, draw(facts(raw))


# ============================================================================================
# Properties
# ============================================================================================


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases(conditions()))
def test_compiled_condition_agrees_with_reference(case: tuple[dict[str, Any], Facts]) -> None:
    raw, fact = case
    condition, problems = compile_raw(raw)
    assert (condition is None) == bool(problems), problems
    assume(condition is not None)
    assert condition is not None
    expected = reference(raw, fact)
    note(f"expected {expected}; tree {condition.tree!r}")
    assert condition(fact) == expected
    trace = condition.trace(fact)
    assert trace.result == expected


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases(st.lists(leaves(empty_lists=False), min_size=1, max_size=5).map(all_of)))
def test_false_all_is_decided_by_a_false_leaf(case: tuple[dict[str, Any], Facts]) -> None:
    raw, fact = case
    items = raw["all"]
    condition, problems = compile_raw(raw)
    assume(condition is not None)
    assert condition is not None and not problems
    expected = reference(raw, fact)
    assert condition(fact) == expected
    trace = condition.trace(fact)
    assert trace.result == expected
    if expected:
        return
    decided = trace.decided_by
    assert decided is not None
    assert decided.result is False
    assert Condition(decided.leaf, CAL)(fact) is False
    # the deciding leaf is one of the written leaves that the reference finds false
    path = decided.leaf.field.path
    false_paths = {
        leaf.get("field", "client.territories") for leaf in items if not reference(leaf, fact)
    }
    assert path in false_paths


def test_every_leaf_kind_compiles() -> None:
    """The generators produce leaves the implementation accepts (guards against vacuity)."""
    for path, (kind, values) in FIELDS.items():
        sample = {
            "string": "Москва",
            "enum": values[0] if values else "",
            "integer": 1,
            "decimal": "1.5",
            "boolean": True,
            "date": "2025-06-15",
            "datetime": "2025-06-15",
            "set": ["vip"],
        }[kind]
        for op in ("eq", "ne", "is_empty", "changed"):
            value = sample if op in ("eq", "ne") else True
            condition, problems = compile_raw({"field": path, op: value})
            assert condition is not None, (path, op, problems)


# ============================================================================================
# Examples: missing values and date-only literals on datetime fields
# ============================================================================================

NOW = datetime(2025, 6, 15, 12, 0, tzinfo=MSK)


def evaluate(raw: dict[str, Any], client: dict[str, Any] | None = None, **extra: Any) -> bool:
    condition, problems = compile_raw(raw)
    assert condition is not None, problems
    fact = Facts(records={"client": client or {}, **extra}, now=NOW)
    result = condition(fact)
    assert condition.trace(fact).result == result
    assert result == reference(raw, fact)
    return result


def test_negated_operators_on_missing_are_true() -> None:
    assert evaluate({"field": "client.region", "ne": "Москва"}) is True
    assert evaluate({"field": "client.region", "ne": "Москва"}, {"region": None}) is True
    assert evaluate({"field": "client.region", "not_in": ["Москва", "Казань"]}) is True
    assert evaluate({"field": "client.tags", "not_contains": "vip"}) is True
    assert evaluate({"not": {"field": "client.region", "eq": "Москва"}}) is True


def test_lt_on_missing_is_false_but_not_lt_is_true() -> None:
    assert evaluate({"field": "client.employees", "lt": 10}) is False
    assert evaluate({"field": "client.employees", "gte": 10}) is False
    assert evaluate({"not": {"field": "client.employees", "lt": 10}}) is True
    assert evaluate({"not": {"field": "client.employees", "lt": 10}}, {"employees": 5}) is False
    assert evaluate({"not": {"field": "client.employees", "lt": 10}}, {"employees": 10}) is True
    # double negation keeps the positive meaning
    assert evaluate({"not": {"not": {"field": "client.employees", "lt": 10}}}) is False


def test_empty_lists_are_constants() -> None:
    assert evaluate({"field": "client.region", "in": []}, {"region": "Москва"}) is False
    assert evaluate({"field": "client.region", "not_in": []}) is True
    assert (
        evaluate({"field": "client.tags", "contains_any": []}, {"tags": frozenset({"a"})}) is False
    )
    assert evaluate({"field": "client.tags", "contains_all": []}) is True


def test_ignore_case_uses_casefold() -> None:
    raw = {"field": "client.region", "eq": "МОСКВА", "ignore_case": True}
    assert evaluate(raw, {"region": "москва"}) is True
    raw = {"field": "client.name", "eq": "STRASSE", "ignore_case": True}
    assert evaluate(raw, {"name": "Straße"}) is True
    raw = {"field": "client.name", "eq": "STRASSE"}
    assert evaluate(raw, {"name": "Straße"}) is False


def test_ignore_case_matches_folds_both_sides() -> None:
    """The spec folds both sides with str.casefold, so a pattern matches its own text."""
    raw = {"field": "client.name", "matches": "^москва$", "ignore_case": True}
    assert evaluate(raw, {"name": "МОСКВА"}) is True
    raw = {"field": "client.name", "matches": "STRASSE", "ignore_case": True}
    assert evaluate(raw, {"name": "Straße"}) is True
    raw = {"field": "client.name", "matches": "Straße", "ignore_case": True}
    assert evaluate(raw, {"name": "Straße"}) is True
    assert evaluate(raw, {"name": "STRASSE"}) is True


DELIVERED = "deal.delivered_at"


def deal(moment: datetime) -> dict[str, Any]:
    return {"delivered_at": moment}


def at(day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2025, 6, day, hour, minute, second, tzinfo=MSK)


def test_date_only_literal_on_datetime_is_the_whole_local_day() -> None:
    def check(op: str, literal: Any, moment: datetime) -> bool:
        return evaluate({"field": DELIVERED, op: literal}, None, deal=deal(moment))

    day = "2025-06-15"
    # eq: within the local day (Moscow, UTC+3)
    assert check("eq", day, at(15, 0, 0)) is True
    assert check("eq", day, at(15, 23, 59, 59)) is True
    assert check("eq", day, at(14, 23, 59, 59)) is False
    assert check("eq", day, at(16, 0, 0)) is False
    # 2025-06-14T22:30Z is 01:30 on the 15th in Moscow
    assert check("eq", day, datetime(2025, 6, 14, 22, 30, tzinfo=UTC)) is True
    assert check("eq", date(2025, 6, 15), at(15, 12)) is True
    # lt / lte / gt / gte
    assert check("lt", day, at(14, 23, 59, 59)) is True
    assert check("lt", day, at(15, 0)) is False
    assert check("lte", day, at(15, 23, 59, 59)) is True
    assert check("lte", day, at(16, 0)) is False
    assert check("gt", day, at(15, 23, 59, 59)) is False
    assert check("gt", day, at(16, 0)) is True
    assert check("gte", day, at(15, 0)) is True
    assert check("gte", day, at(14, 23, 59, 59)) is False
    # before / after
    assert check("before", day, at(14, 23, 59, 59)) is True
    assert check("before", day, at(15, 0)) is False
    assert check("after", day, at(15, 23, 59, 59)) is False
    assert check("after", day, at(16, 0)) is True
    # between covers both whole days
    assert check("between", ["2025-06-14", day], at(14, 0)) is True
    assert check("between", ["2025-06-14", day], at(15, 23, 59, 59)) is True
    assert check("between", ["2025-06-14", day], at(16, 0)) is False
    assert check("between", ["2025-06-14", day], at(13, 23, 59, 59)) is False
    # a full moment literal is compared as a moment
    assert check("lte", "2025-06-15T12:00:00+03:00", at(15, 12)) is True
    assert check("lt", "2025-06-15T12:00:00+03:00", at(15, 12)) is False


def test_missing_datetime_with_date_literal() -> None:
    assert evaluate({"field": DELIVERED, "eq": "2025-06-15"}, None, deal={}) is False
    assert evaluate({"field": DELIVERED, "ne": "2025-06-15"}, None, deal={}) is True
    assert evaluate({"not": {"field": DELIVERED, "before": "2025-06-15"}}, None, deal={}) is True


def test_changed_looks_only_at_the_update() -> None:
    def check(raw: dict[str, Any], before: Any, after: Any) -> bool:
        condition, problems = compile_raw(raw)
        assert condition is not None, problems
        fact = Facts(records={}, now=NOW, changes={raw["field"]: (before, after)})
        assert condition.trace(fact).result == condition(fact) == reference(raw, fact)
        return condition(fact)

    stage = "deal.stage"
    assert check({"field": stage, "changed": True}, "offer", "invoice") is True
    assert check({"field": stage, "changed": True}, "offer", "offer") is False
    assert check({"field": stage, "changed": True}, None, "") is False
    assert check({"field": stage, "changed": False}, None, "") is True
    assert check({"field": stage, "changed_from": "offer"}, "offer", "invoice") is True
    assert check({"field": stage, "changed_to": "invoice"}, "offer", "invoice") is True
    assert check({"field": stage, "changed_to": "offer"}, "offer", "offer") is False
    raw = {"field": stage, "changed_to": "INVOICE", "ignore_case": True}
    assert check(raw, "offer", "invoice") is True
    tags = {"field": "client.tags", "changed": True}
    assert check(tags, frozenset(), None) is False
    assert check({"field": "client.tags", "changed_to": ["b", "a"]}, None, frozenset("ab")) is True
