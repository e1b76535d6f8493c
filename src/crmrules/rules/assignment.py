"""Picking a manager: round robin, least loaded, by skill, or by the client's territory.

``assign`` is deterministic: the same store and arguments give the same
manager, and the only state it keeps is a round-robin counter per rotation
key in the store. Managers come from the store, falling back to the
regulation's ``managers`` (declared there for tests and small setups).
Inactive, absent (crmrules.people) and unknown managers are skipped; the
reason says so.

See docs/territories-and-assignment.md for the choices made where the spec
is silent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction

from crmrules.model import Absence, Client, Manager, TaskStatus
from crmrules.people import away, describe
from crmrules.rules.regulation import Regulation, Territory
from crmrules.store import Transaction

#: The capacity an unlimited manager is compared as: busy people still count as busy.
UNLIMITED = 1_000_000
#: How many managers a "nobody fits" reason names before "N more".
MAX_REASONS = 8
STRATEGIES = ("round_robin", "least_loaded", "by_skill", "territory")


@dataclass(frozen=True)
class Assignment:
    """The manager picked (None if nobody fits) and why, for the audit log."""

    manager: Manager | None
    reason: str
    #: the fallback was taken because nobody fitted (the reason says why)
    fallback: bool = False


def assign(
    tx: Transaction,
    regulation: Regulation,
    *,
    strategy: str,
    among: Sequence[str] | str | None,
    skills: Sequence[str],
    fallback: str | None,
    client: Client,
    rotation_key: str,
    now: datetime | None = None,
) -> Assignment:
    """Pick a manager for ``client`` by ``strategy``; ``fallback`` when nobody fits.

    ``among`` is a list of manager ids, a territory id (its managers), or
    None: the client's territories for ``territory``, every manager otherwise.
    ``skills`` narrows the pool for every strategy (``by_skill`` needs it).
    Managers away at ``now`` are skipped (the fallback too).
    """
    picker = _Picker(tx, regulation, now)
    pick = picker.pick(strategy, among, tuple(skills), client, rotation_key)
    if pick.manager is not None or fallback is None:
        return pick
    manager = picker.find(fallback)
    if manager is None:
        return Assignment(None, f"{pick.reason}; fallback {fallback} is unknown")
    if not manager.active:
        return Assignment(None, f"{pick.reason}; fallback {fallback} is inactive")
    absence = picker.away(manager)
    if absence is not None:
        return Assignment(None, f"{pick.reason}; fallback {fallback} is {describe(absence)}")
    return Assignment(manager, f"{pick.reason}; fallback {fallback}", fallback=True)


class _Picker:
    """One assignment's view of the managers, read once from the store."""

    def __init__(self, tx: Transaction, regulation: Regulation, now: datetime | None) -> None:
        self.tx = tx
        self.regulation = regulation
        self.now = now
        self._found: dict[str, Manager | None] = {}

    def away(self, manager: Manager) -> Absence | None:
        """The absence the manager is in now (never, without a ``now``)."""
        if self.now is None:
            return None
        return away(manager, self.now, self.regulation.calendar)

    def find(self, manager_id: str) -> Manager | None:
        """The store's manager, else the regulation's, else None."""
        if manager_id not in self._found:
            manager = self.tx.get_manager(manager_id) or self.regulation.managers.get(manager_id)
            self._found[manager_id] = manager
        return self._found[manager_id]

    def all_ids(self) -> list[str]:
        """Every manager id the store or the regulation knows, sorted (stores list differently)."""
        ids = {m.id for m in self.tx.list_managers()} | set(self.regulation.managers)
        return sorted(ids)

    def territory_ids(self, territory: Territory) -> list[str]:
        """The territory's managers as listed, then managers who name it, by id."""
        listed = list(territory.managers)
        others = [
            manager_id
            for manager_id in self.all_ids()
            if manager_id not in listed
            and (found := self.find(manager_id)) is not None
            and territory.id in found.territories
        ]
        return listed + others

    # -- the strategies

    def pick(
        self,
        strategy: str,
        among: Sequence[str] | str | None,
        skills: tuple[str, ...],
        client: Client,
        rotation_key: str,
    ) -> Assignment:
        if strategy not in STRATEGIES:
            return Assignment(None, f"unknown strategy {strategy!r}")
        if strategy == "territory":
            return self._territory(among, skills, client, rotation_key)
        if isinstance(among, str):
            territory = self.regulation.territories.get(among)
            if territory is None:
                return Assignment(None, f"{_label(strategy, skills)}: unknown territory {among}")
            ids = self.territory_ids(territory)
        elif among is None:
            ids = self.all_ids()
        else:
            ids = list(among)
        return self._by(strategy, ids, skills, rotation_key)

    def _by(
        self, strategy: str, ids: Sequence[str], skills: tuple[str, ...], rotation_key: str
    ) -> Assignment:
        """Run ``strategy`` over the pool ``ids`` (in order, duplicates dropped)."""
        pool = list(dict.fromkeys(ids))
        unknown = [i for i in pool if self.find(i) is None]
        if strategy == "round_robin":
            pick = self._round_robin(pool, skills, rotation_key)
        else:
            pick = self._least_loaded(pool, skills, _label(strategy, skills))
        if not unknown:
            return pick
        skipped = f"unknown managers skipped: {', '.join(unknown)}"
        return Assignment(pick.manager, f"{pick.reason}; {skipped}")

    def _eligible(self, manager_id: str, skills: tuple[str, ...]) -> Manager | None:
        manager = self.find(manager_id)
        if manager is None or not manager.active or not _has_skills(manager, skills):
            return None
        return None if self.away(manager) is not None else manager

    def _nobody(self, pool: list[str], skills: tuple[str, ...]) -> str:
        """Why no one in ``pool`` fits: each manager's missing skills or inactivity."""
        if not pool:
            return "no managers to choose from"
        reasons: list[str] = []
        for manager_id in pool:
            manager = self.find(manager_id)
            absence = None if manager is None else self.away(manager)
            if absence is not None:
                reasons.append(f"{manager_id} is {describe(absence)}")
        if not skills:
            away_too = f" ({'; '.join(reasons)})" if reasons else ""
            return f"no active manager among {', '.join(pool)}{away_too}"
        reasons = []
        for manager_id in pool:
            manager = self.find(manager_id)
            if manager is None:
                continue  # listed as skipped by _by
            have = {s.casefold() for s in manager.skills}
            missing = [s for s in skills if s.casefold() not in have]
            if missing:
                reasons.append(f"{manager.id} lacks {', '.join(missing)}")
            elif not manager.active:
                reasons.append(f"{manager.id} is inactive")
            elif (absence := self.away(manager)) is not None:
                reasons.append(f"{manager.id} is {describe(absence)}")
        if len(reasons) > MAX_REASONS:
            reasons[MAX_REASONS:] = [f"{len(reasons) - MAX_REASONS} more"]
        return "no active manager has all skills" + (f" ({'; '.join(reasons)})" if reasons else "")

    def _round_robin(
        self, pool: list[str], skills: tuple[str, ...], rotation_key: str
    ) -> Assignment:
        """The next eligible manager after the last turn, counting over the whole pool.

        The counter counts positions, not people: an inactive manager's turn
        passes to the next one, and the counter moves past it, so the others
        keep alternating fairly. It keeps going when the pool changes size.
        """
        label = _label("round_robin", skills)
        eligible = [i for i in pool if self._eligible(i, skills) is not None]
        if not eligible:
            return Assignment(None, f"{label}: {self._nobody(pool, skills)}")
        counter = self.tx.get_rotation(rotation_key)
        for step in range(len(pool)):
            manager = self._eligible(pool[(counter + step) % len(pool)], skills)
            if manager is not None:
                turn = counter + step + 1
                self.tx.set_rotation(rotation_key, turn)
                return Assignment(
                    manager, f"{label} among {', '.join(eligible)}: {manager.id} (turn {turn})"
                )
        raise AssertionError("an eligible manager is in the pool")  # pragma: no cover

    def _least_loaded(self, pool: list[str], skills: tuple[str, ...], label: str) -> Assignment:
        """The eligible manager with the fewest open tasks for their capacity.

        Ordered by open tasks / capacity (unlimited counts as UNLIMITED), then
        by open tasks, then by pool order. Managers at or over capacity are
        skipped.
        """
        full: list[str] = []
        best: tuple[tuple[Fraction, int, int], Manager, int] | None = None
        for index, manager_id in enumerate(pool):
            manager = self._eligible(manager_id, skills)
            if manager is None:
                continue
            load = len(self.tx.find_tasks(assignee=manager.id, status=TaskStatus.OPEN))
            if manager.capacity is not None and load >= manager.capacity:
                full.append(f"{manager.id} {load} of {manager.capacity}")
                continue
            key = (Fraction(load, manager.capacity or UNLIMITED), load, index)
            if best is None or key < best[0]:
                best = (key, manager, load)
        if best is None:
            if full:
                return Assignment(None, f"{label}: everyone is at capacity ({', '.join(full)})")
            return Assignment(None, f"{label}: {self._nobody(pool, skills)}")
        _, manager, load = best
        return Assignment(manager, f"{label}: {manager.id} ({_load(load, manager.capacity)})")

    def _territory(
        self,
        among: Sequence[str] | str | None,
        skills: tuple[str, ...],
        client: Client,
        rotation_key: str,
    ) -> Assignment:
        """Pick by a territory's own strategy: the named one, or the client's deepest.

        Without ``among``, the client's territories are tried deepest first
        (each deepest one in regulation order, then up its parents); the
        first with an eligible manager decides.
        """
        if among is not None and not isinstance(among, str):
            return self._by("round_robin", among, skills, rotation_key)
        if among is not None:
            if among not in self.regulation.territories:
                return Assignment(None, f"territory: unknown territory {among}")
            candidates = [self.regulation.territories[among]]
        else:
            candidates = _deepest_first(self.regulation, client.territories)
            if not candidates:
                return Assignment(None, "territory: the client is in no territory")
        for territory in candidates:
            ids = self.territory_ids(territory)
            if any(self._eligible(i, skills) is not None for i in ids):
                strategy = territory.strategy if territory.strategy != "territory" else None
                pick = self._by(strategy or "round_robin", ids, skills, f"territory:{territory.id}")
                return Assignment(pick.manager, f"territory {territory.id}, {pick.reason}")
        names = ", ".join(t.id for t in candidates)
        what = "active manager" + (f" with skills [{', '.join(skills)}]" if skills else "")
        return Assignment(None, f"territory: no {what} in {names}")


