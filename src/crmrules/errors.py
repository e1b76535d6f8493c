"""Errors that reach admins and host developers.

Every error an admin can cause names where it happened (file, line and column,
or record and field) and, where it helps, what to do. Nothing here carries a
Python traceback to the person reading it.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import NamedTuple


class Location(NamedTuple):
    """A place in a regulation or scenario file; line and column count from 1.

    A named tuple rather than a dataclass: a large regulation records one per
    value, and tuples are several times cheaper to make.
    """

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an admin's input."""

    message: str
    location: Location | None = None
    hint: str | None = None

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location else ""
        hint = f" ({self.hint})" if self.hint else ""
        return f"{where}{self.message}{hint}"


class CrmRulesError(Exception):
    """The base of every error crmrules raises on purpose."""


class RegulationError(CrmRulesError):
    """A regulation (or scenario) that cannot be loaded; lists every problem found."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: list[Problem] = sorted(
            problems,
            key=lambda p: (p.location is None, p.location or Location("", 0, 0)),
        )
        super().__init__(str(self))

    def __str__(self) -> str:
        count = len(self.problems)
        lines = [str(p) for p in self.problems]
        head = f"{count} problem{'s' if count != 1 else ''} in the regulation"
        return "\n".join([head, *lines]) if count != 1 else lines[0]


class RecordError(CrmRulesError):
    """A record from the host (client, deal, event, ...) with a bad field value."""

    def __init__(self, record: str, field: str, message: str) -> None:
        self.record = record
        self.field = field
        self.message = message
        super().__init__(f"{record}: field {field!r}: {message}")


class RefusedError(CrmRulesError):
    """A host call the regulation does not allow (a stage move outside the transitions...).

    Nothing was changed. ``reason`` says why, for the person who asked.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class StoreError(CrmRulesError):
    """The database cannot be used: a bad URL, an unreachable server, a refused login."""


class SchemaError(StoreError):
    """The database has no crmrules tables, or tables of another crmrules version."""


class MissingExtraError(CrmRulesError, ImportError):
    """An optional part of crmrules is used without the package it needs installed."""


def require(module: str, extra: str, what: str) -> ModuleType:
    """Import ``module`` for ``what``, or say which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingExtraError(
            f"{what} needs the {module!r} package, which is not installed ({error}). "
            f"Install it with: pip install 'crmrules[{extra}]'"
        ) from None


__all__ = [
    "CrmRulesError",
    "Location",
    "MissingExtraError",
    "Problem",
    "RecordError",
    "RefusedError",
    "RegulationError",
    "SchemaError",
    "StoreError",
    "require",
]
