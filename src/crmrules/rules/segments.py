"""Segments: named client lists by criteria, with manual additions and removals.

A segment's ``when`` decides which clients belong; ``add_to_segment`` /
``remove_from_segment`` (actions or host calls) override it until
``clear_segment_override``. Unlike territories, segments are flat: no
parents, no exclusive siblings, no managers or contact plans, and entering
or leaving one raises no event.

Memberships share the store's membership list with territories, each under
the key ``segment:<id>`` (a colon cannot occur in an id), so the list keeps
the manual overrides and the rule entries alike. The client's ``segments``
field holds the result, so ``{segment: id}`` conditions read it like any set
field (and run as SQL).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from crmrules.errors import Location
from crmrules.model import Client, MembershipSource, TerritoryMembership
from crmrules.rules.conditions import Condition, Facts

PREFIX = "segment:"
_MANUAL = (MembershipSource.MANUAL_ADD, MembershipSource.MANUAL_REMOVE)


@dataclass(frozen=True)
class Segment:
    id: str
    name: str | None
    condition: Condition
    location: Location | None


def key(segment_id: str) -> str:
    """The membership-list key of a segment."""
    return PREFIX + segment_id


def is_segment(membership: TerritoryMembership) -> bool:
    return membership.territory.startswith(PREFIX)


def split(
    memberships: Sequence[TerritoryMembership],
) -> tuple[list[TerritoryMembership], list[TerritoryMembership]]:
    """(territory entries, segment entries) of a stored membership list."""
    return (
        [m for m in memberships if not is_segment(m)],
        [m for m in memberships if is_segment(m)],
    )


def members(memberships: Sequence[TerritoryMembership]) -> frozenset[str]:
    """The segment ids a stored list makes the client a member of."""
    return frozenset(
        m.territory[len(PREFIX) :]
        for m in memberships
        if is_segment(m) and m.source is not MembershipSource.MANUAL_REMOVE
    )


def recompute(
    segments: Mapping[str, Segment],
    client: Client,
    facts: Facts,
    current: Sequence[TerritoryMembership],
    now: datetime,
    known: Mapping[str, bool] | None = None,
) -> list[TerritoryMembership]:
    """The client's segment entries after a change: overrides kept, rule entries recomputed.

    Overrides naming segments no longer in the regulation are kept, as for territories.
    ``known`` gives the conditions already decided elsewhere (by SQL), by segment id.
    """
    decided = known or {}
    manual: dict[str, TerritoryMembership] = {}
    since: dict[str, datetime] = {}
    for m in current:
        if not is_segment(m):
            continue
        if m.source in _MANUAL:
            manual[m.territory] = m
        else:
            since[m.territory] = m.since
    result: list[TerritoryMembership] = []
    for segment in segments.values():
        name = key(segment.id)
        if name in manual:
            result.append(manual.pop(name))
        elif decided[segment.id] if segment.id in decided else segment.condition(facts):
            result.append(
                TerritoryMembership(
                    client=client.id,
                    territory=name,
                    source=MembershipSource.RULE,
                    since=since.get(name, now),
                )
            )
    result.extend(manual.values())
    return result


__all__ = ["PREFIX", "Segment", "is_segment", "key", "members", "recompute", "split"]
