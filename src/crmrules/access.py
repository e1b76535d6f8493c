"""Access by direction: which clients, and which of their records, one manager may see.

A ``Scope`` is one manager's reach: the clients some direction of theirs
takes (crmrules.rules.directions). It is the one mechanism every scoped read
uses, and reports or explanations built on the store apply it the same way:

- ``scope.sql_filter(tx)`` is a WHERE clause over the clients table
  (``tx.tables.clients.c.id``), compiled by crmrules.rules.sql, that keeps
  at least the clients in scope; ``scope.within(tx, column)`` is the same as
  ``column IN (those client ids)`` for any table with a client id column.
  Their ``exact`` flag says whether SQL decided alone;
- when it did not (a direction condition SQL cannot decide, such as
  ``matches``), or on a store without SQL, ``scope.keep(tx, records,
  client_of)`` decides in Python; ``scope.allows(client)`` answers for one
  client.

A record belongs to the client it concerns (a deal's, a task's, an
interaction's or a mailing's ``client``; a contact through its roles). A
task without a client is in scope when it is assigned to the manager; other
records without a client are not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa

from crmrules.adapters.sqlalchemy import SQLAlchemyTransaction
from crmrules.calendar import BusinessCalendar
from crmrules.errors import RefusedError
from crmrules.model import Client, Manager
from crmrules.rules.conditions import Condition, Facts, Node
from crmrules.rules.directions import reach, undeclared
from crmrules.rules.regulation import Regulation
from crmrules.rules.sql import Filter, compile_filter
from crmrules.store import Transaction

T = TypeVar("T")


class OutOfScopeError(RefusedError):
    """A scoped call named a record outside the manager's directions; nothing was changed."""

    def __init__(
        self, manager: str, record: str, directions: Iterable[str], verb: str = "change"
    ) -> None:
        self.manager = manager
        self.record = record
        names = ", ".join(sorted(directions)) or "none"
        super().__init__(
            f"manager {manager} cannot {verb} {record}: it is outside their directions ({names})"
        )


@dataclass(frozen=True)
class Scope:
    """The clients one manager may see and change: those some direction of theirs takes."""

    manager: str
    directions: frozenset[str]
    condition: Condition
    calendar: BusinessCalendar

    @classmethod
    def of(cls, regulation: Regulation, manager: Manager) -> Scope:
        """The scope of ``manager``; refused if they name a direction the regulation lacks."""
        problem = undeclared(regulation.directions, manager.id, manager.directions)
        if problem is not None:
            raise RefusedError(problem)
        tree: Node = reach(regulation.directions, manager.directions)
        calendar = regulation.calendar
        return cls(manager.id, manager.directions, Condition(tree, calendar), calendar)

    def allows(self, client: Client | None, now: datetime) -> bool:
        """Whether ``client`` is in scope at ``now`` (None, a missing client, is not)."""
        return client is not None and self.condition(Facts({"client": client.record()}, now))

    def sql_filter(self, tx: SQLAlchemyTransaction, now: datetime) -> Filter:
        """A WHERE clause over ``tx.tables.clients`` taking at least the clients in scope."""
        return compile_filter(
            self.condition.tree,
            values=tx.tables.client_values,
            client_id=tx.tables.clients.c.id,
            calendar=self.calendar,
            now=now,
            dialect=tx.connection.dialect.name,
        )

    def within(
        self, tx: SQLAlchemyTransaction, column: sa.ColumnElement[Any], now: datetime
    ) -> tuple[sa.ColumnElement[bool], bool]:
        """``column IN (the ids of the clients in scope)``, and whether SQL decided exactly."""
        where = self.sql_filter(tx, now)
        ids = sa.select(tx.tables.clients.c.id).where(where.where)
        return column.in_(ids), where.exact

    def keep(
        self,
        tx: Transaction,
        records: Iterable[T],
        client_of: Callable[[T], str | None],
        now: datetime,
        *,
        decided: bool = False,
    ) -> list[T]:
        """The records whose client is in scope, checked in Python unless SQL ``decided``.

        Records without a client are dropped; the caller adds those it allows.
        """
        verdicts: dict[str, bool] = {}
        kept = []
        for record in records:
            client_id = client_of(record)
            if client_id is None:
                continue
            if not decided and client_id not in verdicts:
                verdicts[client_id] = self.allows(tx.get_client(client_id), now)
            if decided or verdicts[client_id]:
                kept.append(record)
        return kept


__all__ = ["OutOfScopeError", "Scope"]
