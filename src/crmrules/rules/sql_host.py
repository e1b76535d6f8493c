"""Conditions as SQL over a host's own client table (``HostRecords``): its mapped columns.

The same compiler as crmrules' own tables (crmrules.rules.sql), with one
difference: a field mapped to a host column is compared on that column
directly, and a NULL is a missing value (a positive leaf needs the column
``IS NOT NULL``; its negation is then true, as in Python). Territories and
segments are crmrules': they are read from ``crmrules_client_values``, which
the store keeps for host-kept clients from their memberships.

A leaf is compiled only where SQL computes exactly what Python computes on
the value the store reads from the column:

* texts (``String``, ``Text``, ``Enum``); ``ignore_case`` folds with
  ``crmrules_casefold``, Python's ``str.casefold`` (a Python function on
  SQLite, an SQL function made by the migrations on PostgreSQL);
* integers; exact decimals (``Numeric`` on PostgreSQL); floats (compared
  with the literal's nearest float and its nudge, which is exact);
* booleans, dates, moments (a column without a time zone holds UTC);
* two columns of the same kind.

Anything else (a set column, a decimal on SQLite, which stores it as a
float and reads it back rounded, a field with no column) is left to Python
on the rows SQL kept, as every undecidable leaf is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from crmrules.adapters.client_values import image
from crmrules.rules.conditions import COMPARE_OPS, FieldRef, Leaf
from crmrules.rules.fields import NUMBER_TYPES, TEXT_TYPES, FieldType

#: The fields of a host-kept client that crmrules keeps (and indexes) itself.
MEMBERSHIP_KEYS = frozenset({"territories", "segments"})
#: The name of the case-folding function (see the module docstring).
CASEFOLD = "crmrules_casefold"

INT64 = 2**63 - 1

Clause = sa.ColumnElement[bool]


class NaiveUTC(TypeDecorator[datetime]):
    """A moment bound to a column without a time zone: as naive UTC, what the column holds."""

    impl = sa.DateTime()
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            return value.astimezone(UTC).replace(tzinfo=None)
        return value


def kind(column: sa.ColumnElement[Any], dialect: str) -> str | None:
    """What SQL can compare exactly in ``column``: text, int, float, decimal, ...; None: nothing."""
    t = column.type
    if isinstance(t, sa.Boolean):
        return "bool"
    if isinstance(t, sa.Integer):
        return "int"
    if isinstance(t, sa.Float):
        return None if t.asdecimal else "float"
    if isinstance(t, sa.Numeric):
        return "decimal" if t.asdecimal and dialect == "postgresql" else None
    if isinstance(t, sa.DateTime):
        aware = bool(t.timezone) and dialect == "postgresql"
        return "aware" if aware else "naive"
    if isinstance(t, sa.Date):
        return "day"
    if isinstance(t, sa.String):
        return "text"
    return None


_FITS: dict[FieldType, frozenset[str]] = {
    FieldType.STRING: frozenset({"text"}),
    FieldType.ENUM: frozenset({"text"}),
    FieldType.INTEGER: frozenset({"int", "float", "decimal"}),
    FieldType.DECIMAL: frozenset({"int", "float", "decimal"}),
    FieldType.BOOLEAN: frozenset({"bool"}),
    FieldType.DATETIME: frozenset({"aware", "naive"}),
    FieldType.DATE: frozenset({"day"}),
}


@dataclass(frozen=True)
class HostColumns:
    """The host's client columns, by crmrules field key, as a compiler reads them."""

    columns: Mapping[str, sa.ColumnElement[Any]]
    dialect: str
    schema: str | None = None

    def column(self, key: str, field_type: FieldType) -> tuple[sa.ColumnElement[Any], str] | None:
        """The column of ``key`` and its kind, if SQL can decide leaves of this type on it."""
        column = self.columns.get(key)
        if column is None:
            return None
        found = kind(column, self.dialect)
        if found is None or found not in _FITS.get(field_type, frozenset()):
            return None
        if found == "naive":
            return sa.type_coerce(column, NaiveUTC()), found
        return column, found

    def fold(self, column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        functions: Any = sa.func
        if self.dialect == "postgresql" and self.schema is not None:
            functions = getattr(sa.func, self.schema)
        folded: sa.ColumnElement[Any] = functions.crmrules_casefold(column)
        return folded


class _Columns:
    """What the shared text and moment compilers read: the column as ``text``, ``folded``..."""

    def __init__(self, column: sa.ColumnElement[Any], folded: sa.ColumnElement[Any]) -> None:
        self.text = self.moment = self.day = column
        self.folded = folded


def leaf(
    host: HostColumns,
    node: Leaf,
    *,
    text: Callable[[str, Any, Any, bool], Clause],
    moment: Callable[[Any, str, Any, Any], Clause | None],
) -> Clause | None:
    """The leaf (before negation) over a host column; None: SQL cannot decide it.

    ``text`` and ``moment`` are the shared compilers' (crmrules.rules.sql),
    handed the column in place of a values row.
    """
    spec, op, bound = node.field, node.op, node.value
    found = host.column(spec.key, spec.type)
    if found is None:
        return None
    column, column_kind = found
    present: Clause = column.is_not(None)
    if column_kind == "float" and host.dialect == "postgresql":
        present = sa.and_(present, column != float("nan"))  # NaN compares with nothing
    if op == "is_empty":
        empty = (
            sa.or_(column.is_(None), column == "") if column_kind == "text" else column.is_(None)
        )
        return empty
    if isinstance(bound, FieldRef):
        return _field_ref(host, node, column, column_kind, present)
    test: Clause | None
    if column_kind == "text":
        folded = host.fold(column) if node.ignore_case else column
        if op == "eq":
            test = folded == bound
        elif op == "in":
            test = folded.in_(sorted(bound))
        else:
            test = text(op, bound, _Columns(column, folded), node.ignore_case)
    elif column_kind == "bool":
        test = column == bound if op == "eq" else None
    elif spec.type in NUMBER_TYPES:
        test = _number(op, bound, column, column_kind)
    else:
        test = moment(spec, op, bound, _Columns(column, column))
    return None if test is None else sa.and_(present, test)


def _number(op: str, bound: Any, column: Any, column_kind: str) -> Clause | None:
    if op == "in":
        parts = [_number("eq", item, column, column_kind) for item in sorted(bound)]
        return sa.or_(*parts) if all(p is not None for p in parts) else None  # type: ignore[arg-type]
    if op == "between":
        low = _number("gte", bound[0], column, column_kind)
        high = _number("lte", bound[1], column, column_kind)
        return None if low is None or high is None else sa.and_(low, high)
    if op not in COMPARE_OPS:
        return None
    value = bound if isinstance(bound, Decimal | int) else Decimal(str(bound))
    if column_kind == "decimal":
        return _compare(op, column, sa.literal(Decimal(value), sa.Numeric()))
    if column_kind == "float":
        return _float(op, column, value)
    return _integer(op, column, Decimal(value))


def _compare(op: str, column: Any, value: Any) -> Clause:
    result: Clause
    if op == "lt":
        result = column < value
    elif op == "lte":
        result = column <= value
    elif op == "gt":
        result = column > value
    elif op == "gte":
        result = column >= value
    else:
        result = column == value
    return result


def _integer(op: str, column: Any, value: Decimal) -> Clause:
    """``column op value`` for an integer column: against the integer next to ``value``."""
    up, down = (
        int(value.to_integral_value(ROUND_CEILING)),
        int(value.to_integral_value(ROUND_FLOOR)),
    )
    if op == "eq":
        return column == up if up == down and -INT64 <= up <= INT64 else sa.false()
    target = {"lt": up, "lte": down, "gt": down, "gte": up}[op]
    if target > INT64:
        return sa.true() if op in ("lt", "lte") else sa.false()
    if target < -INT64:
        return sa.false() if op in ("lt", "lte") else sa.true()
    return _compare(op, column, target)


def _float(op: str, column: Any, value: Decimal | int) -> Clause:
    """``column op value`` for a float column: no float lies strictly between value and f(value)."""
    stored, nudge = image(value, "sqlite")  # the nearest float and the sign of value - it
    literal = sa.literal(stored, sa.Float())
    if op == "eq":
        return _compare("eq", column, literal) if nudge == 0 else sa.false()
    widened = op
    if (
        nudge > 0
    ):  # value just above the float: ``< value`` is ``<= float``, ``>= value`` ``> float``
        widened = {"lt": "lte", "lte": "lte", "gt": "gt", "gte": "gt"}[op]
    elif nudge < 0:
        widened = {"lt": "lt", "lte": "lt", "gt": "gte", "gte": "gte"}[op]
    return _compare(widened, column, literal)


def _field_ref(
    host: HostColumns, node: Leaf, column: Any, column_kind: str, present: Clause
) -> Clause | None:
    assert isinstance(node.value, FieldRef)
    other = node.value.spec
    if other.namespace != "client" or other.key in MEMBERSHIP_KEYS:
        return None
    found = host.column(other.key, other.type)
    if found is None:
        return None
    right, right_kind = found
    numbers = {"int", "decimal"} if host.dialect == "postgresql" else {"int"}
    same = right_kind == column_kind or {column_kind, right_kind} <= numbers
    if not same or (node.field.type in TEXT_TYPES) != (other.type in TEXT_TYPES):
        return None
    if column_kind == "float" and host.dialect == "postgresql":
        return None  # NaN sorts above every number there
    left = column
    if node.ignore_case and column_kind == "text":
        left, right = host.fold(column), host.fold(right)
    op = node.op if node.op in COMPARE_OPS else None
    if op is None or (op != "eq" and column_kind in ("text", "bool")):
        return None
    return sa.and_(present, right.is_not(None), _compare(op, left, right))


def casefold_sql(schema: str | None) -> str:
    """``CREATE FUNCTION crmrules_casefold(text)`` for PostgreSQL: Python's ``str.casefold``.

    Case folding maps each character on its own, and no character it
    produces is one it maps, so one ``translate`` (the one-character
    mappings) after a ``replace`` per longer one (ß → ss, ...) is the same
    function. Made from the running Python's Unicode tables.
    """
    sources, targets, longer = [], [], []
    for point in range(1, 0x110000):
        if 0xD800 <= point < 0xE000:
            continue
        char = chr(point)
        folded = char.casefold()
        if folded == char:
            continue
        if len(folded) == 1:
            sources.append(char)
            targets.append(folded)
        else:
            longer.append((char, folded))
    body = "$1"
    for char, folded in longer:
        body = f"replace({body}, {_quoted(char)}, {_quoted(folded)})"
    body = f"translate({body}, {_quoted(''.join(sources))}, {_quoted(''.join(targets))})"
    name = f'"{schema}".{CASEFOLD}' if schema else CASEFOLD
    return (
        f"CREATE OR REPLACE FUNCTION {name}(text) RETURNS text "
        f"LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $fold$ SELECT {body} $fold$"
    )


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


__all__ = ["CASEFOLD", "MEMBERSHIP_KEYS", "HostColumns", "NaiveUTC", "casefold_sql", "kind", "leaf"]
