"""Directions: the lines of business a manager works in, and so the clients they may see.

A direction is a name and a condition on the client, like a territory's or a
segment's (``{territory: north}``, ``{field: client.industry, eq: retail}``,
or any all/any/not of them). A manager lists their directions; a scoped view
of the engine (``Engine.scoped``, see crmrules.access) reads and changes only
the clients some direction of that manager takes, and the records that
belong to them. Nothing is stored per client: the condition is compiled to
SQL at each read, so a changed regulation or a changed client takes effect
at once, with no realign.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from crmrules.calendar import BusinessCalendar
from crmrules.errors import Location
from crmrules.rules import schema
from crmrules.rules.conditions import ALWAYS, AnyOf, Condition, Const, Node
from crmrules.rules.source import PathKey, SourceMap

#: Directions, like segments, read client fields only.
WHAT = "direction"


@dataclass(frozen=True)
class Direction:
    id: str
    name: str | None
    condition: Condition
    location: Location | None


class _Compiling(Protocol):
    """What the regulation compiler lends to this module."""

    source: SourceMap
    calendar: BusinessCalendar

    def validate(self, model: type[schema.DirectionSpec], data: Any, path: PathKey) -> Any: ...
    def _unique(self, seen: dict[str, PathKey], item_id: str, path: PathKey, what: str) -> bool: ...
    def _condition(self, raw: Any, path: PathKey) -> Node | None: ...
    def _client_only(self, node: Node, path: PathKey, what: str = ...) -> None: ...
    def _unknown(self, path: PathKey, what: str, name: str, known: Iterable[str]) -> None: ...


def compile_directions(compiler: _Compiling, items: list[Any]) -> dict[str, Direction]:
    """The ``directions:`` section: each an id, a name and a client condition (``when``)."""
    compiled: dict[str, Direction] = {}
    seen: dict[str, PathKey] = {}
    for index, raw in enumerate(items):
        path: PathKey = ("directions", index)
        spec = compiler.validate(schema.DirectionSpec, raw, path)
        if spec is None or not compiler._unique(seen, spec.id, path, WHAT):
            continue
        when = ALWAYS if spec.when is None else compiler._condition(spec.when, (*path, "when"))
        if when is None:
            continue
        compiler._client_only(when, (*path, "when"), WHAT)
        compiled[spec.id] = Direction(
            spec.id, spec.name, Condition(when, compiler.calendar), compiler.source.locate(path)
        )
    return compiled


def check_manager_directions(
    compiler: _Compiling,
    directions: Mapping[str, Direction],
    managers: Iterable[tuple[PathKey, Iterable[str]]],
) -> None:
    """Every direction a manager of the regulation names must be declared."""
    for path, names in managers:
        for index, name in enumerate(names):
            if name not in directions:
                compiler._unknown((*path, "directions", index), WHAT, name, directions)


def undeclared(
    directions: Mapping[str, Direction], manager: str, names: Iterable[str]
) -> str | None:
    """Why a manager's ``names`` cannot be used (a direction not declared), or None."""
    unknown = sorted(set(names) - set(directions))
    if not unknown:
        return None
    known = ", ".join(sorted(directions)) or "none"
    return (
        f"manager {manager}: field 'directions': unknown direction {', '.join(unknown)} "
        f"(the regulation declares: {known})"
    )


def reach(directions: Mapping[str, Direction], names: Iterable[str]) -> Node:
    """The condition a client meets when some of ``names`` takes it (none: no client)."""
    trees = tuple(directions[name].condition.tree for name in sorted(set(names)))
    if not trees:
        return Const(False)
    return trees[0] if len(trees) == 1 else AnyOf(trees)


__all__ = ["Direction", "check_manager_directions", "compile_directions", "reach", "undeclared"]
