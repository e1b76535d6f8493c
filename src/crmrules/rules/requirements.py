"""Stage requirements: the fields a deal (or its client) must have filled to enter a stage.

A stage declares ``requires: [deal.amount, client.inn]``; every path is checked
against the declared fields when the regulation loads. A deal entering that
stage (created in it, moved by the host, or moved by a rule's ``move_stage``)
with any of them empty is refused with the list of what is missing. The host
gets a ``StageRequirementsError``; a rule's move fails as that rule's failure
(see crmrules.failures), so the host's change and the other rules go on.

"Filled" means what ``is_empty: false`` means in a condition: not missing,
not ``null``, not ``""`` and not an empty set.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from crmrules.errors import RefusedError
from crmrules.model import Client, Deal, Pipeline, Stage
from crmrules.rules.conditions import _is_empty
from crmrules.rules.fields import FieldRegistry
from crmrules.rules.source import PathKey

#: The namespaces a requirement may name.
NAMESPACES = ("deal", "client")


class StageRequirementsError(RefusedError):
    """A deal cannot enter a stage: fields the stage requires are empty. Nothing changed."""

    def __init__(self, deal: str, pipeline: str, stage: str, missing: Sequence[str]) -> None:
        self.deal = deal
        self.pipeline = pipeline
        self.stage = stage
        #: the field paths that are empty, in the stage's order
        self.missing = tuple(missing)
        super().__init__(
            f"deal {deal}: cannot enter stage {stage} of pipeline {pipeline}: "
            f"{', '.join(self.missing)} must be filled first"
        )


def check_paths(
    registry: FieldRegistry,
    paths: Sequence[str],
    at: PathKey,
    error: Callable[[PathKey, str, str | None], None],
) -> tuple[str, ...]:
    """The declared paths of the ``requires`` list at ``at``; ``error`` reports the others."""
    good: list[str] = []
    for index, path in enumerate(paths):
        namespace = path.split(".", 1)[0]
        if namespace not in NAMESPACES or "." not in path:
            hint = "write e.g. deal.amount or client.inn"
            error((*at, index), f"requires: {path!r} is not a deal or client field", hint)
            continue
        if path not in registry:
            close = registry.suggest(path, namespace)
            hint = f"did you mean {close}?" if close else f"declare it under fields: as {path}"
            error((*at, index), f"requires: unknown field {path!r}", hint)
            continue
        if path in good:
            error((*at, index), f"requires: {path} is listed twice", None)
            continue
        good.append(path)
    return tuple(good)


def missing(stage: Stage, deal: Deal, client: Client | None) -> list[str]:
    """The paths ``stage`` requires that ``deal`` or its ``client`` leave empty."""
    records = {"deal": deal.record(), "client": client.record() if client else {}}
    found = []
    for path in stage.requires:
        namespace, key = path.split(".", 1)
        if _is_empty(records[namespace].get(key)):
            found.append(path)
    return found


def refuse_unfilled(
    pipeline: Pipeline, deal: Deal, old: Deal | None, client: Callable[[], Client | None]
) -> None:
    """Raise StageRequirementsError if ``deal`` enters a stage whose requirements are unmet."""
    if old is not None and old.stage == deal.stage:
        return
    stage = pipeline.stage(deal.stage)
    if stage is None or not stage.requires:
        return
    needs_client = any(path.startswith("client.") for path in stage.requires)
    unfilled = missing(stage, deal, client() if needs_client else None)
    if unfilled:
        raise StageRequirementsError(deal.id, pipeline.id, stage.id, unfilled)


__all__ = ["NAMESPACES", "StageRequirementsError", "check_paths", "missing", "refuse_unfilled"]
