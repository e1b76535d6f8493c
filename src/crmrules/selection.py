"""Selecting clients by a condition: SQL narrows the base, Python decides what SQL cannot.

On the SQL store a condition compiles to a WHERE clause (crmrules.rules.sql)
over the clients' typed values; when every leaf is exact the database's
answer is the answer, otherwise Python runs the condition on the rows SQL
kept. Elsewhere (the memory store, clients in a host's own tables) Python
runs it on every client. Either way the ids come in code-point order, a chunk
per short transaction, so memory stays bounded and no lock is held while the
caller works through them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from crmrules.adapters.sqlalchemy import SQLAlchemyTransaction
from crmrules.calendar import BusinessCalendar
from crmrules.model import Client
from crmrules.rules.conditions import Condition, Facts, Node
from crmrules.rules.sql import Filter, compile_filter
from crmrules.store import Store, Transaction

#: Ids fetched (and, where Python decides, clients loaded) per transaction.
CHUNK = 1_000

#: The facts a condition sees for one client (the engine adds its manager).
FactsOf = Callable[[Transaction, Client, datetime], Facts]


def client_only(tx: Transaction, client: Client, now: datetime) -> Facts:
    """The client's own fields: deals, events and managers are missing."""
    return Facts({"client": client.record()}, now)


@dataclass(frozen=True)
class Selection:
    """What to select: a condition tree, decided at one moment ``now``."""

    tree: Node
    calendar: BusinessCalendar
    now: datetime
    facts: FactsOf = client_only

    def condition(self) -> Condition:
        return Condition(self.tree, self.calendar)

    def sql(self, tx: SQLAlchemyTransaction) -> Filter:
        t = tx.tables
        return compile_filter(
            self.tree,
            values=t.client_values,
            client_id=t.clients.c.id,
            calendar=self.calendar,
            now=self.now,
            dialect=tx.connection.dialect.name,
        )


def select_ids(store: Store, selection: Selection, *, chunk: int = CHUNK) -> Iterator[str]:
    """The ids of the clients ``selection`` takes, in code-point order, streamed."""
    condition = selection.condition()
    after: str | None = None
    while True:
        with store.transaction() as tx:
            if isinstance(tx, SQLAlchemyTransaction) and tx.indexes_clients:
                ids, last = _sql_chunk(tx, selection, condition, after, chunk)
            else:
                ids, last = _python_chunk(tx, selection, condition, after, chunk)
        yield from ids
        if last is None:
            return
        after = last


def _decide(
    tx: Transaction, selection: Selection, condition: Condition, clients: list[Client]
) -> list[str]:
    return [c.id for c in clients if condition(selection.facts(tx, c, selection.now))]


def _sql_chunk(
    tx: SQLAlchemyTransaction,
    selection: Selection,
    condition: Condition,
    after: str | None,
    chunk: int,
) -> tuple[list[str], str | None]:
    """One chunk of candidates by SQL; ``last`` is where the next starts (None: done)."""
    where = selection.sql(tx)
    column = tx.tables.clients.c.id
    ordered = tx.ordered_id(column)
    query = sa.select(column).where(where.where).order_by(ordered).limit(chunk)
    if after is not None:
        query = query.where(ordered > after)
    candidates = list(tx.connection.execute(query).scalars())
    last = candidates[-1] if len(candidates) == chunk else None
    if where.exact:
        return candidates, last
    return _decide(tx, selection, condition, tx.load_clients(candidates)), last


def _python_chunk(
    tx: Transaction,
    selection: Selection,
    condition: Condition,
    after: str | None,
    chunk: int,
) -> tuple[list[str], str | None]:
    ids = [i for i in sorted(tx.client_ids()) if after is None or i > after][:chunk]
    clients = [c for c in (tx.get_client(i) for i in ids) if c is not None]
    last = ids[-1] if len(ids) == chunk else None
    return _decide(tx, selection, condition, clients), last


__all__ = ["CHUNK", "FactsOf", "Selection", "client_only", "select_ids"]
