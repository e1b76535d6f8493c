"""One client on one page: what a manager opens before a call.

``client_summary`` reads, in one transaction, the client's fields, its
contacts with their roles in every organisation they work in, its deals and
their stages, open tasks, the last interactions, mailings, territories,
segments and the timers still waiting for it or its deals. ``to_dict`` is
the JSON that ``crmrules client ID --json`` prints; ``lines`` the text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from crmrules.errors import RefusedError
from crmrules.model import Client, Contact, Deal, Interaction, Mailing, Task, TaskStatus
from crmrules.rules.regulation import Regulation
from crmrules.store import Timer, TimerStatus, Transaction

#: How many of the latest interactions and mailings a summary shows.
LAST = 10


@dataclass(frozen=True)
class DealLine:
    deal: Deal
    stage_name: str | None
    final: bool


@dataclass(frozen=True)
class ClientSummary:
    """Everything about one client; lists newest first where time matters."""

    client: Client
    contacts: list[Contact] = field(default_factory=list)
    deals: list[DealLine] = field(default_factory=list)
    open_tasks: list[Task] = field(default_factory=list)
    interactions: list[Interaction] = field(default_factory=list)
    mailings: list[Mailing] = field(default_factory=list)
    timers: list[Timer] = field(default_factory=list)

    @property
    def territories(self) -> list[str]:
        return sorted(self.client.territories)

    @property
    def segments(self) -> list[str]:
        return sorted(self.client.segments)

    def to_dict(self) -> dict[str, Any]:
        def dump(record: BaseModel) -> dict[str, Any]:
            return record.model_dump(mode="json", by_alias=True)

        return {
            "client": dump(self.client),
            "territories": self.territories,
            "segments": self.segments,
            "contacts": [dump(c) for c in self.contacts],
            "deals": [
                {**dump(d.deal), "stage_name": d.stage_name, "final": d.final} for d in self.deals
            ],
            "open_tasks": [dump(t) for t in self.open_tasks],
            "interactions": [dump(i) for i in self.interactions],
            "mailings": [dump(m) for m in self.mailings],
            "timers": [dump(t) for t in self.timers],
        }

    def lines(self) -> list[str]:
        """The summary as text, a section per kind of record."""
        c = self.client
        out = [f"client {c.id}: {c.name or '(no name)'} ({c.kind})"]
        values = {k: v for k, v in sorted(c.record().items()) if _shown(k, v)}
        out += [f"  {key}: {_text(value)}" for key, value in values.items()]
        out.append(f"territories: {', '.join(self.territories) or 'none'}")
        out.append(f"segments: {', '.join(self.segments) or 'none'}")
        out.append(f"contacts ({len(self.contacts)}):")
        for contact in self.contacts:
            roles = "; ".join(
                f"{r.role} at {r.client}" + (" (primary)" if r.primary else "")
                for r in contact.roles
            )
            out.append(f"  {contact.id} {contact.name}: {roles or 'no roles'}")
        out.append(f"deals ({len(self.deals)}):")
        for line in self.deals:
            d = line.deal
            entered = d.stage_entered_at.isoformat() if d.stage_entered_at else "?"
            amount = f", amount {d.amount}" if d.amount is not None else ""
            out.append(f"  {d.id} {d.pipeline}: {d.stage} since {entered}{amount}")
        out.append(f"open tasks ({len(self.open_tasks)}):")
        for task in self.open_tasks:
            due = f" due {task.due.isoformat()}" if task.due else ""
            out.append(f"  {task.id} {task.title!r} for {task.assignee or 'nobody'}{due}")
        out.append(f"last interactions ({len(self.interactions)}):")
        for i in self.interactions:
            outcome = f": {i.outcome}" if i.outcome else ""
            out.append(f"  {i.occurred_at.isoformat()} {i.kind} {i.direction}{outcome}")
        out.append(f"mailings ({len(self.mailings)}):")
        for m in self.mailings:
            out.append(f"  {m.id} {m.template} to {m.to}: {m.status.value}")
        out.append(f"pending timers ({len(self.timers)}):")
        for t in self.timers:
            out.append(f"  {t.due_at.isoformat()} {t.kind} {t.rule or ''}".rstrip())
        return out


def _shown(key: str, value: Any) -> bool:
    return key not in ("id", "name", "kind", "territories", "segments") and value not in (
        None,
        "",
        frozenset(),
    )


def _text(value: Any) -> str:
    if isinstance(value, frozenset):
        return ", ".join(sorted(value))
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def client_summary(
    tx: Transaction,
    regulation: Regulation | None,
    client_id: str,
    *,
    visible: Callable[[str], bool] = lambda _: True,
    last: int = LAST,
) -> ClientSummary:
    """The summary of ``client_id``; ``visible`` hides contacts' roles in other clients.

    Without a ``regulation`` the stages have no names and none counts as final.
    """
    client = tx.get_client(client_id)
    if client is None:
        raise RefusedError(f"no client {client_id!r}")
    contacts = []
    for contact in tx.contacts_of(client_id):
        roles = [r for r in contact.roles if r.client == client_id or visible(r.client)]
        contacts.append(contact.model_copy(update={"roles": roles}))
    deals = []
    timers = tx.find_timers(client=client_id, status=TimerStatus.PENDING)
    for deal in tx.deals_of(client_id):
        pipeline = regulation.pipelines.get(deal.pipeline) if regulation else None
        stage = pipeline.stage(deal.stage) if pipeline else None
        deals.append(DealLine(deal, stage.name if stage else None, bool(stage and stage.final)))
        timers += tx.find_timers(deal=deal.id, status=TimerStatus.PENDING)
    unique = {t.key: t for t in timers}
    return ClientSummary(
        client=client,
        contacts=contacts,
        deals=deals,
        open_tasks=tx.find_tasks(client=client_id, status=TaskStatus.OPEN),
        interactions=tx.interactions_of(client_id)[::-1][:last],
        mailings=tx.find_mailings(client=client_id)[::-1][:last],
        timers=sorted(unique.values(), key=lambda t: (t.due_at, t.key)),
    )


__all__ = ["LAST", "ClientSummary", "DealLine", "client_summary"]
