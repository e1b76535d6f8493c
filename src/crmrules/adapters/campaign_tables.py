"""The SQL tables of campaigns, requests and stage moves, and the statements on them.

Like the other crmrules tables, each row keeps the whole record as JSON in
``data`` and copies into columns what the reports group and filter by
(crmrules.reports reads only the columns). The tables are on the shared
``metadata`` (migration 0007_campaigns creates them); a store working in a
PostgreSQL schema gets copies of them in that schema.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from crmrules.adapters.json_values import dump as _dump
from crmrules.adapters.json_values import load as _load
from crmrules.adapters.tables import UTCDateTime, metadata
from crmrules.campaigns import Campaign, Request, StageMove

campaigns = sa.Table(
    "crmrules_campaigns",
    metadata,
    sa.Column("id", sa.String(), primary_key=True),
    sa.Column("channel", sa.String(), nullable=False),
    sa.Column("start_day", sa.Date(), nullable=False),
    sa.Column("end_day", sa.Date(), nullable=False),
    sa.Column("data", sa.JSON(), nullable=False),
)
requests = sa.Table(
    "crmrules_requests",
    metadata,
    sa.Column("id", sa.String(), primary_key=True),
    sa.Column("client_id", sa.String(), nullable=True, index=True),
    sa.Column("campaign_id", sa.String(), nullable=True, index=True),
    sa.Column("channel", sa.String(), nullable=False),
    sa.Column("status", sa.String(), nullable=False),
    sa.Column("deal_id", sa.String(), nullable=True, index=True),
    sa.Column("created_at", UTCDateTime(), nullable=False, index=True),
    sa.Column("data", sa.JSON(), nullable=False),
)
request_items = sa.Table(
    "crmrules_request_items",
    metadata,
    sa.Column("request_id", sa.String(), primary_key=True),
    sa.Column("item", sa.String(), primary_key=True, index=True),
)
stage_moves = sa.Table(
    "crmrules_stage_moves",
    metadata,
    sa.Column("deal_id", sa.String(), primary_key=True),
    sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("client_id", sa.String(), nullable=False, index=True),
    sa.Column("pipeline", sa.String(), nullable=False),
    sa.Column("stage", sa.String(), nullable=False),
    sa.Column("position", sa.Integer(), nullable=False),
    sa.Column("final", sa.Boolean(), nullable=False),
    sa.Column("won", sa.Boolean(), nullable=False),
    sa.Column("entered_at", UTCDateTime(), nullable=False, index=True),
)


@dataclass(frozen=True)
class CampaignTables:
    campaigns: sa.Table
    requests: sa.Table
    request_items: sa.Table
    stage_moves: sa.Table


@functools.cache
def tables(schema: str | None) -> CampaignTables:
    """These tables in ``schema`` (the shared Table objects when there is none)."""
    originals = (campaigns, requests, request_items, stage_moves)
    if schema is None:
        return CampaignTables(*originals)
    copy = sa.MetaData(naming_convention=metadata.naming_convention)
    return CampaignTables(*(t.to_metadata(copy, schema=schema) for t in originals))


def _replace(c: sa.Connection, table: sa.Table, key: str, values: dict[str, Any]) -> None:
    updated = c.execute(sa.update(table).where(table.c.id == key).values(**values))
    if updated.rowcount == 0:
        c.execute(sa.insert(table).values(id=key, **values))


def put_campaign(c: sa.Connection, t: CampaignTables, campaign: Campaign) -> None:
    values = {
        "channel": campaign.channel,
        "start_day": campaign.start,
        "end_day": campaign.end,
        "data": _dump(campaign),
    }
    _replace(c, t.campaigns, campaign.id, values)


def get_campaign(c: sa.Connection, t: CampaignTables, campaign_id: str) -> Campaign | None:
    data = c.execute(sa.select(t.campaigns.c.data).where(t.campaigns.c.id == campaign_id))
    found = data.scalar_one_or_none()
    return None if found is None else _load(Campaign, found)


def list_campaigns(
    c: sa.Connection, t: CampaignTables, order: sa.ColumnElement[str]
) -> list[Campaign]:
    rows = c.execute(sa.select(t.campaigns.c.data).order_by(order)).scalars()
    return [_load(Campaign, data) for data in rows]


def put_request(c: sa.Connection, t: CampaignTables, request: Request) -> None:
    if request.channel is None or request.created_at is None:
        # The engine fills both in (create_request); a host writing to the store directly must.
        raise ValueError(f"request {request.id}: a stored request needs its channel and created_at")
    values = {
        "client_id": request.client,
        "campaign_id": request.campaign,
        "channel": request.channel,
        "status": request.status.value,
        "deal_id": request.deal,
        "created_at": request.created_at,
        "data": _dump(request),
    }
    _replace(c, t.requests, request.id, values)
    items = t.request_items
    c.execute(sa.delete(items).where(items.c.request_id == request.id))
    if request.items:
        rows = [{"request_id": request.id, "item": item} for item in sorted(set(request.items))]
        c.execute(sa.insert(items), rows)


def get_request(c: sa.Connection, t: CampaignTables, request_id: str) -> Request | None:
    data = c.execute(sa.select(t.requests.c.data).where(t.requests.c.id == request_id))
    found = data.scalar_one_or_none()
    return None if found is None else _load(Request, found)


def _move_values(move: StageMove) -> dict[str, Any]:
    values = move.model_dump(exclude={"deal", "client"})
    return {**values, "deal_id": move.deal, "client_id": move.client}


def add_stage_move(c: sa.Connection, t: CampaignTables, move: StageMove) -> None:
    m = t.stage_moves
    last = c.execute(sa.select(sa.func.max(m.c.seq)).where(m.c.deal_id == move.deal)).scalar()
    seq = 0 if last is None else last + 1
    c.execute(sa.insert(m).values(**_move_values(move.model_copy(update={"seq": seq}))))


def stage_moves_of(c: sa.Connection, t: CampaignTables, deal_id: str) -> list[StageMove]:
    m = t.stage_moves
    rows = c.execute(sa.select(m).where(m.c.deal_id == deal_id).order_by(m.c.seq)).mappings()
    return [
        StageMove(
            deal=row["deal_id"],
            client=row["client_id"],
            **{k: v for k, v in row.items() if k not in ("deal_id", "client_id")},
        )
        for row in rows
    ]


__all__ = [
    "CampaignTables",
    "add_stage_move",
    "campaigns",
    "get_campaign",
    "get_request",
    "list_campaigns",
    "put_campaign",
    "put_request",
    "request_items",
    "requests",
    "stage_moves",
    "stage_moves_of",
    "tables",
]
