"""Conditions as SQL: the normalised condition tree compiled to a WHERE clause over clients.

The Python compiler (crmrules.rules.conditions) is the definition; this one
must agree with it. Each leaf compiles to two SQL predicates, ``may`` (true
for every client the leaf is true for) and ``must`` (true only for clients
it is true for). For most leaves they are the same expression: the leaf is
*exact*. A leaf SQL cannot decide (``matches``, plugin operators,
``changed*``, fields of deals, events or managers, comparing two sets) has
``may = true`` and ``must = false``; a number SQL holds only approximately
(a decimal on SQLite) has bounds in between.

``not`` only stands on leaves once the tree is normalised, and a negated
leaf swaps the bounds (``may(not P) = not must(P)``), so the WHERE clause
built from ``may`` is always a superset of the clients the condition takes.
When every leaf is exact it is the answer; otherwise Python decides on the
rows it narrowed to (``Filter.exact`` says which).

Values come from ``crmrules_client_values`` (crmrules.adapters.client_values):
a predicate is ``EXISTS`` over a client's rows, so a missing value (no row)
makes every positive leaf false and every negated one true, as in Python.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from crmrules.adapters.client_values import KEY_LENGTH, image
from crmrules.calendar import BusinessCalendar
from crmrules.rules.conditions import (
    CHANGE_OPS,
    COMPARE_OPS,
    All,
    AnyOf,
    Const,
    DayRange,
    FieldRef,
    Leaf,
    Node,
    Not,
    _threshold,
)
from crmrules.rules.fields import NUMBER_TYPES, FieldSpec, FieldType
from crmrules.rules.sql_host import MEMBERSHIP_KEYS, HostColumns
from crmrules.rules.sql_host import leaf as host_leaf

Clause = sa.ColumnElement[bool]

TRUE: Clause = sa.true()
FALSE: Clause = sa.false()


@dataclass(frozen=True)
class Bounds:
    """``must`` ⊆ the clients a leaf takes ⊆ ``may``; ``exact``: both are the answer."""

    may: Clause
    must: Clause
    exact: bool

    @staticmethod
    def of(clause: Clause) -> Bounds:
        return Bounds(clause, clause, True)


UNKNOWN = Bounds(TRUE, FALSE, False)


@dataclass(frozen=True)
class Filter:
    """A WHERE clause that takes at least the clients a condition takes.

    ``exact``: it takes exactly those; else Python must decide on its rows.
    ``decided_in_python`` lists the leaves that made it inexact, for explanations.
    """

    where: Clause
    exact: bool
    decided_in_python: tuple[Leaf, ...] = ()


@dataclass
class _Compiler:
    values: sa.Table
    client_id: sa.ColumnElement[str]
    calendar: BusinessCalendar
    now: datetime
    dialect: str
    inexact: list[Leaf]
    host: HostColumns | None = None
    per_client: bool = False

    # -- the tree

    def node(self, node: Node) -> Bounds:
        if isinstance(node, Const):
            return Bounds.of(TRUE if node.value else FALSE)
        if isinstance(node, Leaf):
            bounds = self.leaf(node)
            if not bounds.exact:
                self.inexact.append(node)
            if node.negated:
                return Bounds(sa.not_(bounds.must), sa.not_(bounds.may), bounds.exact)
            return bounds
        if isinstance(node, Not):  # only before normalisation
            inner = self.node(node.item)
            return Bounds(sa.not_(inner.must), sa.not_(inner.may), inner.exact)
        parts = [self.node(item) for item in node.items]
        combine = sa.and_ if isinstance(node, All) else sa.or_
        assert isinstance(node, All | AnyOf)
        exact = all(p.exact for p in parts)
        may = combine(*(p.may for p in parts))
        return Bounds(may, may if exact else combine(*(p.must for p in parts)), exact)

    # -- rows

    def _exists(self, *where: Clause, source: Any = None) -> Clause:
        """EXISTS a row for which ``where`` holds (``per_client``: see ``compile_filter``)."""
        if not self.per_client:
            found = sa.exists() if source is None else sa.exists().select_from(source)
            return found.where(*where)
        query = sa.select(sa.literal(1))
        if source is not None:
            query = query.select_from(source)
        return query.where(*where).offset(0).exists()

    def _row(self, spec: FieldSpec, *, element: bool = False) -> Any:
        row = self.values.alias()
        seq = row.c.seq > 0 if element else row.c.seq == 0
        return row, [row.c.client_id == self.client_id, row.c.key == spec.key, seq]

    def exists(
        self, spec: FieldSpec, test: Callable[[Any], Bounds], *, element: bool = False
    ) -> Bounds:
        """EXISTS a row of ``spec`` (its value, or one of its elements) for which ``test`` holds."""
        row, where = self._row(spec, element=element)
        bounds = test(row.c)
        may = self._exists(*where, bounds.may)
        if bounds.exact:
            return Bounds.of(may)
        return Bounds(may, self._exists(*where, bounds.must), False)

    # -- leaves

    def leaf(self, leaf: Leaf) -> Bounds:
        spec, op = leaf.field, leaf.op
        if (
            spec.namespace != "client"
            or leaf.plugin is not None
            or op == "matches"
            or op in CHANGE_OPS
        ):
            return UNKNOWN
        if self.host is not None and spec.key not in MEMBERSHIP_KEYS:
            clause = host_leaf(self.host, leaf, text=self.text, moment=self._moment_clause)
            return UNKNOWN if clause is None else Bounds.of(clause)
        if op == "is_empty":
            row, where = self._row(spec)
            return Bounds.of(sa.not_(self._exists(*where, row.c.blank == sa.false())))
        if isinstance(leaf.value, FieldRef):
            return self.field_ref(leaf, leaf.value.spec)
        if spec.type is FieldType.SET:
            return self.set_leaf(leaf)
        return self.exists(spec, lambda c: self.scalar(leaf, c))

    def text_eq(self, c: Any, value: str, folded: bool) -> Clause:
        column, key = (c.folded, c.folded_key) if folded else (c.text, c.text_key)
        return sa.and_(key == value[:KEY_LENGTH], column == value)

    def text_in(self, c: Any, values: frozenset[str], folded: bool) -> Clause:
        column, key = (c.folded, c.folded_key) if folded else (c.text, c.text_key)
        ordered = sorted(values)
        return sa.and_(key.in_(sorted({v[:KEY_LENGTH] for v in ordered})), column.in_(ordered))

    def set_leaf(self, leaf: Leaf) -> Bounds:
        spec, op, bound, folded = leaf.field, leaf.op, leaf.value, leaf.ignore_case
        if op == "contains":
            return self.exists(
                spec, lambda c: Bounds.of(self.text_eq(c, bound, folded)), element=True
            )
        if op in ("contains_any", "territory"):
            return self.exists(
                spec, lambda c: Bounds.of(self.text_in(c, bound, folded)), element=True
            )
        if op == "contains_all":
            return Bounds.of(sa.and_(*(self._has(spec, item, folded) for item in sorted(bound))))
        if op == "eq":
            # A host-kept client without membership rows has no territories: an empty set.
            present = Bounds.of(TRUE) if self.host else self.exists(spec, lambda c: Bounds.of(TRUE))
            has = [self._has(spec, item, folded) for item in sorted(bound)]
            row, where = self._row(spec, element=True)
            outside = sa.not_(self.text_in(row.c, bound, folded)) if bound else TRUE
            extra = sa.not_(self._exists(*where, outside))
            return Bounds.of(sa.and_(present.may, *has, extra))
        return UNKNOWN

    def _has(self, spec: FieldSpec, item: str, folded: bool) -> Clause:
        return self.exists(
            spec, lambda c: Bounds.of(self.text_eq(c, item, folded)), element=True
        ).may

    def scalar(self, leaf: Leaf, c: Any) -> Bounds:
        spec, op, bound = leaf.field, leaf.op, leaf.value
        kind = spec.type
        if kind in (FieldType.STRING, FieldType.ENUM):
            return Bounds.of(self.text(op, bound, c, leaf.ignore_case))
        if kind is FieldType.BOOLEAN:
            return Bounds.of(c.flag == bound) if op == "eq" else UNKNOWN
        if kind in NUMBER_TYPES:
            return self.number(op, bound, c)
        return self.moment(spec, op, bound, c)

    def text(self, op: str, bound: Any, c: Any, folded: bool) -> Clause:
        column: sa.ColumnElement[Any] = c.folded if folded else c.text
        if op == "eq":
            return self.text_eq(c, bound, folded)
        if op == "in":
            return self.text_in(c, bound, folded)
        if op == "contains":
            if self.dialect == "postgresql":
                return sa.func.strpos(column, bound) > 0
            return sa.func.instr(column, bound) > 0
        if not bound:  # every text starts and ends with ""
            return column.is_not(None)
        clause: Clause
        if op == "starts_with":
            clause = sa.func.substr(column, 1, len(bound)) == bound
        elif self.dialect == "postgresql":
            clause = sa.func.right(column, len(bound)) == bound
        else:
            clause = sa.func.substr(column, -len(bound)) == bound
        return clause

    # numbers: ``number`` holds f(v), monotone, and ``nudge`` the sign of v - f(v)

    def number(self, op: str, bound: Any, c: Any) -> Bounds:
        if op == "in":
            parts = [self.number("eq", item, c) for item in sorted(bound)]
            exact = all(p.exact for p in parts)
            may = sa.or_(*(p.may for p in parts))
            return Bounds(may, may if exact else sa.or_(*(p.must for p in parts)), exact)
        if op == "between":
            low, high = bound
            return _both(self.number("gte", low, c), self.number("lte", high, c))
        if op not in COMPARE_OPS:
            return UNKNOWN
        stored, nudge = image(_number(bound), self.dialect)
        return compare_numbers(op, c.number, c.nudge, sa.literal(stored, c.number.type), nudge)

    # moments and days

    def moment(self, spec: FieldSpec, op: str, bound: Any, c: Any) -> Bounds:
        column = c.day if spec.type is FieldType.DATE else c.moment
        if op in ("older_than", "newer_than"):
            threshold = _threshold(self.calendar, spec, self.now, bound)
            return Bounds.of(column < threshold if op == "older_than" else column > threshold)
        if op == "before":
            start = bound.start if isinstance(bound, DayRange) else bound
            return Bounds.of(column < start)
        if op == "after":
            if isinstance(bound, DayRange):
                return Bounds.of(column >= bound.end)
            return Bounds.of(column > bound)
        if op == "between":
            low, high = bound
            return Bounds.of(sa.and_(_ordered("gte", column, low), _ordered("lte", column, high)))
        if op in COMPARE_OPS:
            return Bounds.of(_ordered(op, column, bound))
        return UNKNOWN

    def _moment_clause(self, spec: FieldSpec, op: str, bound: Any, c: Any) -> Clause | None:
        bounds = self.moment(spec, op, bound, c)
        return bounds.may if bounds.exact else None

    # two fields

    def field_ref(self, leaf: Leaf, other: FieldSpec) -> Bounds:
        spec, op = leaf.field, leaf.op
        if other.namespace != "client" or FieldType.SET in (spec.type, other.type):
            return UNKNOWN
        left, left_where = self._row(spec)
        right, right_where = self._row(other)
        a, b = left.c, right.c
        if spec.type in NUMBER_TYPES:
            bounds = compare_numbers(op, a.number, a.nudge, b.number, b.nudge)
        elif spec.type in (FieldType.STRING, FieldType.ENUM):
            column = "folded" if leaf.ignore_case else "text"
            bounds = Bounds.of(a[column] == b[column])
        elif spec.type is FieldType.BOOLEAN:
            bounds = Bounds.of(a.flag == b.flag)
        else:
            column = "day" if spec.type is FieldType.DATE else "moment"
            bounds = Bounds.of(_ordered(op, a[column], b[column]))
        where = [*left_where, *right_where]
        may = self._exists(*where, bounds.may, source=left)
        if bounds.exact:
            return Bounds.of(may)
        return Bounds(may, self._exists(*where, bounds.must, source=left), False)


def _number(value: Any) -> Decimal | int:
    return value if isinstance(value, Decimal | int) else Decimal(str(value))


def _both(first: Bounds, second: Bounds) -> Bounds:
    exact = first.exact and second.exact
    may = sa.and_(first.may, second.may)
    return Bounds(may, may if exact else sa.and_(first.must, second.must), exact)


def compare_numbers(op: str, a: Any, na: Any, b: Any, nb: Any) -> Bounds:
    """``x op y`` from images ``a = f(x)``, ``b = f(y)`` and nudges ``na``, ``nb``.

    ``f`` is monotone, so ``a < b`` means ``x < y``; when ``a = b`` the nudges
    decide, unless both point the same way from the same image. Exact when
    ``nb`` is a literal 0 (a literal the column holds exactly).
    """
    if op in ("gt", "gte"):
        flipped = compare_numbers("lt" if op == "gt" else "lte", b, nb, a, na)
        exact = isinstance(nb, int) and nb == 0
        return Bounds(flipped.may, flipped.must, exact)
    exact = isinstance(nb, int) and nb == 0
    na, nb = _sql(na), _sql(nb)
    same = a == b
    if op == "eq":
        must = sa.and_(same, na == 0) if exact else sa.and_(same, na == 0, nb == 0)
        may = sa.and_(same, na == nb)
        return Bounds(must, must, True) if exact else Bounds(may, must, False)
    below = a < b
    if op == "lt":
        must = sa.or_(below, sa.and_(same, na < nb))
        may = sa.or_(below, sa.and_(same, sa.or_(na < nb, sa.and_(na == nb, na != 0))))
    else:  # lte
        must = sa.or_(below, sa.and_(same, sa.or_(na < nb, sa.and_(na == 0, nb == 0))))
        may = sa.or_(below, sa.and_(same, na <= nb))
    return Bounds(must, must, True) if exact else Bounds(may, must, False)


def _sql(value: Any) -> Any:
    """A nudge as SQL: a literal int becomes a bound parameter."""
    return sa.literal(value) if isinstance(value, int) else value


_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "lt": operator.lt,
    "lte": operator.le,
    "gt": operator.gt,
    "gte": operator.ge,
    "eq": operator.eq,
}


def _ordered(op: str, column: sa.ColumnElement[Any], bound: Any) -> Clause:
    """``column op bound`` where a DayRange bound stands for a whole day (as in Python)."""
    if isinstance(bound, DayRange):
        if op == "lt":
            return column < bound.start
        if op == "lte":
            return column < bound.end
        if op == "gt":
            return column >= bound.end
        if op == "gte":
            return column >= bound.start
        return sa.and_(column >= bound.start, column < bound.end)
    result: Clause = _COMPARE[op](column, bound)
    return result


def compile_filter(
    tree: Node,
    *,
    values: sa.Table,
    client_id: sa.ColumnElement[str],
    calendar: BusinessCalendar,
    now: datetime,
    dialect: str,
    host: HostColumns | None = None,
    per_client: bool = False,
) -> Filter:
    """The WHERE clause for ``tree`` over the clients whose id is ``client_id``.

    ``now`` is the one moment ``older_than`` / ``newer_than`` count from.
    ``host``: the clients are a host's own rows, their fields its columns
    (crmrules.rules.sql_host); only territories and segments come from ``values``.
    ``per_client``: the clause is evaluated for a few known clients (a chunk of
    ids, in the select list), so each EXISTS must stay a lookup of the client's
    own rows. PostgreSQL otherwise turns it into a hash of every matching row of
    the base (every client of a region, once per territory: 20 s a chunk of a
    million-client base instead of milliseconds); ``OFFSET 0`` keeps it from that.
    """
    inexact: list[Leaf] = []
    compiler = _Compiler(values, client_id, calendar, now, dialect, inexact, host, per_client)
    bounds = compiler.node(tree)
    return Filter(bounds.may, bounds.exact, tuple(inexact))


__all__ = ["Bounds", "Filter", "compare_numbers", "compile_filter"]
