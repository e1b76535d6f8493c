"""Report periods in the calendar's time zone, and the SQL that puts a moment in one.

A report covers whole local days, ``start`` to ``end`` inclusive: from local
midnight of ``start`` to local midnight after ``end``, as UTC instants. A
moment's local day is computed in SQL from its epoch seconds plus the zone's
UTC offset at that moment; the offset is a ``CASE`` over the zone's
transitions inside the span (none for Europe/Moscow, two a year for
Europe/Berlin), so SQLite, which knows no time zones, and PostgreSQL group
the same rows into the same days. Weeks start on Monday; a period is named
by its first day (the Monday, the 1st of the month), and the first and last
periods may be cut by the span.

Durations are whole seconds: each moment is cut to its second before
subtracting, on every database alike.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

By = Literal["day", "week", "month"]
BY: tuple[By, ...] = ("day", "week", "month")
_EPOCH = date(1970, 1, 1)
_DAY = 86_400


@dataclass(frozen=True)
class Span:
    """What a report covers: local days ``start`` .. ``end`` (inclusive), cut into periods."""

    start: date
    end: date
    by: By = "month"
    zone: tzinfo = field(default=UTC)

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"the report ends ({self.end}) before it starts ({self.start})")
        if self.by not in BY:
            raise ValueError(f"--by must be one of {', '.join(BY)}, not {self.by!r}")

    @property
    def begins(self) -> datetime:
        """The first instant covered (local midnight of ``start``), in UTC."""
        return local_midnight(self.start, self.zone)

    @property
    def ends(self) -> datetime:
        """The first instant after the span (local midnight after ``end``), in UTC."""
        return local_midnight(self.end + timedelta(days=1), self.zone)

    def periods(self) -> list[date]:
        """The first day of each period that meets the span, in order."""
        found: list[date] = []
        day = self.start
        while day <= self.end:
            first = period_of(day, self.by)
            if not found or found[-1] != first:
                found.append(first)
            day += timedelta(days=1)
        return found

    def days(self) -> Iterator[date]:
        day = self.start
        while day <= self.end:
            yield day
            day += timedelta(days=1)


def local_midnight(day: date, zone: tzinfo) -> datetime:
    """The instant a local day begins, in UTC (the first valid local time on a DST gap)."""
    naive = datetime.combine(day, time())
    for minutes in range(0, 24 * 60, 15):  # a gap at midnight: the day starts when it ends
        moment = (naive + timedelta(minutes=minutes)).replace(tzinfo=zone)
        if moment.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == moment.replace(
            tzinfo=None
        ):
            return moment.astimezone(UTC)
    raise ValueError(f"{day} has no local midnight in {zone}")  # pragma: no cover


def period_of(day: date, by: By) -> date:
    """The first day of the period holding ``day``."""
    if by == "week":
        return day - timedelta(days=day.weekday())
    if by == "month":
        return day.replace(day=1)
    return day


def day_number(day: date) -> int:
    return (day - _EPOCH).days


def from_day_number(number: int) -> date:
    return _EPOCH + timedelta(days=number)


def local_day(moment: datetime, zone: tzinfo) -> date:
    """The local day of a moment: what ``local_day_sql`` computes in the database."""
    return moment.astimezone(zone).date()


def seconds(moment: datetime) -> int:
    """A moment as whole epoch seconds (its fraction dropped), as ``epoch_seconds`` in SQL."""
    return int((moment - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() // 1)


# -- SQL


class epoch_seconds(FunctionElement[int]):
    """Whole seconds since 1970-01-01 UTC of a UTC moment column."""

    type = sa.BigInteger()
    inherit_cache = True


@compiles(epoch_seconds, "sqlite")
def _epoch_sqlite(element: epoch_seconds, compiler: SQLCompiler, **kw: Any) -> str:
    # The text up to the second: strftime rounds a fraction to the millisecond first,
    # so 00:00:00.999999 would count as second 1.
    moment = compiler.process(element.clauses, **kw)
    return f"CAST(strftime('%s', substr({moment}, 1, 19)) AS INTEGER)"


@compiles(epoch_seconds, "postgresql")
def _epoch_postgres(element: epoch_seconds, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST(floor(EXTRACT(EPOCH FROM {compiler.process(element.clauses, **kw)})) AS BIGINT)"


@functools.lru_cache(maxsize=64)
def transitions(span: Span) -> tuple[tuple[int, int], ...]:
    """(epoch second from which it holds, UTC offset in seconds) for the zone over the span.

    The first entry holds from the span's start (with a day's margin); each
    next one from a transition, found to the second. The zone is probed a
    day apart (no zone changes its offset twice within a day) and a change
    found is narrowed down by bisection.
    """

    def offset(at: int) -> int:
        moment = datetime.fromtimestamp(at, UTC).astimezone(span.zone)
        delta = moment.utcoffset()
        return int(delta.total_seconds()) if delta is not None else 0

    first, last = seconds(span.begins) - _DAY, seconds(span.ends) + _DAY
    found = [(first, offset(first))]
    step = _DAY
    at = first
    while at < last:
        nxt = min(at + step, last)
        if offset(nxt) != found[-1][1]:
            low, high = at, nxt  # offset(low) is the current one, offset(high) the next
            while high - low > 1:
                middle = (low + high) // 2
                low, high = (middle, high) if offset(middle) == found[-1][1] else (low, middle)
            found.append((high, offset(high)))
        at = nxt
    return tuple(found)


def local_day_sql(column: sa.ColumnElement[Any], span: Span) -> sa.ColumnElement[int]:
    """The local day number (days since 1970-01-01) of a UTC moment column."""
    epoch = epoch_seconds(column)
    steps = transitions(span)
    offset: sa.ColumnElement[int]
    if len(steps) == 1:
        offset = sa.literal(steps[0][1], sa.BigInteger())
    else:
        pairs = itertools.pairwise(steps)
        whens = [(epoch < start, sa.literal(before)) for (_, before), (start, _) in pairs]
        offset = sa.case(*whens, else_=sa.literal(steps[-1][1]))
    return (epoch + offset) // _DAY


def period_sql(column: sa.ColumnElement[Any], span: Span) -> sa.ColumnElement[int]:
    """The day number of the first day of the period a UTC moment column falls in."""
    day = local_day_sql(column, span)
    if span.by == "day":
        return day
    if span.by == "week":  # 1970-01-01 was a Thursday: Monday-based weeks are (day + 3) // 7
        return ((day + 3) // 7) * 7 - 3
    starts = [day_number(p) for p in span.periods()]
    whens = [(day >= start, sa.literal(start)) for start in reversed(starts[1:])]
    return sa.case(*whens, else_=sa.literal(starts[0])) if whens else sa.literal(starts[0])


def in_span(column: sa.ColumnElement[Any], span: Span) -> sa.ColumnElement[bool]:
    return sa.and_(column >= span.begins, column < span.ends)


__all__ = [
    "BY",
    "By",
    "Span",
    "day_number",
    "epoch_seconds",
    "from_day_number",
    "in_span",
    "local_day",
    "local_day_sql",
    "local_midnight",
    "period_of",
    "period_sql",
    "seconds",
    "transitions",
]
