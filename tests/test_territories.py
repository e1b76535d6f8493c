"""Territory membership: hierarchy, exclusive siblings, manual overrides, entered/left/since."""

from __future__ import annotations

import textwrap
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from crmrules.adapters.memory import MemoryStore
from crmrules.model import Client, MembershipSource, TerritoryMembership
from crmrules.rules.conditions import Facts
from crmrules.rules.regulation import Regulation, load_regulation
from crmrules.rules.territories import (
    MembershipChange,
    clear_override,
    compute_territories,
    override,
    recompute,
)

MSK = ZoneInfo("Europe/Moscow")
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=MSK)
T1 = T0 + timedelta(days=1)
T2 = T0 + timedelta(days=2)
ADD = MembershipSource.MANUAL_ADD
REMOVE = MembershipSource.MANUAL_REMOVE
RULE = MembershipSource.RULE

REGIONS = """\
version: 1
fields:
  client.employees: {type: integer}
territories:
  - id: ru
    name: Россия
    when: {field: client.country, eq: RU}
  - id: msk
    name: Москва и область
    parent: ru
    when: {field: client.region, in: [Москва, Московская область]}
  - id: msk-enterprise
    parent: msk
    priority: 10
    when: {field: client.employees, gte: 250}
  - id: msk-all
    parent: msk                 # no when: every client msk takes
  - id: spb
    parent: ru
    when: {field: client.region, eq: Санкт-Петербург}
"""


def regulation(tmp_path: Path, text: str, name: str = "regulation.yaml") -> Regulation:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return load_regulation(path)


def client(client_id: str = "c1", **values: Any) -> Client:
    employees = values.pop("employees", None)
    fields = {} if employees is None else {"employees": employees}
    values = {"country": "RU", **values}
    return Client(id=client_id, name="ООО Ромашка", fields=fields, **values)


def facts(c: Client, now: datetime = T0) -> Facts:
    return Facts({"client": c.record()}, now)


def territories_of(
    reg: Regulation, c: Client, overrides: dict[str, MembershipSource] | None = None
) -> set[str]:
    return set(compute_territories(reg, facts(c), overrides or {}))


def stored(store: MemoryStore, reg: Regulation, c: Client, now: datetime) -> MembershipChange:
    """What the engine does when a client is stored: recompute, then keep the result."""
    with store.transaction() as tx:
        current = tx.memberships(c.id)
        old = tx.get_client(c.id)
        previous = c if old is None else c.model_copy(update={"territories": old.territories})
        change = recompute(reg, previous, facts(c, now), current, now)
        tx.set_memberships(c.id, list(change.memberships))
        tx.put_client(c.model_copy(update={"territories": change.territories}))
    return change


def memberships(store: MemoryStore, client_id: str = "c1") -> list[tuple[str, str, datetime]]:
    with store.transaction() as tx:
        return [(m.territory, m.source.value, m.since) for m in tx.memberships(client_id)]


# --- hierarchy ---------------------------------------------------------------------------------


def test_a_child_only_takes_clients_its_parent_takes(tmp_path: Path) -> None:
    reg = regulation(tmp_path, REGIONS)
    big_moscow = client(region="Москва", employees=300)
    assert territories_of(reg, big_moscow) == {"ru", "msk", "msk-enterprise", "msk-all"}
    # Big, but in Kazan: msk-enterprise's own condition holds, its parent's does not.
    big_kazan = client(region="Казань", employees=300)
    assert territories_of(reg, big_kazan) == {"ru"}
    # Moscow region but not Russia (grandparent) -> nothing below ru either.
    abroad = client(region="Москва", employees=300, country="KZ")
    assert territories_of(reg, abroad) == set()


def test_a_territory_without_when_takes_every_client_its_parent_takes(tmp_path: Path) -> None:
    reg = regulation(tmp_path, REGIONS)
    assert "msk-all" in territories_of(reg, client(region="Московская область"))
    assert "msk-all" not in territories_of(reg, client(region="Санкт-Петербург"))
    top = regulation(
        tmp_path, "version: 1\nterritories:\n  - {id: все, name: Все клиенты}\n", "top.yaml"
    )
    assert territories_of(top, client(country=None)) == {"все"}


def test_a_child_listed_before_its_parent_still_needs_the_parent(tmp_path: Path) -> None:
    reg = regulation(
        tmp_path,
        """
        version: 1
        territories:
          - {id: msk-city, parent: msk, when: {field: client.city, eq: Москва}}
          - {id: msk, when: {field: client.region, eq: Москва}}
        """,
    )
    assert territories_of(reg, client(region="Москва", city="Москва")) == {"msk", "msk-city"}
    assert territories_of(reg, client(region="Тверь", city="Москва")) == set()


# --- exclusive siblings ----------------------------------------------------------------------

