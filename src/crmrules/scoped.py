"""``Engine.scoped(manager)``: the engine as one manager may use it.

Reads return only the records of the clients the manager's directions take
(crmrules.access), filtered in the SQL on the SQL store; a record outside
reads as absent (``None``, or missing from a list). Writes naming a record
outside are refused with ``OutOfScopeError`` before anything changes; a
client the manager creates must fall in their directions. Whether a record
is in scope is decided as it is before the write: a manager may move a
client out of their own directions (then they stop seeing it). Rules run
with the whole regulation's reach, as always: their effects are not the
manager's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from crmrules import reports, selection
from crmrules.access import OutOfScopeError, Scope
from crmrules.adapters.sqlalchemy import SQLAlchemyTransaction
from crmrules.errors import RefusedError
from crmrules.explaining import Explanation
from crmrules.history import HistoryEntry
from crmrules.host_input import host_id
from crmrules.model import Client, Contact, Deal, Event, Interaction, Mailing, Task, TaskStatus
from crmrules.occurrences import OccurrenceExplanation
from crmrules.reading import HistoryItem
from crmrules.reports import Report, ReportError
from crmrules.reports.periods import Span
from crmrules.result import Result
from crmrules.rules.conditions import All, Facts
from crmrules.rules.territories import recompute
from crmrules.store import Transaction
from crmrules.summary import ClientSummary, client_summary

if TYPE_CHECKING:
    from crmrules.engine import Engine


class ScopedView:
    """The engine's reads and host writes, limited to one manager's directions."""

    def __init__(self, engine: Engine, manager_id: str) -> None:
        self.engine = engine
        with engine.store.transaction() as tx:
            manager = tx.get_manager(manager_id) or engine.regulation.managers.get(manager_id)
        if manager is None:
            raise RefusedError(f"no manager {manager_id!r} to scope to")
        self.manager = manager
        #: the mechanism every scoped read applies (see crmrules.access)
        self.scope = Scope.of(engine.regulation, manager)

    # -- the scope at one moment

    def _now(self) -> datetime:
        return self.engine.clock.now()

    def _sql(self, tx: Transaction) -> SQLAlchemyTransaction | None:
        return tx if isinstance(tx, SQLAlchemyTransaction) and tx.indexes_clients else None

    def _client(self, tx: Transaction, client_id: str | None, now: datetime) -> Client | None:
        client = tx.get_client(client_id) if client_id is not None else None
        return client if self.scope.allows(client, now) else None

    def _listed(
        self,
        tx: Transaction,
        model: type[Any],
        table: str,
        column: str,
        given: Mapping[str, object],
        order: tuple[str, ...],
        fallback: Callable[[], list[Any]],
    ) -> list[Any]:
        """Rows of ``table`` in scope by SQL (``fallback()`` filtered in Python elsewhere).

        ``given`` filters by column, or by a key of the JSON ``data`` as ``data.<key>``.
        """
        now = self._now()
        sql = self._sql(tx)
        if sql is None:
            return self.scope.keep(tx, fallback(), lambda r: r.client, now)
        t = getattr(sql.tables, table)
        within, exact = self.scope.within(sql, t.c[column], now)
        query = sa.select(t.c.data).where(within)
        for name, value in given.items():
            if value is not None:
                key = name.removeprefix("data.")
                by: sa.ColumnElement[Any] = t.c.data[key].as_string() if key != name else t.c[name]
                query = query.where(by == value)
        ordering = [sql.ordered_id(t.c.id) if name == "id" else t.c[name] for name in order]
        rows = sql.load_rows(model, query.order_by(*ordering))
        return self.scope.keep(tx, rows, lambda r: r.client, now, decided=exact)

    # -- clients

    def get_client(self, client_id: str) -> Client | None:
        """The client, or None when it does not exist or is outside the directions."""
        with self.engine.store.transaction() as tx:
            return self._client(tx, host_id("client", client_id), self._now())

    def client_ids(self) -> Iterator[str]:
        """The ids of every client in scope, in code-point order, streamed by SQL chunks."""
        chosen = selection.Selection(self.scope.condition.tree, self.scope.calendar, self._now())
        return selection.select_ids(self.engine.store, chosen)

    def select(self, **what: Any) -> Iterator[str]:
        """``Engine.select`` within the directions: both conditions in one WHERE clause."""
        chosen = selection.for_engine(self.engine, **what)
        both = All((chosen.tree, self.scope.condition.tree))
        scoped = selection.Selection(both, chosen.calendar, chosen.now, chosen.facts)
        return selection.select_ids(self.engine.store, scoped)

    # -- records of clients

    def get_deal(self, deal_id: str) -> Deal | None:
        with self.engine.store.transaction() as tx:
            deal = tx.get_deal(host_id("deal", deal_id))
            return deal if deal and self._client(tx, deal.client, self._now()) else None

    def deals(self, client: str | None = None) -> list[Deal]:
        """The deals of the clients in scope (of one client if given), by id."""
        with self.engine.store.transaction() as tx:

            def every() -> list[Deal]:
                ids = [client] if client is not None else tx.client_ids()
                return sorted((d for i in ids for d in tx.deals_of(i)), key=lambda d: d.id)

            given = {"client_id": client}
            return self._listed(tx, Deal, "deals", "client_id", given, ("id",), every)

    def tasks(
        self,
        *,
        client: str | None = None,
        deal: str | None = None,
        assignee: str | None = None,
        status: TaskStatus | None = None,
    ) -> list[Task]:
        """Tasks of clients in scope, and tasks without a client assigned to the manager."""
        with self.engine.store.transaction() as tx:

            def every() -> list[Task]:
                return tx.find_tasks(client=client, deal=deal, assignee=assignee, status=status)

            given = {
                "client_id": client,
                "deal_id": deal,
                "assignee": assignee,
                "status": None if status is None else status.value,
            }
            order = ("created_at", "id")
            scoped = self._listed(tx, Task, "tasks", "client_id", given, order, every)
            own: list[Task] = []
            if client is None and assignee in (None, self.manager.id):
                mine = tx.find_tasks(deal=deal, assignee=self.manager.id, status=status)
                own = [t for t in mine if t.client is None]
        return sorted([*scoped, *own], key=_task_order)

    def get_task(self, task_id: str) -> Task | None:
        with self.engine.store.transaction() as tx:
            task = tx.get_task(host_id("task", task_id))
            return task if task is not None and self._task_allowed(tx, task) else None

    def _task_allowed(self, tx: Transaction, task: Task) -> bool:
        if task.client is None:
            return task.assignee == self.manager.id
        return self._client(tx, task.client, self._now()) is not None

    def interactions(
        self,
        client: str | None = None,
        *,
        deal: str | None = None,
        manager: str | None = None,
        contact: str | None = None,
    ) -> list[Interaction]:
        """Interactions with clients in scope, oldest first (filters as ``Engine.interactions``)."""
        with self.engine.store.transaction() as tx:

            def every() -> list[Interaction]:
                return tx.find_interactions(
                    client=client, deal=deal, manager=manager, contact=contact
                )

            given = {
                "client_id": client,
                "data.deal": deal,
                "data.manager": manager,
                "data.contact": contact,
            }
            order = ("occurred_at", "id")
            return self._listed(tx, Interaction, "interactions", "client_id", given, order, every)

    def get_interaction(self, interaction_id: str) -> Interaction | None:
        with self.engine.store.transaction() as tx:
            found = tx.get_interaction(interaction_id)
            return found if found and self._client(tx, found.client, self._now()) else None

    def mailings(self, *, client: str | None = None) -> list[Mailing]:
        with self.engine.store.transaction() as tx:
            given = {"client_id": client}
            order = ("created_at", "id")

            def every() -> list[Mailing]:
                return tx.find_mailings(client=client)

            return self._listed(tx, Mailing, "mailings", "client_id", given, order, every)

    def contacts(self, client: str | None = None) -> list[Contact]:
        """Contacts with a role in a client in scope; roles in other clients are left out."""
        with self.engine.store.transaction() as tx:
            return self._contacts(tx, tx.find_contacts(client=client))

    def get_contact(self, contact_id: str) -> Contact | None:
        with self.engine.store.transaction() as tx:
            found = tx.get_contact(contact_id)
            shown = self._contacts(tx, [found] if found else [])
        return shown[0] if shown else None

    def _contacts(self, tx: Transaction, contacts: list[Contact]) -> list[Contact]:
        now, verdicts = self._now(), dict[str, bool]()
        shown = []
        for contact in contacts:
            roles = []
            for role in contact.roles:
                if role.client not in verdicts:
                    verdicts[role.client] = self._client(tx, role.client, now) is not None
                if verdicts[role.client]:
                    roles.append(role)
            if roles:
                shown.append(contact.model_copy(update={"roles": roles}))
        return shown

    def history(self, client_id: str) -> list[HistoryItem]:
        with self.engine.store.transaction() as tx:
            if self._client(tx, client_id, self._now()) is None:
                return []
        return self.engine.history(client_id)

    def client_summary(self, client_id: str) -> ClientSummary:
        """The client's summary; refused for a client outside the directions."""
        client_id = host_id("client", client_id)
        with self.engine.store.transaction() as tx:
            now = self._now()
            if self._client(tx, client_id, now) is None:
                raise self._refusal(f"client {client_id}", reading=True)
            return client_summary(
                tx,
                self.engine.regulation,
                client_id,
                visible=lambda other: self._client(tx, other, now) is not None,
            )

    # -- explanations and reports (crmrules.explaining, crmrules.history, crmrules.reports)

    def _require_visible(self, client_id: str) -> str:
        client_id = host_id("client", client_id)
        with self.engine.store.transaction() as tx:
            if self._client(tx, client_id, self._now()) is None:
                raise self._refusal(f"client {client_id}", reading=True)
        return client_id

    def explain(self, client_id: str, **options: Any) -> Explanation:
        """``Engine.explain`` for a client in scope; refused for one outside."""
        return self.engine.explain(self._require_visible(client_id), **options)

    def explain_occurrence(
        self, rule_id: str, client_id: str, when: datetime | date
    ) -> OccurrenceExplanation:
        """``Engine.explain_occurrence`` for a client in scope; refused for one outside."""
        return self.engine.explain_occurrence(rule_id, self._require_visible(client_id), when)

    def rule_history(self, client_id: str) -> list[HistoryEntry]:
        """``Engine.rule_history`` for a client in scope; refused for one outside."""
        return self.engine.rule_history(self._require_visible(client_id))

    def report(self, name: str, span: Span, *, catalogue: Iterable[str] = ()) -> Report:
        """A report (crmrules.reports) over the clients in scope only.

        The scope narrows the report's SQL: its condition itself when SQL
        decides it exactly, else the ids of the clients in scope.
        """
        with self.engine.store.transaction() as tx:
            sql = self._sql(tx)
            if sql is None:
                raise ReportError("reports run as SQL on a SQLite or PostgreSQL store")
            where = self.scope.sql_filter(sql, self._now())
            clients: sa.ColumnElement[bool] = (
                where.where if where.exact else sql.tables.clients.c.id.in_(list(self.client_ids()))
            )
        return reports.report(name, self.engine.store, span, clients=clients, catalogue=catalogue)

    # -- writes: checked against the scope first, then the engine's own call

    def _refusal(self, record: str, *, reading: bool = False) -> OutOfScopeError:
        verb = "see" if reading else "change"
        return OutOfScopeError(self.manager.id, record, self.manager.directions, verb)

    def _require_client(self, client_id: str, record: str | None = None) -> None:
        with self.engine.store.transaction() as tx:
            if self._client(tx, client_id, self._now()) is None:
                raise self._refusal(record or f"client {client_id}")

    def _require_deal(self, deal_id: str) -> None:
        deal = self.engine.get_deal(deal_id)
        if deal is None:
            raise RefusedError(f"no deal {deal_id!r}")
        self._require_client(deal.client, f"deal {deal_id}")

    def create_client(self, client: Client, *, event_id: str | None = None) -> Result:
        """Create a client; refused unless the manager's directions take it as it would be."""
        if not self.scope.allows(self._as_stored(client), self._now()):
            raise self._refusal(f"client {client.id}")
        return self.engine.create_client(client, event_id=event_id)

    def _as_stored(self, client: Client) -> Client:
        """A new client with the territories and segments the engine would give it."""
        regulation, now = self.engine.regulation, self._now()
        typed = self.engine.typed_client(client)
        facts = Facts({"client": typed.record()}, now)
        placed = typed.model_copy(
            update={"territories": recompute(regulation, typed, facts, [], now).territories}
        )
        facts = Facts({"client": placed.record()}, now)
        segments = frozenset(s.id for s in regulation.segments.values() if s.condition(facts))
        return placed.model_copy(update={"segments": segments})

    def update_client(
        self, client_id: str, changes: Mapping[str, Any], *, event_id: str | None = None
    ) -> Result:
        self._require_client(host_id("client", client_id))
        return self.engine.update_client(client_id, changes, event_id=event_id)

    def create_deal(self, deal: Deal, *, event_id: str | None = None) -> Result:
        self._require_client(deal.client, f"client {deal.client} (of new deal {deal.id})")
        return self.engine.create_deal(deal, event_id=event_id)

    def update_deal(
        self, deal_id: str, changes: Mapping[str, Any], *, event_id: str | None = None
    ) -> Result:
        self._require_deal(deal_id)
        if "client" in changes:
            self._require_client(str(changes["client"]), f"client {changes['client']}")
        return self.engine.update_deal(deal_id, changes, event_id=event_id)

    def move_stage(self, deal_id: str, stage: str, *, event_id: str | None = None) -> Result:
        self._require_deal(deal_id)
        return self.engine.move_stage(deal_id, stage, event_id=event_id)

    def complete_task(self, task_id: str, *, event_id: str | None = None) -> Result:
        with self.engine.store.transaction() as tx:
            task = tx.get_task(host_id("task", task_id))
            if task is not None and not self._task_allowed(tx, task):
                raise self._refusal(f"task {task_id}")
        return self.engine.complete_task(task_id, event_id=event_id)

    def log_interaction(self, interaction: Interaction, *, event_id: str | None = None) -> Result:
        self._require_client(
            interaction.client, f"client {interaction.client} (of interaction {interaction.id})"
        )
        return self.engine.log_interaction(interaction, event_id=event_id)

    def put_contact(self, contact: Contact) -> None:
        """Store a contact; every organisation it has a role in must be in scope."""
        for role in contact.roles:
            self._require_client(role.client, f"client {role.client} (of contact {contact.id})")
        earlier = self.engine.get_contact(contact.id)
        if earlier is not None:
            hidden = [r.client for r in earlier.roles if r not in contact.roles]
            for client_id in hidden:
                self._require_client(client_id, f"client {client_id} (of contact {contact.id})")
        self.engine.put_contact(contact)

    def handle(self, event: Event) -> Result:
        """Report an event about one of the manager's clients or deals (others are refused)."""
        if event.client is None and event.deal is None:
            raise RefusedError(
                f"event {event.id} names no client or deal; manager {self.manager.id}'s view "
                "only reports events about their own clients"
            )
        if event.deal is not None:
            self._require_deal(event.deal)
        if event.client is not None:
            self._require_client(event.client)
        return self.engine.handle(event)

    def add_to_segment(
        self, client_id: str, segment: str, *, event_id: str | None = None
    ) -> Result:
        self._require_client(host_id("client", client_id))
        return self.engine.add_to_segment(client_id, segment, event_id=event_id)

    def remove_from_segment(
        self, client_id: str, segment: str, *, event_id: str | None = None
    ) -> Result:
        self._require_client(host_id("client", client_id))
        return self.engine.remove_from_segment(client_id, segment, event_id=event_id)


def _task_order(task: Task) -> tuple[bool, datetime | None, str]:
    return (task.created_at is None, task.created_at, task.id)


__all__ = ["ScopedView"]
