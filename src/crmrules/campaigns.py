"""Campaigns, inbound requests and the history of stage moves: what the reports count.

A ``Campaign`` is a marketing effort with a channel, a budget and dates. A
``Request`` is an inbound inquiry, from a client or from somebody who is not
one yet, about items of the regulation's catalogue; it ends as a deal
(``convert_request``) or a refusal with a reason (``refuse_request``). Each
stage a deal enters is kept as a ``StageMove``, so time in stage and reopened
deals can be counted later. The host calls are the engine's
``create_campaign``, ``create_request``, ``convert_request`` and
``refuse_request``, which delegate here.
"""

from __future__ import annotations

import difflib
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AwareDatetime, Field, StringConstraints, model_validator

from crmrules.errors import RecordError, RefusedError
from crmrules.model import Deal, Model, Pipeline, RecordId

if TYPE_CHECKING:
    from crmrules.engine import Engine
    from crmrules.result import Result
    from crmrules.run import Run

Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]


class Campaign(Model):
    """A marketing campaign: its channel, budget and dates (both days included)."""

    id: RecordId
    name: str = ""
    channel: RecordId = Field(description="e.g. exhibition, search_ads, mailing")
    budget: Decimal = Field(Decimal(0), ge=0, allow_inf_nan=False)
    currency: Currency = "RUB"
    start: date
    end: date

    @model_validator(mode="after")
    def _dates_in_order(self) -> Campaign:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self


class RequestStatus(StrEnum):
    """An open request, one that became a deal, or one refused (with a reason)."""

    OPEN = "open"
    CONVERTED = "converted"
    REFUSED = "refused"


class Request(Model):
    """An inbound inquiry; ``client`` is None for somebody who is not a client yet."""

    id: RecordId
    channel: RecordId | None = Field(None, description="how it came; default: the campaign's")
    campaign: RecordId | None = None
    client: RecordId | None = None
    name: str = Field("", description="who asked, while they are not a client")
    items: tuple[RecordId, ...] = Field((), description="catalogue items asked about")
    note: str | None = None
    created_at: AwareDatetime | None = None
    status: RequestStatus = RequestStatus.OPEN
    deal: RecordId | None = None
    reason: str | None = Field(None, description="why it was refused")
    closed_at: AwareDatetime | None = None


class StageMove(Model):
    """A deal entering a stage; ``seq`` counts a deal's moves from 0 (given by the store)."""

    deal: RecordId
    seq: int = Field(0, ge=0)
    client: RecordId
    pipeline: RecordId
    stage: RecordId
    position: int = Field(ge=0, description="the stage's place in its pipeline, from 0")
    final: bool = False
    won: bool = False
    entered_at: AwareDatetime


def stage_move(deal: Deal, pipeline: Pipeline, at: datetime) -> StageMove:
    """The move a deal made into its current stage at ``at``."""
    ids = [s.id for s in pipeline.stages]
    stage = pipeline.stage(deal.stage)
    return StageMove(
        deal=deal.id,
        client=deal.client,
        pipeline=pipeline.id,
        stage=deal.stage,
        position=ids.index(deal.stage) if deal.stage in ids else len(ids),
        final=bool(stage and stage.final),
        won=bool(stage and stage.won),
        entered_at=at,
    )


# -- host calls (the engine's methods delegate here)


def _unknown(record: str, field: str, what: str, value: str, known: list[str]) -> RecordError:
    close = difflib.get_close_matches(value, known, n=1)
    hint = f" (did you mean {close[0]}?)" if close else f"; known: {', '.join(known) or 'none'}"
    return RecordError(record, field, f"unknown {what} {value!r}{hint}")


def create_campaign(engine: Engine, campaign: Campaign) -> None:
    """Store a new campaign, or replace one (its budget or dates changed); raises no event."""
    with engine.store.transaction() as tx:
        tx.put_campaign(campaign)


