"""Territory membership: which territories a client is in, and why.

A territory's ``when`` decides which clients belong, under three rules from
the spec: a child only takes clients its parent takes; among exclusive
siblings only the highest priority is kept; a manual add or remove wins over
the rule until it is cleared. Everything here is pure: the engine reads the
stored memberships, calls ``recompute`` and stores what it returns.

The stored list holds one entry per territory that has something to say:
the manual override (``MANUAL_ADD`` / ``MANUAL_REMOVE``) if there is one,
else a ``RULE`` entry if the rule makes the client a member. ``since`` is
when the client entered the territory (for a ``MANUAL_REMOVE``: when it was
removed), so contact plans can count from it. Overrides naming territories
that are no longer in the regulation are kept: they outlive rule changes and
apply again if the territory comes back.

See docs/territories-and-assignment.md for the choices made where the spec
is silent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from crmrules.model import Client, MembershipSource, TerritoryMembership
from crmrules.rules.conditions import Facts
from crmrules.rules.regulation import Regulation, Territory

_MANUAL = (MembershipSource.MANUAL_ADD, MembershipSource.MANUAL_REMOVE)


@dataclass(frozen=True)
class MembershipChange:
    """The outcome of recomputing one client's territories."""

    #: territory ids the client entered, in regulation order
    entered: tuple[str, ...]
    #: territory ids the client left, in regulation order (then ids no longer in it, sorted)
    left: tuple[str, ...]
    #: the new full list to store: rule-based members plus the manual overrides
    memberships: tuple[TerritoryMembership, ...]
    #: the client's territories after the change
    territories: frozenset[str]


def compute_territories(
    regulation: Regulation,
    facts: Facts,
    overrides: Mapping[str, MembershipSource],
    known: Mapping[str, bool] | None = None,
) -> frozenset[str]:
    """The territories of the regulation the client belongs to.

    ``overrides`` maps a territory id to MANUAL_ADD or MANUAL_REMOVE (RULE
    values are ignored). Each territory's condition is evaluated at most
    once, and only when its parent takes the client. ``known`` gives the
    conditions already decided elsewhere (by SQL, for a chunk of clients at
    once: crmrules.realign), by territory id; those are not evaluated.
    """
    return frozenset(_Membership(regulation, facts, overrides, known).members())


def recompute(
    regulation: Regulation,
    client: Client,
    facts: Facts,
    current: Sequence[TerritoryMembership],
    now: datetime,
    known: Mapping[str, bool] | None = None,
) -> MembershipChange:
    """The client's memberships after a change, relative to ``client.territories``.

    Memberships that continue keep their ``since``; new ones start at ``now``.
    ``known``: as for ``compute_territories``.
    """
    overrides = _overrides(current)
    territories = compute_territories(
        regulation, facts, {t: m.source for t, m in overrides.items()}, known
    )
    previous_since = {m.territory: m.since for m in current if m.source is MembershipSource.RULE}
    memberships: list[TerritoryMembership] = []
    for territory_id in regulation.territories:
        manual = overrides.get(territory_id)
        if manual is not None:
            memberships.append(manual)
        elif territory_id in territories:
            since = previous_since.get(territory_id, now)
            memberships.append(
                TerritoryMembership(
                    client=client.id,
                    territory=territory_id,
                    source=MembershipSource.RULE,
                    since=since,
                )
            )
    # Overrides outlive the territories they name; keep them, in their stored order.
    memberships.extend(m for t, m in overrides.items() if t not in regulation.territories)

    old = client.territories
    entered = tuple(t for t in regulation.territories if t in territories and t not in old)
    left = tuple(t for t in regulation.territories if t in old and t not in territories)
    gone = tuple(sorted(t for t in old if t not in regulation.territories))
    return MembershipChange(
        entered=entered,
        left=left + gone,
        memberships=tuple(memberships),
        territories=territories,
    )


def override(
    current: Sequence[TerritoryMembership],
    client_id: str,
    territory: str,
    source: MembershipSource,
    now: datetime,
) -> list[TerritoryMembership]:
    """``current`` with a manual add or remove for ``territory``, replacing any earlier one.

    The same override again changes nothing (its ``since`` stays). A manual
    add over a rule membership keeps the rule's ``since``: the client has
    been in the territory all along. Run ``recompute`` afterwards.
    """
    if source not in _MANUAL:
        raise ValueError(f"an override is manual_add or manual_remove, not {source.value}")
    existing = [m for m in current if m.territory == territory]
    if any(m.source is source for m in existing):
        return list(current)
    since = now
    if source is MembershipSource.MANUAL_ADD:
        since = next((m.since for m in existing if m.source is MembershipSource.RULE), now)
    entry = TerritoryMembership(client=client_id, territory=territory, source=source, since=since)
    return [m for m in current if m.territory != territory] + [entry]


