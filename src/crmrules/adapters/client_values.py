"""The queryable copy of each client's fields: one typed row per value, for SQL conditions.

The SQL store keeps a client as JSON (``crmrules_clients.data``); JSON holds
a decimal as tagged text and a moment with its own offset, so SQL cannot
compare them. ``crmrules_client_values`` holds what a condition sees
(``Client.record()``: built-in and custom fields alike) in typed columns:

* one row with ``seq = 0`` per present (not None) field: ``text`` / ``folded``
  (Python's ``str.casefold``, computed here, so ``ignore_case`` folds exactly
  as Python does on every database), ``number``, ``moment`` (UTC), ``day``,
  ``flag``, and ``blank`` (the field is empty as conditions define it);
* a set (tags, territories, custom sets) adds one row per element
  (``seq`` 1, 2, ...) with ``text`` / ``folded``.

``text_key`` / ``folded_key`` are the first ``KEY_LENGTH`` characters: they
carry the indexes (a PostgreSQL b-tree entry cannot hold a long text).

Numbers are stored as ``f(value)``, a monotone image (a float on SQLite, the
exact value clamped to ±1E±100 on PostgreSQL), with ``nudge``, the sign of
``value - f(value)``, so comparisons stay exact (see crmrules.rules.sql).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from crmrules.adapters import direct, statements
from crmrules.model import Client, MembershipSource, TerritoryMembership

#: How much of a text the indexed ``*_key`` columns hold.
KEY_LENGTH = 200
#: PostgreSQL numbers are clamped to this range (and away from zero by its inverse).
PG_LIMIT = Decimal("1E+100")
PG_TINY = Decimal("1E-100")

TABLE = "crmrules_client_values"


class Number(TypeDecorator[Any]):
    """Exact NUMERIC on PostgreSQL, a REAL on SQLite (which has no exact decimal type)."""

    impl = sa.Numeric()
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(sa.Numeric(asdecimal=True))
        return dialect.type_descriptor(sa.Float(asdecimal=False))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "postgresql":
            return Decimal(value)
        return float(value)


def image(value: int | Decimal | float, dialect: str) -> tuple[Any, int]:
    """``(f(value), sign(value - f(value)))``: what the ``number`` and ``nudge`` columns hold."""
    exact = Decimal(value) if not isinstance(value, Decimal) else value
    stored: Decimal | float
    if dialect == "postgresql":
        magnitude = abs(exact)
        if magnitude > PG_LIMIT:
            stored = PG_LIMIT.copy_sign(exact)
        elif 0 < magnitude < PG_TINY:
            stored = PG_TINY.copy_sign(exact)
        else:
            stored = exact
        back = Decimal(stored)
    else:
        stored = float(exact)
        if stored in (float("inf"), float("-inf")):
            return stored, -1 if stored > 0 else 1
        back = Decimal(stored)
    return stored, (exact > back) - (exact < back)


def _utc(moment: datetime) -> datetime:
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # within a day of year 1 or 9999
        return (datetime.min if moment.year == 1 else datetime.max).replace(tzinfo=UTC)


def _blank(value: Any) -> bool:
    if value == "":
        return True
    return isinstance(value, frozenset | set | list | tuple) and not value


def scalar_columns(value: Any, dialect: str) -> dict[str, Any]:
    """The typed columns of one present value."""
    columns: dict[str, Any] = {"blank": _blank(value)}
    if isinstance(value, bool):
        columns["flag"] = value
    elif isinstance(value, int | Decimal | float):
        if isinstance(value, float) and value != value:  # NaN compares with nothing
            return columns
        columns["number"], columns["nudge"] = image(value, dialect)
    elif isinstance(value, str):
        columns.update(_text(value))
    elif isinstance(value, datetime):
        if value.utcoffset() is not None:
            columns["moment"] = _utc(value)
    elif isinstance(value, date):
        columns["day"] = value
    return columns


def _text(value: str) -> dict[str, Any]:
    folded = value.casefold()
    return {
        "text": value,
        "text_key": value[:KEY_LENGTH],
        "folded": folded,
        "folded_key": folded[:KEY_LENGTH],
    }


def rows(client_id: str, record: dict[str, Any], dialect: str) -> list[dict[str, Any]]:
    """The rows of one client's record (``Client.record()``)."""
    result: list[dict[str, Any]] = []
    for key, value in record.items():
        if value is None:
            continue
        base = {"client_id": client_id, "key": key}
        result.append({**base, "seq": 0, **scalar_columns(value, dialect)})
        if isinstance(value, frozenset | set | list | tuple):
            elements = sorted({v for v in value if isinstance(v, str)})
            for seq, element in enumerate(elements, start=1):
                result.append({**base, "seq": seq, "blank": False, **_text(element)})
    return result


COLUMNS = (
    "client_id",
    "key",
    "seq",
    "text",
    "text_key",
    "folded",
    "folded_key",
    "number",
    "nudge",
    "moment",
    "day",
    "flag",
    "blank",
)


def _complete(row: dict[str, Any]) -> dict[str, Any]:
    """Every column present, so one executemany inserts them all."""
    return {name: row.get(name) for name in COLUMNS}


def write(
    connection: sa.Connection, table: sa.Table, clients: Iterable[Client], *, replace: bool = True
) -> None:
    """(Re)write the rows of ``clients``."""
    dialect = connection.dialect.name
    batch: list[dict[str, Any]] = []
    ids: list[str] = []
    for client in clients:
        ids.append(client.id)
        batch.extend(_complete(row) for row in rows(client.id, client.record(), dialect))
    if replace and ids:
        connection.execute(sa.delete(table).where(table.c.client_id.in_(ids)))
    if batch:
        connection.execute(sa.insert(table), batch)


def write_one(connection: sa.Connection, table: sa.Table, client: Client) -> None:
    """``write`` for one client, as the engine stores each: the same rows, through the
    statements prepared once (``crmrules.adapters.direct``)."""
    delete = statements.delete_by_key(table, ("client_id",))
    direct.execute(connection, delete, {statements.key_param("client_id"): client.id})
    batch = [_complete(row) for row in rows(client.id, client.record(), connection.dialect.name)]
    if batch:
        direct.execute_many(connection, statements.insert(table), batch, keys=COLUMNS)


def write_memberships(
    connection: sa.Connection,
    table: sa.Table,
    client_id: str,
    memberships: Sequence[TerritoryMembership],
) -> None:
    """(Re)write the ``territories`` and ``segments`` rows of a client kept in a host's table.

    Its other fields are the host's columns (crmrules.rules.sql_host); these
    two are crmrules' own, computed from its memberships as the store reads them.
    """
    from crmrules.rules import segments

    territories = frozenset(
        m.territory
        for m in memberships
        if m.source is not MembershipSource.MANUAL_REMOVE and not segments.is_segment(m)
    )
    record = {"territories": territories, "segments": segments.members(list(memberships))}
    keys = table.c.key.in_(sorted(record))
    connection.execute(sa.delete(table).where(table.c.client_id == client_id, keys))
    batch = [_complete(row) for row in rows(client_id, record, connection.dialect.name)]
    connection.execute(sa.insert(table), batch)


__all__ = [
    "KEY_LENGTH",
    "TABLE",
    "Number",
    "image",
    "rows",
    "scalar_columns",
    "write",
    "write_memberships",
    "write_one",
]
