"""Lead conversion by campaign, channel and period, with the cost of a request, contact, sale.

Requests are counted in the period they came in (local time). A request's
row is its campaign's (with the campaign's channel), or, without a campaign,
its own channel's. What became of a request is its fate now (a cohort view:
the March requests, and what they became so far):

- ``requests``: requests that came in;
- ``contacts``: distinct people among them (a client once, however many
  requests; a request from somebody not yet a client counts alone);
- ``converted``: requests that became a deal;
- ``deals_won``, ``clients_won``: distinct deals made from them, and their
  clients, whose last stage move is into a won stage (a deal won and
  reopened is not won);
- ``budget``: the campaign's budget spread evenly over its days, the part of
  the period's days in the report (a campaign row appears in every period,
  requests or none); costs are that budget divided by requests, contacts
  and won deals, to the cent (half to even); rates are plain ratios.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import sqlalchemy as sa

from crmrules.adapters.campaign_tables import list_campaigns
from crmrules.campaigns import Campaign
from crmrules.reports.base import Source
from crmrules.reports.periods import Span, from_day_number, in_span, period_sql

NO_CAMPAIGN = ""
CENT = Decimal("0.01")


@dataclass(frozen=True)
class ConversionRow:
    period: date
    campaign: str
    channel: str
    requests: int
    contacts: int
    converted: int
    deals_won: int
    clients_won: int
    conversion: float | None
    win_rate: float | None
    budget: Decimal | None
    currency: str
    cost_per_request: Decimal | None
    cost_per_contact: Decimal | None
    cost_per_won_deal: Decimal | None


def is_won(src: Source, deal_id: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
    """The deal's last stage move is into a won stage: two lookups on the moves' key."""
    m = src.campaigns.stage_moves
    later = sa.alias(m, "later")
    last = ~sa.exists().where(later.c.deal_id == m.c.deal_id, later.c.seq > m.c.seq)
    return sa.exists().where(m.c.deal_id == deal_id, m.c.won.is_(True), last)


def counts_query(src: Source) -> sa.Select[*tuple[Any, ...]]:
    """The SQL aggregate: one row per (period, campaign, channel) with requests."""
    r, c = src.campaigns.requests, src.campaigns.campaigns
    won = sa.case((sa.and_(r.c.deal_id.is_not(None), is_won(src, r.c.deal_id)), 1), else_=0)
    rows = (
        sa.select(
            period_sql(r.c.created_at, src.span).label("period"),
            r.c.campaign_id,
            sa.func.coalesce(c.c.channel, r.c.channel).label("channel"),
            sa.func.coalesce(r.c.client_id, sa.literal("request:") + r.c.id).label("person"),
            r.c.status,
            r.c.deal_id,
            r.c.client_id,
            won.label("won"),
        )
        .select_from(r)
        .outerjoin(c, c.c.id == r.c.campaign_id)
        .where(in_span(r.c.created_at, src.span), src.for_clients(r.c.client_id))
        .subquery()
    )
    return sa.select(
        rows.c.period,
        rows.c.campaign_id,
        rows.c.channel,
        sa.func.count().label("requests"),
        sa.func.count(sa.distinct(rows.c.person)).label("contacts"),
        sa.func.sum(sa.case((rows.c.status == "converted", 1), else_=0)).label("converted"),
        sa.func.count(sa.distinct(sa.case((rows.c.won == 1, rows.c.deal_id)))).label("deals_won"),
        sa.func.count(sa.distinct(sa.case((rows.c.won == 1, rows.c.client_id)))).label(
            "clients_won"
        ),
    ).group_by(rows.c.period, rows.c.campaign_id, rows.c.channel)


def budget_share(campaign: Campaign, period: date, span: Span) -> Decimal:
    """The campaign's budget for the days of ``period`` inside both the span and the campaign."""
    last = _period_end(period, span)
    first, last = max(period, span.start, campaign.start), min(last, span.end, campaign.end)
    days = (last - first).days + 1
    total = (campaign.end - campaign.start).days + 1
    if days <= 0:
        return Decimal(0).quantize(CENT)
    return (campaign.budget * days / total).quantize(CENT, ROUND_HALF_EVEN)


def _period_end(period: date, span: Span) -> date:
    if span.by == "day":
        return period
    if span.by == "week":
        return period + timedelta(days=6)
    following = (period.replace(day=28) + timedelta(days=4)).replace(day=1)
    return following - timedelta(days=1)


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _cost(budget: Decimal | None, count: int) -> Decimal | None:
    if budget is None or count == 0:
        return None
    return (budget / count).quantize(CENT, ROUND_HALF_EVEN)


def conversion(src: Source) -> list[ConversionRow]:
    """The rows: every period x (every campaign meeting the span, every key with requests)."""
    t = src.campaigns
    known = {c.id: c for c in list_campaigns(src.connection, t, t.campaigns.c.id)}
    meeting = [c for c in known.values() if c.start <= src.span.end and c.end >= src.span.start]
    counted: dict[tuple[date, str, str], tuple[int, ...]] = {}
    for row in src.rows(counts_query(src)):
        key = (from_day_number(row.period), row.campaign_id or NO_CAMPAIGN, row.channel)
        counted[key] = tuple(int(value) for value in list(row)[3:])
    keys = {(c.id, c.channel) for c in meeting}
    keys |= {(campaign, channel) for _, campaign, channel in counted}
    rows = []
    for period in src.span.periods():
        for campaign_id, channel in sorted(keys):
            values = counted.get((period, campaign_id, channel), (0, 0, 0, 0, 0))
            requests, contacts, converted, deals_won, clients_won = values
            campaign = known.get(campaign_id)
            budget = None if campaign is None else budget_share(campaign, period, src.span)
            rows.append(
                ConversionRow(
                    period=period,
                    campaign=campaign_id,
                    channel=channel,
                    requests=requests,
                    contacts=contacts,
                    converted=converted,
                    deals_won=deals_won,
                    clients_won=clients_won,
                    conversion=_ratio(converted, requests),
                    win_rate=_ratio(deals_won, requests),
                    budget=budget,
                    currency="" if campaign is None else campaign.currency,
                    cost_per_request=_cost(budget, requests),
                    cost_per_contact=_cost(budget, contacts),
                    cost_per_won_deal=_cost(budget, deals_won),
                )
            )
    return rows


__all__ = ["NO_CAMPAIGN", "ConversionRow", "budget_share", "conversion", "counts_query", "is_won"]
