"""What a host reads back from the engine's store, and the records it stores without rules.

Kept apart from the engine, which orchestrates changes: each call here is one
short transaction that reads (or stores a contact) and never runs a rule.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from crmrules.model import Contact, Interaction, Mailing, Task
from crmrules.store import Store

#: One item of a client's history.
HistoryItem = Interaction | Task | Mailing


def _when(item: HistoryItem) -> tuple[bool, datetime | None, str]:
    moment = item.occurred_at if isinstance(item, Interaction) else item.created_at
    return (moment is None, moment, item.id)


class Reading:
    """The Engine's read calls and contact storage (mixed into ``Engine``)."""

    store: Store

    def put_contact(self, contact: Contact) -> None:
        """Store or replace a contact; ``contact:<role>`` mailings find them (no rules run)."""
        with self.store.transaction() as tx:
            tx.put_contact(contact)

    def get_contact(self, contact_id: str) -> Contact | None:
        with self.store.transaction() as tx:
            return tx.get_contact(contact_id)

    def contacts(self, client_id: str | None = None) -> list[Contact]:
        """The contacts with a role in that client (every contact without one), by id."""
        with self.store.transaction() as tx:
            return tx.find_contacts(client=client_id)

    def interactions(
        self,
        client_id: str | None = None,
        *,
        deal: str | None = None,
        manager: str | None = None,
        contact: str | None = None,
    ) -> list[Interaction]:
        """The calls, meetings and e-mails logged (for a client, deal, manager, contact), oldest
        first."""
        with self.store.transaction() as tx:
            return tx.find_interactions(
                client=client_id, deal=deal, manager=manager, contact=contact
            )

    def get_interaction(self, interaction_id: str) -> Interaction | None:
        with self.store.transaction() as tx:
            return tx.get_interaction(interaction_id)

    def mailings(self, *, client: str | None = None) -> list[Mailing]:
        """Mailings made by rules (of one client if given), oldest first."""
        with self.store.transaction() as tx:
            return tx.find_mailings(client=client)

    def tasks(self, **filters: Any) -> list[Task]:
        """Tasks, filtered by field (``client="c1"``, ``status=TaskStatus.OPEN``, ...)."""
        with self.store.transaction() as tx:
            return tx.find_tasks(**filters)

    def history(self, client_id: str) -> list[HistoryItem]:
        """Everything done with a client: interactions, tasks and mailings, in time order."""
        with self.store.transaction() as tx:
            items: list[HistoryItem] = [
                *tx.interactions_of(client_id),
                *tx.find_tasks(client=client_id),
                *tx.find_mailings(client=client_id),
            ]
        return sorted(items, key=_when)


__all__ = ["HistoryItem", "Reading"]
