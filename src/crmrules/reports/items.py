"""Demand by catalogue item and period: what requests asked about.

A request naming three items counts once for each. ``converted`` counts the
requests that became a deal; ``contacts`` the distinct people asking (as in
the conversion report). Every catalogue item of the regulation given gets a
row in every period, asked about or not, and so does any item found in the
requests.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa

from crmrules.reports.base import Source
from crmrules.reports.periods import from_day_number, in_span, period_sql


@dataclass(frozen=True)
class DemandRow:
    period: date
    item: str
    requests: int
    contacts: int
    converted: int
    share: float | None  # of the period's requests that named an item


def counts_query(src: Source) -> sa.Select[*tuple[Any, ...]]:
    r, i = src.campaigns.requests, src.campaigns.request_items
    period = period_sql(r.c.created_at, src.span).label("period")
    person = sa.func.coalesce(r.c.client_id, sa.literal("request:") + r.c.id)
    return (
        sa.select(
            period,
            i.c.item,
            sa.func.count().label("requests"),
            sa.func.count(sa.distinct(person)).label("contacts"),
            sa.func.sum(sa.case((r.c.status == "converted", 1), else_=0)).label("converted"),
        )
        .select_from(i)
        .join(r, r.c.id == i.c.request_id)
        .where(in_span(r.c.created_at, src.span), src.for_clients(r.c.client_id))
        .group_by(period, i.c.item)
    )


def totals_query(src: Source) -> sa.Select[*tuple[Any, ...]]:
    """Requests per period that named at least one item."""
    r, i = src.campaigns.requests, src.campaigns.request_items
    period = period_sql(r.c.created_at, src.span).label("period")
    named = sa.exists().where(i.c.request_id == r.c.id)
    return (
        sa.select(period, sa.func.count().label("requests"))
        .where(in_span(r.c.created_at, src.span), src.for_clients(r.c.client_id), named)
        .group_by(period)
    )


def demand(src: Source, catalogue: Iterable[str] = ()) -> list[DemandRow]:
    counted = {
        (from_day_number(row.period), row.item): (int(row[2]), int(row[3]), int(row[4]))
        for row in src.rows(counts_query(src))
    }
    totals = {from_day_number(row.period): int(row[1]) for row in src.rows(totals_query(src))}
    items = list(dict.fromkeys([*catalogue, *sorted({item for _, item in counted})]))
    rows = []
    for period in src.span.periods():
        for item in items:
            requests, contacts, converted = counted.get((period, item), (0, 0, 0))
            total = totals.get(period, 0)
            rows.append(
                DemandRow(
                    period, item, requests, contacts, converted, requests / total if total else None
                )
            )
    return rows


__all__ = ["DemandRow", "counts_query", "demand", "totals_query"]
