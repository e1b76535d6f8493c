"""Selecting clients by a condition: SQL narrows the base, Python decides what SQL cannot.

On the SQL store a condition compiles to a WHERE clause (crmrules.rules.sql)
over the clients' typed values (or, for clients in a host's own tables, over
the host's mapped columns: crmrules.rules.sql_host); when every leaf is
exact the database's answer is the answer, otherwise Python runs the
condition on the rows SQL kept. On the memory store Python runs it on every
client. Either way the ids come in code-point order, a chunk
per short transaction, so memory stays bounded and no lock is held while the
caller works through them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from crmrules.adapters.sqlalchemy import SQLAlchemyTransaction
from crmrules.calendar import BusinessCalendar
from crmrules.errors import Problem, RefusedError, RegulationError
from crmrules.model import Client
from crmrules.rules.conditions import Condition, Facts, Leaf, Node, Scope, parse
from crmrules.rules.regulation import Regulation
from crmrules.rules.source import SourceMap
from crmrules.rules.sql import Filter, compile_filter
from crmrules.rules.sql_host import CASEFOLD, HostColumns
from crmrules.store import Store, Transaction

if TYPE_CHECKING:
    from crmrules.engine import Engine

#: Ids per chunk (and, where Python decides, clients loaded per transaction).
CHUNK = 1_000
#: Ids fetched per query where SQL decides alone.
FETCH = 20_000

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
        source = client_source(tx)
        return compile_filter(
            self.tree,
            values=t.client_values,
            client_id=source.id,
            calendar=self.calendar,
            now=self.now,
            dialect=tx.connection.dialect.name,
            host=source.host,
        )


@dataclass(frozen=True)
class ClientSource:
    """Where a transaction's clients are: their table, id (as text) and host columns if any."""

    table: sa.Table
    id: sa.ColumnElement[str]
    host: HostColumns | None


def client_source(tx: SQLAlchemyTransaction) -> ClientSource:
    records = tx.records
    if records is None or records.clients is None:
        return ClientSource(tx.tables.clients, tx.tables.clients.c.id, None)
    mapping = records.clients
    table = mapping.sa_table
    column: sa.ColumnElement[Any] = table.c[mapping.id]
    if not isinstance(column.type, sa.String):
        column = sa.cast(column, sa.String)
    columns: dict[str, sa.ColumnElement[Any]] = {
        key: table.c[name] for key, name in mapping.columns.items()
    }
    columns.setdefault("id", column)
    dialect = tx.connection.dialect.name
    if dialect == "sqlite":
        _register_casefold(tx.connection)
    host = HostColumns(columns, dialect, tx.tables.clients.schema)
    return ClientSource(table, column, host)


def _casefold(value: str | None) -> str | None:
    return None if value is None else value.casefold()


def _register_casefold(connection: sa.Connection) -> None:
    """Python's ``str.casefold`` as SQLite's ``crmrules_casefold`` on this connection."""
    raw = connection.connection.driver_connection
    raw.create_function(CASEFOLD, 1, _casefold, deterministic=True)  # type: ignore[union-attr]


def select_ids(
    store: Store, selection: Selection, *, chunk: int = CHUNK, fetch: int = FETCH
) -> Iterator[str]:
    """The ids of the clients ``selection`` takes, in code-point order, streamed."""
    for ids in id_chunks(store, selection, chunk=chunk, fetch=fetch):
        yield from ids


def id_chunks(
    store: Store, selection: Selection, *, chunk: int = CHUNK, fetch: int = FETCH
) -> Iterator[list[str]]:
    """``select_ids`` a chunk at a time (none empty).

    Where SQL decides alone, one short transaction fetches up to ``fetch``
    ids (one query, not one per chunk: each query evaluates the condition
    anew) and the chunks are cut from them; where Python decides, each
    chunk of candidates is fetched and decided in its own transaction.
    """
    condition = selection.condition()
    after: str | None = None
    while True:
        with store.transaction() as tx:
            if isinstance(tx, SQLAlchemyTransaction):
                ids, last = _sql_chunk(tx, selection, condition, after, chunk, max(chunk, fetch))
            else:
                ids, last = _python_chunk(tx, selection, condition, after, chunk)
        for start in range(0, len(ids), chunk):
            yield ids[start : start + chunk]
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
    fetch: int,
) -> tuple[list[str], str | None]:
    """Candidates by SQL (``fetch`` if exact, else ``chunk``); ``last``: where the next start."""
    where = selection.sql(tx)
    source = client_source(tx)
    ordered = tx.ordered_id(source.id)
    if where.exact:
        chunk = fetch
    query = sa.select(source.id).select_from(source.table).where(where.where)
    query = query.order_by(ordered).limit(chunk)
    if after is not None:
        query = query.where(ordered > after)
    candidates = [str(i) for i in tx.connection.execute(query).scalars()]
    last = candidates[-1] if len(candidates) == chunk else None
    if where.exact:
        return candidates, last
    if source.host is None:
        clients = tx.load_clients(candidates)
    else:
        clients = [c for c in (tx.get_client(i) for i in candidates) if c is not None]
    return _decide(tx, selection, condition, clients), last


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


