"""Records validated from their rows' JSON, kept across a SQL store's transactions.

Every engine call reads its deal, client and manager (one statement, see
``crmrules.adapters.prefetch``) and validates each with pydantic: e-mail
parsing and all, that costs more than the read. Most calls read records
no other call changed since the last one, so the store keeps, for each row
read, the JSON text it came as, its parsed data and its validated record.
A later read that brings the same text takes the record as it is (the
same text parses and validates to the same record); any other text is a
miss and replaces it. Nothing here is ever changed in place: the
transactions hand out copies (``get_client``) or lend the record to be read
only (``lend_client``), as they do the records they validated themselves.
"""

from __future__ import annotations

from typing import Any

#: (table name, key)
Key = tuple[str, str]
#: how many rows a store keeps (a few kB each); past it, the oldest half goes
SIZE = 4096


class ValidatedRows:
    """``(table, key) -> (JSON text, data, record)``, bounded; shared by threads.

    No lock (a forked process must not inherit one held): each dict operation
    is atomic, and two threads trimming at once only trim a little more.
    """

    def __init__(self, size: int = SIZE) -> None:
        self._size = size
        self._rows: dict[Key, tuple[str, Any, Any]] = {}

    def get(self, key: Key, text: str) -> tuple[Any, Any] | None:
        """The data and record kept for ``key`` if they came as ``text``."""
        found = self._rows.get(key)
        if found is None or found[0] != text:
            return None
        return found[1], found[2]

    def keep(self, key: Key, text: str, data: Any, record: Any) -> None:
        rows = self._rows
        rows.pop(key, None)
        if len(rows) >= self._size:  # dicts keep their order: the first are the oldest
            for old in list(rows)[: self._size // 2]:
                rows.pop(old, None)
        rows[key] = (text, data, record)

    def __len__(self) -> int:
        return len(self._rows)


__all__ = ["SIZE", "ValidatedRows"]