EXCLUSIVE = """\
version: 1
fields:
  client.employees: {type: integer}
territories:
  - id: msk
    when: {field: client.region, eq: Москва}
  - id: msk-smb
    parent: msk
    exclusive: true
    priority: 1
    when: {field: client.employees, lt: 1000}
  - id: msk-enterprise
    parent: msk
    exclusive: true
    priority: 10
    when: {field: client.employees, gte: 100}
  - id: msk-enterprise-it
    parent: msk-enterprise
    when: {field: client.industry, eq: IT}
  - id: msk-smb-it
    parent: msk-smb
    when: {field: client.industry, eq: IT}
  - id: msk-partners
    parent: msk
    priority: 100               # not exclusive: unaffected
    when: {field: client.tags, contains: partner}
  - id: regions-a
    exclusive: true
    when: {field: client.industry, eq: IT}
  - id: regions-b
    exclusive: true
    when: {field: client.industry, eq: IT}
"""


def test_exclusive_siblings_keep_only_the_highest_priority(tmp_path: Path) -> None:
    reg = regulation(tmp_path, EXCLUSIVE)
    both = client(region="Москва", employees=500, industry="Retail", tags=frozenset({"partner"}))
    assert territories_of(reg, both) == {"msk", "msk-enterprise", "msk-partners"}
    small = client(region="Москва", employees=50)
    assert territories_of(reg, small) == {"msk", "msk-smb"}


def test_a_dropped_exclusive_territory_takes_its_children_with_it(tmp_path: Path) -> None:
    reg = regulation(tmp_path, EXCLUSIVE)
    c = client(region="Москва", employees=500, industry="IT")
    found = territories_of(reg, c)
    assert "msk-enterprise-it" in found
    assert "msk-smb" not in found
    assert "msk-smb-it" not in found


def test_exclusive_ties_go_to_the_first_in_regulation_order(tmp_path: Path) -> None:
    reg = regulation(tmp_path, EXCLUSIVE)
    c = client(region="Тверь", industry="IT")
    assert territories_of(reg, c) == {"regions-a"}


def test_exclusive_only_applies_between_siblings(tmp_path: Path) -> None:
    # regions-a (exclusive, top level) and msk-enterprise (exclusive, under msk)
    # are not siblings, so one does not push the other out.
    reg = regulation(tmp_path, EXCLUSIVE)
    c = client(region="Москва", employees=500, industry="IT")
    assert {"regions-a", "msk-enterprise", "msk-enterprise-it"} <= territories_of(reg, c)


# --- manual overrides ------------------------------------------------------------------------


def test_manual_add_wins_over_the_condition_without_forcing_the_parent(tmp_path: Path) -> None:
    reg = regulation(tmp_path, REGIONS)
    kazan = client(region="Казань", employees=10)
    assert territories_of(reg, kazan, {"msk-enterprise": ADD}) == {"ru", "msk-enterprise"}


def test_manual_remove_wins_and_takes_the_children_unless_they_are_added(tmp_path: Path) -> None:
    reg = regulation(tmp_path, REGIONS)
    c = client(region="Москва", employees=300)
    assert territories_of(reg, c, {"msk": REMOVE}) == {"ru"}
    assert territories_of(reg, c, {"msk": REMOVE, "msk-all": ADD}) == {"ru", "msk-all"}


def test_manual_add_on_an_exclusive_sibling_beats_the_priority(tmp_path: Path) -> None:
    reg = regulation(tmp_path, EXCLUSIVE)
    c = client(region="Москва", employees=500)
    assert territories_of(reg, c) == {"msk", "msk-enterprise"}
    assert territories_of(reg, c, {"msk-smb": ADD}) == {"msk", "msk-smb"}
    # A manual remove of the winner hands the client to the next one by priority.
    assert territories_of(reg, c, {"msk-enterprise": REMOVE}) == {"msk", "msk-smb"}


def test_override_replaces_an_earlier_one_and_clear_lets_the_rule_decide(tmp_path: Path) -> None:
    reg = regulation(tmp_path, REGIONS)
    store = MemoryStore()
    c = client(region="Москва", employees=10)
    assert stored(store, reg, c, T0).territories == {"ru", "msk", "msk-all"}

    with store.transaction() as tx:
        tx.set_memberships("c1", override(tx.memberships("c1"), "c1", "msk", REMOVE, T1))
    change = stored(store, reg, c, T1)
    assert change.territories == {"ru"}
    assert change.left == ("msk", "msk-all")
    assert change.entered == ()

    with store.transaction() as tx:
        current = tx.memberships("c1")
        assert [m.source for m in current if m.territory == "msk"] == [REMOVE]
        tx.set_memberships("c1", override(current, "c1", "msk", ADD, T2))
        assert [m.source for m in tx.memberships("c1") if m.territory == "msk"] == [ADD]
    assert stored(store, reg, c, T2).entered == ("msk", "msk-all")

    with store.transaction() as tx:
        tx.set_memberships("c1", clear_override(tx.memberships("c1"), "msk"))
    moved = c.model_copy(update={"region": "Тверь"})
    change = stored(store, reg, moved, T2)
    assert change.territories == {"ru"}
    assert change.left == ("msk", "msk-all")
    assert all(m.source is RULE for m in change.memberships)


def test_the_same_override_twice_keeps_its_since() -> None:
    first = override([], "c1", "msk", REMOVE, T0)
    again = override(first, "c1", "msk", REMOVE, T1)
    assert again == first
    assert again[0].since == T0