# -- what the engine selects by


def descendants(regulation: Regulation) -> dict[str, frozenset[str]]:
    """Each territory with all the territories below it (what ``{territory: id}`` means)."""
    below: dict[str, set[str]] = {tid: {tid} for tid in regulation.territories}
    for tid in regulation.territories:
        parent = regulation.territories[tid].parent
        seen = {tid}
        while parent is not None and parent in below and parent not in seen:
            below[parent].add(tid)
            seen.add(parent)
            parent = regulation.territories[parent].parent
    return {tid: frozenset(ids) for tid, ids in below.items()}


def with_manager(regulation: Regulation) -> FactsOf:
    """The client and its responsible manager, as a rule run sees them (no deal, no event)."""

    def facts(tx: Transaction, client: Client, now: datetime) -> Facts:
        manager = None
        if client.responsible:
            manager = tx.get_manager(client.responsible) or regulation.managers.get(
                client.responsible
            )
        records = {"client": client.record(), "manager": manager.record() if manager else None}
        return Facts(records, now)

    return facts


def for_engine(
    engine: Engine,
    *,
    territory: str | None = None,
    rule: str | None = None,
    condition: Mapping[str, Any] | None = None,
    segment: str | None = None,
    now: datetime | None = None,
) -> Selection:
    """What ``Engine.select`` selects: exactly one of a segment, territory, rule or condition."""
    choices = (("segment", segment), ("territory", territory), ("rule", rule))
    given = [name for name, v in (*choices, ("condition", condition)) if v is not None]
    if len(given) != 1:
        raise RefusedError(
            "select takes exactly one of segment=, territory=, rule= or condition= "
            f"(got {', '.join(given) or 'none'})"
        )
    regulation = engine.regulation
    moment = now or engine.clock.now()
    facts = with_manager(regulation)
    tree: Node
    if segment is not None:
        if segment not in regulation.segments:
            known = ", ".join(sorted(regulation.segments)) or "none"
            raise RefusedError(f"no segment {segment!r} in the regulation (segments: {known})")
        spec = regulation.fields.get("client.segments")
        assert spec is not None
        tree = Leaf(spec, "contains_any", frozenset({segment}), segment=segment)
    elif territory is not None:
        if territory not in regulation.territories:
            known = ", ".join(sorted(regulation.territories)) or "none"
            raise RefusedError(
                f"no territory {territory!r} in the regulation (territories: {known})"
            )
        spec = regulation.fields.get("client.territories")
        assert spec is not None
        tree = Leaf(spec, "territory", descendants(regulation)[territory], territory=territory)
    elif rule is not None:
        found = engine.rules_by_id.get(rule)
        if found is None:
            known = ", ".join(sorted(engine.rules_by_id)) or "none"
            raise RefusedError(f"no rule {rule!r} in the regulation (rules: {known})")
        tree = found.condition.tree
    else:
        assert condition is not None
        problems: list[Problem] = []
        scope = Scope(
            regulation.fields,
            regulation.calendar,
            SourceMap(),
            problems,
            descendants(regulation),
            engine.plugins.operators(),
            frozenset(regulation.segments),
        )
        parsed = parse(dict(condition), ("condition",), scope)
        if parsed is None or problems:
            raise RegulationError(problems)
        tree = parsed
    return Selection(tree, regulation.calendar, moment, facts)


__all__ = [
    "CHUNK",
    "FETCH",
    "ClientSource",
    "FactsOf",
    "Selection",
    "client_only",
    "client_source",
    "descendants",
    "for_engine",
    "id_chunks",
    "select_ids",
    "with_manager",
]
