"""A SQL transaction's cache of the rows it read or wrote, undone with its savepoints.

The SQL store keeps the JSON of each record it read or wrote by id, so the
engine's many reads of the same client, deal and manager in one call cost
no round trip. A savepoint rolled back must take its writes out of the
cache too. Copying the cache at each savepoint did that, but ``handle_many``
opens a savepoint per event in a transaction of 200 events, so the copies
grew with the chunk: the cache keeps an undo log per open savepoint instead.
"""

from __future__ import annotations

from typing import Any

Key = tuple[str, str]
_MISSING = object()


class RowCache(dict[Key, Any]):
    """``(table name, key) -> data`` (None: no such row), with ``mark`` / ``release`` /
    ``rollback`` around each savepoint. Every write (``[]=``, ``del``, ``pop``,
    ``setdefault``, ``update``) is logged while a savepoint is open."""

    def __init__(self) -> None:
        super().__init__()
        self._undo: list[list[tuple[Key, Any]]] = []

    def __setitem__(self, key: Key, value: Any) -> None:
        if self._undo:
            self._undo[-1].append((key, self.get(key, _MISSING)))
        super().__setitem__(key, value)

    def pop(self, key: Key, default: Any = None) -> Any:
        if self._undo and key in self:
            self._undo[-1].append((key, self[key]))
        return super().pop(key, default)

    def __delitem__(self, key: Key) -> None:
        if self._undo and key in self:
            self._undo[-1].append((key, self[key]))
        super().__delitem__(key)

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def setdefault(self, key: Key, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    @property
    def marked(self) -> bool:
        """A savepoint is open."""
        return bool(self._undo)

    def mark(self) -> None:
        """A savepoint begins: what follows can be undone alone."""
        self._undo.append([])

    def release(self) -> None:
        """The savepoint is released: its writes belong to the one around it."""
        done = self._undo.pop()
        if self._undo:
            self._undo[-1].extend(done)

    def rollback(self) -> None:
        """The savepoint is rolled back: the cache is as it was at its ``mark``."""
        for key, old in reversed(self._undo.pop()):
            if old is _MISSING:
                super().pop(key, None)
            else:
                super().__setitem__(key, old)


__all__ = ["RowCache"]