def test_an_override_must_be_manual() -> None:
    with pytest.raises(ValueError, match="manual_add or manual_remove"):
        override([], "c1", "msk", RULE, T0)


def test_clearing_a_manual_add_keeps_since_when_the_rule_also_holds(tmp_path: Path) -> None:
    reg = regulation(tmp_path, REGIONS)
    store = MemoryStore()
    c = client(region="Москва")
    stored(store, reg, c, T0)
    with store.transaction() as tx:
        tx.set_memberships("c1", override(tx.memberships("c1"), "c1", "msk", ADD, T1))
    stored(store, reg, c, T1)
    assert ("msk", "manual_add", T0) in memberships(store)  # a member since T0 all along
    with store.transaction() as tx:
        tx.set_memberships("c1", clear_override(tx.memberships("c1"), "msk"))
    change = stored(store, reg, c, T2)
    assert change.entered == change.left == ()
    assert ("msk", "rule", T0) in memberships(store)


def test_clearing_an_override_that_is_not_there_changes_nothing() -> None:
    current = override([], "c1", "msk", ADD, T0)
    assert clear_override(current, "spb") == current


# --- overrides outlive regulation changes ----------------------------------------------------


def test_overrides_survive_a_regulation_without_their_territory(tmp_path: Path) -> None:
    with_spb = regulation(tmp_path, REGIONS)
    without_spb = regulation(
        tmp_path,
        """
        version: 1
        territories:
          - {id: ru, when: {field: client.country, eq: RU}}
        """,
        "v2.yaml",
    )
    store = MemoryStore()
    c = client(region="Москва")
    with store.transaction() as tx:
        tx.set_memberships("c1", override([], "c1", "spb", ADD, T0))
    assert stored(store, with_spb, c, T0).territories == {"ru", "msk", "msk-all", "spb"}

    change = stored(store, without_spb, c, T1)
    assert change.territories == {"ru"}
    assert change.left == ("msk", "msk-all", "spb")  # territories gone from the regulation
    assert ("spb", "manual_add", T0) in memberships(store)  # kept, ignored

    change = stored(store, with_spb, c, T2)
    assert change.territories == {"ru", "msk", "msk-all", "spb"}
    assert change.entered == ("msk", "msk-all", "spb")


def test_an_override_for_an_unknown_territory_is_ignored_in_the_computed_set(
    tmp_path: Path,
) -> None:
    reg = regulation(tmp_path, REGIONS)
    assert territories_of(reg, client(region="Тверь"), {"ekb": ADD}) == {"ru"}


# --- entered, left, since --------------------------------------------------------------------


def test_entered_left_and_since(tmp_path: Path) -> None:
    reg = regulation(tmp_path, REGIONS)
    store = MemoryStore()
    c = client(region="Москва", employees=100)

    change = stored(store, reg, c, T0)
    assert change.entered == ("ru", "msk", "msk-all")
    assert change.left == ()
    assert memberships(store) == [
        ("ru", "rule", T0),
        ("msk", "rule", T0),
        ("msk-all", "rule", T0),
    ]

    grown = c.model_copy(update={"fields": {"employees": 400}})
    change = stored(store, reg, grown, T1)
    assert change.entered == ("msk-enterprise",)
    assert change.left == ()
    assert memberships(store) == [
        ("ru", "rule", T0),
        ("msk", "rule", T0),
        ("msk-enterprise", "rule", T1),
        ("msk-all", "rule", T0),
    ]

    moved = grown.model_copy(update={"region": "Санкт-Петербург"})
    change = stored(store, reg, moved, T2)
    assert change.entered == ("spb",)
    assert change.left == ("msk", "msk-enterprise", "msk-all")
    assert memberships(store) == [("ru", "rule", T0), ("spb", "rule", T2)]


def test_recompute_with_nothing_changed_is_quiet(tmp_path: Path) -> None:
    reg = regulation(tmp_path, REGIONS)
    store = MemoryStore()
    c = client(region="Москва")
    stored(store, reg, c, T0)
    before = memberships(store)
    change = stored(store, reg, c, T2)
    assert (change.entered, change.left) == ((), ())
    assert memberships(store) == before


def test_memberships_list_rule_entries_and_overrides_in_regulation_order(tmp_path: Path) -> None:
    reg = regulation(tmp_path, REGIONS)
    c = client(region="Москва")
    current = [
        TerritoryMembership(client="c1", territory="legacy", source=REMOVE, since=T0),
        TerritoryMembership(client="c1", territory="msk-all", source=REMOVE, since=T0),
        TerritoryMembership(client="c1", territory="spb", source=ADD, since=T0),
    ]
    change = recompute(reg, c, facts(c), current, T1)
    assert [(m.territory, m.source) for m in change.memberships] == [
        ("ru", RULE),
        ("msk", RULE),
        ("msk-all", REMOVE),
        ("spb", ADD),
        ("legacy", REMOVE),
    ]
    assert change.territories == {"ru", "msk", "spb"}
    assert change.entered == ("ru", "msk", "spb")
