"""What every report shares: the store's tables, the client filter and nearest-rank percentiles.

Percentiles are nearest-rank: of ``n`` values sorted ascending, the p-th
percentile is the value at rank ``ceil(p * n / 100)`` (1-based), so it is
always one of the values and SQLite and PostgreSQL agree to the second. The
median is the 50th: for an even count, the lower of the two middle values.

``clients`` narrows a report to some clients: a SQLAlchemy condition on the
clients table (``crmrules_clients``), such as an access scope; rows without a
client (a request from somebody who is not a client yet, a host's task
without one) drop out when it is given.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from crmrules.adapters import campaign_tables
from crmrules.adapters.sqlalchemy import SQLAlchemyStore
from crmrules.adapters.tables import Tables
from crmrules.errors import CrmRulesError
from crmrules.reports.periods import Span


class ReportError(CrmRulesError):
    """A report that cannot run as asked (a store without SQL, bad dates...)."""


@dataclass(frozen=True)
class Source:
    """One report's reading: a connection in a transaction, the tables, the span and filter."""

    connection: sa.Connection
    tables: Tables
    campaigns: campaign_tables.CampaignTables
    span: Span
    clients: sa.ColumnElement[bool] | None = None

    def for_clients(self, column: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
        """True for rows of the filtered clients (always true without a filter)."""
        if self.clients is None:
            return sa.true()
        return column.in_(sa.select(self.tables.clients.c.id).where(self.clients))

    def rows(self, query: sa.Select[*tuple[Any, ...]]) -> list[Any]:
        return list(self.connection.execute(query))


@contextmanager
def source(
    store: object, span: Span, clients: sa.ColumnElement[bool] | None = None
) -> Iterator[Source]:
    """A Source on ``store`` (a SQL store: reports are SQL aggregates)."""
    if not isinstance(store, SQLAlchemyStore):
        raise ReportError(
            f"reports run as SQL on a SQLite or PostgreSQL store, not on {type(store).__name__}"
        )
    with store.transaction() as tx:
        schema = tx.tables.clients.schema
        yield Source(tx.connection, tx.tables, campaign_tables.tables(schema), span, clients)


def ranked(
    value: sa.ColumnElement[Any], *group: sa.ColumnElement[Any]
) -> tuple[sa.ColumnElement[int], sa.ColumnElement[int]]:
    """(rank of the value in its group from 1, the group's size): window columns."""
    rank = sa.func.row_number().over(partition_by=list(group), order_by=value)
    size = sa.func.count().over(partition_by=list(group))
    return rank, size


def rank_of(percent: int, size: sa.ColumnElement[int]) -> sa.ColumnElement[int]:
    """The nearest rank of the ``percent``-th percentile among ``size`` values."""
    return (percent * size + 99) // 100


def nearest_rank(values: list[int], percent: int) -> int | None:
    """The nearest-rank percentile of ``values`` in Python (None for none)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[(percent * len(ordered) + 99) // 100 - 1]


__all__ = ["ReportError", "Source", "nearest_rank", "rank_of", "ranked", "source"]