def create_request(engine: Engine, request: Request, *, event_id: str | None = None) -> Result:
    """Record an inbound request and raise ``request.created``; items must be in the catalogue."""
    record = f"request {request.id}"
    catalogue = engine.regulation.catalogue
    for index, item in enumerate(request.items):
        if item not in catalogue:
            raise _unknown(record, f"items[{index}]", "catalogue item", item, list(catalogue.items))
    if request.status is not RequestStatus.OPEN:
        raise RecordError(record, "status", "a new request is open; convert or refuse it later")

    def change(run: Run) -> None:
        if run.tx.get_request(request.id) is not None:
            raise RefusedError(f"request {request.id} already exists")
        channel = request.channel
        if request.campaign is not None:
            campaign = run.tx.get_campaign(request.campaign)
            if campaign is None:
                known = [c.id for c in run.tx.list_campaigns()]
                raise _unknown(record, "campaign", "campaign", request.campaign, known)
            channel = channel or campaign.channel
        if channel is None:
            raise RecordError(record, "channel", "give the channel, or a campaign that has one")
        if request.client is not None and run.tx.get_client(request.client) is None:
            raise RefusedError(f"{record}: no client {request.client!r}")
        stored = request.model_copy(
            update={"channel": channel, "created_at": request.created_at or run.now}
        )
        run.tx.put_request(stored)
        data = _event_data(stored)
        run.raise_event(None, 0, "request.created", client=stored.client, deal=None, data=data)

    return engine._host_change(event_id, (request.client, None), change)


def _event_data(request: Request) -> dict[str, Any]:
    return {
        "request": request.id,
        "channel": request.channel,
        "campaign": request.campaign or "",
        "items": frozenset(request.items),
    }


def _open_request(run: Run, request_id: str) -> Request:
    request = run.tx.get_request(request_id)
    if request is None:
        raise RefusedError(f"no request {request_id!r}")
    if request.status is not RequestStatus.OPEN:
        raise RefusedError(f"request {request_id} is already {request.status.value}")
    return request


def convert_request(
    engine: Engine, request_id: str, deal_id: str, *, event_id: str | None = None
) -> Result:
    """The request became ``deal_id``: both point at each other; ``request.converted`` raised.

    The deal and its client take the request's campaign (and the request)
    where they have none yet; a request from a not-yet-client takes the
    deal's client.
    """

    def change(run: Run) -> None:
        request = _open_request(run, request_id)
        deal = run.tx.get_deal(deal_id)
        if deal is None:
            raise RefusedError(f"request {request_id}: no deal {deal_id!r}")
        if request.client is not None and deal.client != request.client:
            raise RefusedError(
                f"request {request_id} is from client {request.client}, "
                f"but deal {deal_id} belongs to {deal.client}"
            )
        converted = request.model_copy(
            update={
                "status": RequestStatus.CONVERTED,
                "deal": deal.id,
                "client": deal.client,
                "closed_at": run.now,
            }
        )
        run.tx.put_request(converted)
        if deal.request is None or deal.campaign is None:
            linked = deal.model_copy(
                update={
                    "request": deal.request or request.id,
                    "campaign": deal.campaign or request.campaign,
                }
            )
            run.store_deal(linked, deal, None, 0)
        client = run.tx.get_client(deal.client)
        if client is not None and (client.request is None or client.campaign is None):
            linked_client = client.model_copy(
                update={
                    "request": client.request or request.id,
                    "campaign": client.campaign or request.campaign,
                }
            )
            run.store_client(linked_client, client, None, 0)
        data = {**_event_data(converted), "deal": deal.id}
        run.raise_event(None, 0, "request.converted", client=deal.client, deal=deal.id, data=data)

    return engine._host_change(event_id, (None, deal_id), change)


def refuse_request(
    engine: Engine, request_id: str, reason: str, *, event_id: str | None = None
) -> Result:
    """Close a request without a deal; the reason is kept for the reader of reports."""
    if not isinstance(reason, str) or not reason.strip():
        raise RecordError(f"request {request_id}", "reason", "say why the request was refused")

    def change(run: Run) -> None:
        request = _open_request(run, request_id)
        refused = request.model_copy(
            update={"status": RequestStatus.REFUSED, "reason": reason, "closed_at": run.now}
        )
        run.tx.put_request(refused)

    return engine._host_change(event_id, (None, None), change)


__all__ = [
    "Campaign",
    "Request",
    "RequestStatus",
    "StageMove",
    "convert_request",
    "create_campaign",
    "create_request",
    "refuse_request",
    "stage_move",
]
