"""The catalogue: the goods and services a request may ask about.

Declared in the regulation's ``catalogue:`` section so that what the host
records on a request is checked (an unknown item is refused with the
nearest id) and the demand report can list items nobody asked about.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from crmrules.rules import schema


@dataclass(frozen=True)
class CatalogueItem:
    """One product or service; ``group`` gathers items for a reader (kitchens, repairs)."""

    id: str
    name: str | None = None
    kind: str = "product"
    group: str | None = None


@dataclass(frozen=True)
class Catalogue:
    """The declared items, in the order the regulation lists them."""

    items: Mapping[str, CatalogueItem] = field(default_factory=dict)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self.items

    def __iter__(self) -> Iterator[CatalogueItem]:
        return iter(self.items.values())

    def __len__(self) -> int:
        return len(self.items)


class _Compiler(Protocol):
    """What the regulation compiler lends this module: validation and error reporting."""

    def validate(self, model: type[schema.CatalogueItemSpec], data: Any, path: Any) -> Any: ...
    def _unique(self, seen: dict[str, Any], item_id: str, path: Any, what: str) -> bool: ...
    def error(self, path: Any, message: str, hint: str | None = None) -> None: ...


def parse(compiler: _Compiler, raw: Any) -> Catalogue:
    """The ``catalogue:`` section: a list of items with unique ids (problems reported)."""
    if raw is None:
        return Catalogue()
    if not isinstance(raw, list):
        compiler.error(("catalogue",), "catalogue must be a list of items", "- {id: kitchen}")
        return Catalogue()
    items: dict[str, CatalogueItem] = {}
    seen: dict[str, Any] = {}
    for index, entry in enumerate(raw):
        path = ("catalogue", index)
        spec = compiler.validate(schema.CatalogueItemSpec, entry, path)
        if spec is None or not compiler._unique(seen, spec.id, path, "catalogue item"):
            continue
        items[spec.id] = CatalogueItem(spec.id, spec.name, spec.kind, spec.group)
    return Catalogue(items)


__all__ = ["Catalogue", "CatalogueItem", "parse"]