def _deepest_first(regulation: Regulation, client_territories: frozenset[str]) -> list[Territory]:
    """The client's territories, most specific first.

    A territory is deepest when none of its descendants is one of the
    client's; each deepest one (in regulation order) is followed by its
    ancestors the client is in, so a team higher up is the next resort.
    """
    mine = [t for t in regulation.territories.values() if t.id in client_territories]
    parents_of_mine: set[str] = set()
    for territory in mine:
        parent = territory.parent
        while parent is not None and parent not in parents_of_mine:
            parents_of_mine.add(parent)
            above = regulation.territories.get(parent)
            parent = above.parent if above is not None else None
    ordered: dict[str, Territory] = {}
    for territory in mine:
        if territory.id in parents_of_mine:
            continue
        current: Territory | None = territory
        while current is not None:
            if current.id in client_territories:
                ordered.setdefault(current.id, current)
            current = regulation.territories.get(current.parent) if current.parent else None
    return list(ordered.values())


def _has_skills(manager: Manager, skills: tuple[str, ...]) -> bool:
    """All of ``skills``, compared case-insensitively (admins write B2B and b2b alike)."""
    have = {s.casefold() for s in manager.skills}
    return all(s.casefold() in have for s in skills)


def _label(strategy: str, skills: tuple[str, ...]) -> str:
    name = strategy.replace("_", " ")
    if strategy == "by_skill":
        return f"by skill [{', '.join(skills)}]"
    return f"{name} with skills [{', '.join(skills)}]" if skills else name


def _load(load: int, capacity: int | None) -> str:
    tasks = "open task" if load == 1 else "open tasks"
    if capacity is None:
        return f"{load} {tasks}, no capacity limit"
    return f"{load} of {capacity} {'open tasks' if capacity != 1 else 'open task'}"


__all__ = ["STRATEGIES", "UNLIMITED", "Assignment", "assign"]
