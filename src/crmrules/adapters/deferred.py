"""Writes a SQL transaction holds back, to send as one multi-row statement per kind.

A batch of work that is undone as a whole when anything goes wrong (a claimed
batch of due timers, a chunk of a schedule's clients) writes the same kinds
of rows again and again: a task, a mailing, its outbox message, the event's
result, the timer settled. Sent one by one, that is a statement (and on a
server a round trip) per row. Held back here, they go as one executemany per
statement when the transaction needs them: before any statement that could
read those tables, before a savepoint, and before commit.

A row that must be new (a task, a mailing, a message under an idempotency
key) is inserted with ``ON CONFLICT DO NOTHING ... RETURNING``: if fewer
rows come back than were sent, one existed already (the store should have
answered False for it), and ``RowsExisted`` tells the caller to undo the
batch and do it again without holding anything back.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from crmrules.errors import CrmRulesError


class RowsExisted(CrmRulesError):
    """Rows held back as new met rows already stored: the batch must be done again."""


class Deferred:
    """Statements with the rows waiting for each, in the order each statement first came."""

    def __init__(self) -> None:
        self._groups: dict[int, tuple[sa.Executable, bool, list[dict[str, Any]]]] = {}

    def __bool__(self) -> bool:
        return bool(self._groups)

    def add(self, statement: sa.Executable, row: dict[str, Any], *, new: bool = False) -> None:
        """Hold ``row`` back for ``statement`` (built once, so the same object each time).

        ``new``: the statement is an INSERT ... ON CONFLICT DO NOTHING RETURNING, and every
        row must come back.
        """
        group = self._groups.get(id(statement))
        if group is None:
            group = self._groups[id(statement)] = (statement, new, [])
        group[2].append(row)

    def clear(self) -> None:
        self._groups.clear()

    def write(self, connection: sa.Connection) -> None:
        """Send every statement with its rows (one executemany each); then nothing waits."""
        groups, self._groups = list(self._groups.values()), {}
        for statement, new, rows in groups:
            if not new:
                connection.execute(statement, rows)
                continue
            written = len(connection.execute(statement, rows).all())
            if written != len(rows):
                raise RowsExisted(f"{len(rows) - written} row(s) held back as new existed already")


__all__ = ["Deferred", "RowsExisted"]