def clear_override(
    current: Sequence[TerritoryMembership], territory: str
) -> list[TerritoryMembership]:
    """``current`` without the manual override for ``territory``; the rule decides again.

    A cleared manual add becomes a RULE entry with the same ``since``, so if
    the rule also takes the client, ``recompute`` keeps the membership
    unbroken; if it does not, ``recompute`` drops the entry and the client
    leaves. Run ``recompute`` afterwards.
    """
    result: list[TerritoryMembership] = []
    for m in current:
        if m.territory != territory or m.source is MembershipSource.RULE:
            result.append(m)
        elif m.source is MembershipSource.MANUAL_ADD:
            result.append(m.model_copy(update={"source": MembershipSource.RULE}))
    return result


def _overrides(current: Sequence[TerritoryMembership]) -> dict[str, TerritoryMembership]:
    """The manual entries by territory; if a territory has several, the last one wins."""
    found: dict[str, TerritoryMembership] = {}
    for m in current:
        if m.source in _MANUAL:
            found.pop(m.territory, None)
            found[m.territory] = m
    return found


class _Membership:
    """One client's membership, worked out territory by territory with memoisation.

    Territories may be listed before their parents, so membership is asked
    for recursively (parents first) rather than in one pass over the list.
    """

    def __init__(
        self,
        regulation: Regulation,
        facts: Facts,
        overrides: Mapping[str, MembershipSource],
        known: Mapping[str, bool] | None = None,
    ) -> None:
        self.territories = regulation.territories
        self.facts = facts
        self.known = known or {}
        self.overrides = {t: s for t, s in overrides.items() if s in _MANUAL}
        self.order = {t: i for i, t in enumerate(self.territories)}
        self.siblings: dict[str | None, list[Territory]] = {}
        for territory in self.territories.values():
            self.siblings.setdefault(territory.parent, []).append(territory)
        self.matched: dict[str, bool] = {}
        self.member: dict[str, bool] = {}

    def members(self) -> list[str]:
        return [t for t in self.territories if self.is_member(t)]

    def is_member(self, territory_id: str) -> bool:
        if territory_id not in self.member:
            self.member[territory_id] = self._decide(territory_id)
        return self.member[territory_id]

    def _decide(self, territory_id: str) -> bool:
        source = self.overrides.get(territory_id)
        if source is MembershipSource.MANUAL_ADD:
            return True
        if source is MembershipSource.MANUAL_REMOVE:
            return False
        territory = self.territories[territory_id]
        if not self._matches(territory):
            return False
        if not territory.exclusive:
            return True
        return self._exclusive_winner(territory) == territory_id

    def _matches(self, territory: Territory) -> bool:
        """The rule alone: the parent takes the client and the condition holds."""
        if territory.id not in self.matched:
            parent = territory.parent
            parent_ok = parent is None or (parent in self.territories and self.is_member(parent))
            self.matched[territory.id] = parent_ok and self._holds(territory)
        return self.matched[territory.id]

    def _holds(self, territory: Territory) -> bool:
        known = self.known.get(territory.id)
        return territory.condition(self.facts) if known is None else known

    def _exclusive_winner(self, territory: Territory) -> str | None:
        """Which of the exclusive siblings of ``territory`` keeps the client by rule.

        A manually added exclusive sibling wins outright (the admin chose it);
        otherwise the matching one with the highest priority, the first in
        regulation order on a tie. Siblings with an override do not compete
        by rule.
        """
        group = [t for t in self.siblings[territory.parent] if t.exclusive]
        if any(self.overrides.get(t.id) is MembershipSource.MANUAL_ADD for t in group):
            return None
        contenders = [t for t in group if t.id not in self.overrides and self._matches(t)]
        if not contenders:
            return None
        best = min(contenders, key=lambda t: (-t.priority, self.order[t.id]))
        return best.id


__all__ = [
    "MembershipChange",
    "clear_override",
    "compute_territories",
    "override",
    "recompute",
]
