"""Picking a manager: round robin, least loaded, by skill, territory, fallback, unknown ids."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import pytest

from crmrules.adapters.memory import MemoryStore
from crmrules.model import Client, Manager, Task, TaskStatus
from crmrules.rules.assignment import Assignment, assign
from crmrules.rules.regulation import Regulation, load_regulation

TEAM = """\
version: 1
managers:
  - {id: ivanov, name: Иван Иванов, skills: [b2b, enterprise], capacity: 10}
  - {id: petrova, name: Мария Петрова, skills: [b2b], capacity: 20}
  - {id: sidorov, name: Пётр Сидоров, skills: [retail]}
  - {id: kuznetsova, name: Анна Кузнецова, territories: [msk]}
territories:
  - id: msk
    name: Москва и область
    when: {field: client.region, in: [Москва, Московская область]}
    managers: [sidorov]
    strategy: least_loaded
  - id: msk-enterprise
    parent: msk
    when: {field: client.tags, contains: enterprise}
    managers: [ivanov, petrova]
  - id: spb
    when: {field: client.region, eq: Санкт-Петербург}
"""


def regulation(tmp_path: Path, text: str = TEAM) -> Regulation:
    path = tmp_path / "regulation.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return load_regulation(path)


def moscow_client(*territories: str) -> Client:
    return Client(id="c1", name="ООО Ромашка", region="Москва", territories=frozenset(territories))


def pick(
    store: MemoryStore,
    reg: Regulation,
    strategy: str,
    among: Sequence[str] | str | None = None,
    *,
    skills: Sequence[str] = (),
    fallback: str | None = None,
    client: Client | None = None,
    key: str = "rule:r1:0",
) -> Assignment:
    with store.transaction() as tx:
        return assign(
            tx,
            reg,
            strategy=strategy,
            among=among,
            skills=skills,
            fallback=fallback,
            client=client or moscow_client(),
            rotation_key=key,
        )


def picked(assignment: Assignment) -> str | None:
    return None if assignment.manager is None else assignment.manager.id


def put_manager(store: MemoryStore, manager_id: str, **values: object) -> None:
    with store.transaction() as tx:
        tx.put_manager(Manager.model_validate({"id": manager_id, **values}))


def give_tasks(store: MemoryStore, manager_id: str, count: int, *, done: int = 0) -> None:
    with store.transaction() as tx:
        for n in range(count + done):
            status = TaskStatus.OPEN if n < count else TaskStatus.DONE
            tx.add_task(
                Task(
                    id=f"{manager_id}-{n}",
                    kind="call",
                    title="Позвонить клиенту",
                    assignee=manager_id,
                    status=status,
                )
            )


# --- round robin ------------------------------------------------------------------------------


def test_round_robin_rotates_across_calls(tmp_path: Path) -> None:
    reg, store = regulation(tmp_path), MemoryStore()
    team = ["ivanov", "petrova", "sidorov"]
    first = pick(store, reg, "round_robin", team)
    assert first.reason == "round robin among ivanov, petrova, sidorov: ivanov (turn 1)"
    rest = [picked(pick(store, reg, "round_robin", team)) for _ in range(4)]
    assert rest == ["petrova", "sidorov", "ivanov", "petrova"]
    with store.transaction() as tx:
        assert tx.get_rotation("rule:r1:0") == 5


def test_round_robin_keys_rotate_independently(tmp_path: Path) -> None:
    reg, store = regulation(tmp_path), MemoryStore()
    team = ["ivanov", "petrova"]
    assert picked(pick(store, reg, "round_robin", team, key="a")) == "ivanov"
    assert picked(pick(store, reg, "round_robin", team, key="b")) == "ivanov"
    assert picked(pick(store, reg, "round_robin", team, key="a")) == "petrova"


def test_round_robin_skips_a_manager_who_became_inactive(tmp_path: Path) -> None:
    reg, store = regulation(tmp_path), MemoryStore()
    team = ["ivanov", "petrova", "sidorov"]
    assert picked(pick(store, reg, "round_robin", team)) == "ivanov"
    # The store's record wins over the regulation's: petrova is on leave.
    put_manager(store, "petrova", name="Мария Петрова", active=False)
    following = [pick(store, reg, "round_robin", team) for _ in range(4)]
    assert [picked(a) for a in following] == ["sidorov", "ivanov", "sidorov", "ivanov"]
    assert following[0].reason == "round robin among ivanov, sidorov: sidorov (turn 3)"


def test_round_robin_counter_keeps_going_when_the_pool_changes(tmp_path: Path) -> None:
    reg, store = regulation(tmp_path), MemoryStore()
    for _ in range(2):
        pick(store, reg, "round_robin", ["ivanov", "petrova"])
    # The counter is 2; a third manager joins: 2 % 3 -> the third one.
    assert picked(pick(store, reg, "round_robin", ["ivanov", "petrova", "sidorov"])) == "sidorov"


def test_round_robin_with_nobody_active_leaves_the_counter(tmp_path: Path) -> None:
    reg, store = regulation(tmp_path), MemoryStore()
    put_manager(store, "ivanov", active=False)
    result = pick(store, reg, "round_robin", ["ivanov"])
    assert result.manager is None
    assert result.reason == "round robin: no active manager among ivanov"
    with store.transaction() as tx:
        assert tx.get_rotation("rule:r1:0") == 0


def test_without_among_every_manager_is_in_the_pool_by_id(tmp_path: Path) -> None:
    reg, store = regulation(tmp_path), MemoryStore()
    put_manager(store, "alexeev", name="Алексей Алексеев")  # only in the store
    result = pick(store, reg, "round_robin")
    assert result.reason == (
        "round robin among alexeev, ivanov, kuznetsova, petrova, sidorov: alexeev (turn 1)"
    )


def test_round_robin_among_a_territory_uses_its_managers(tmp_path: Path) -> None:
    reg, store = regulation(tmp_path), MemoryStore()
    picks = [picked(pick(store, reg, "round_robin", "msk-enterprise")) for _ in range(3)]
    assert picks == ["ivanov", "petrova", "ivanov"]
    with store.transaction() as tx:
        assert tx.get_rotation("rule:r1:0") == 3  # the rule's own counter
        assert tx.get_rotation("territory:msk-enterprise") == 0


# --- least loaded -----------------------------------------------------------------------------


def test_least_loaded_counts_open_tasks_against_capacity(tmp_path: Path) -> None:
    reg, store = regulation(tmp_path), MemoryStore()
    give_tasks(store, "ivanov", 3, done=5)  # 3 of 10 = 0.3; done tasks do not count
    give_tasks(store, "petrova", 4)  # 4 of 20 = 0.2
    result = pick(store, reg, "least_loaded", ["ivanov", "petrova"])
    assert picked(result) == "petrova"
    assert result.reason == "least loaded: petrova (4 of 20 open tasks)"


def test_least_loaded_skips_managers_at_capacity(tmp_path: Path) -> None:
    reg, store = regulation(tmp_path), MemoryStore()
    give_tasks(store, "ivanov", 10)  # full
    give_tasks(store, "petrova", 19)
    assert picked(pick(store, reg, "least_loaded", ["ivanov", "petrova"])) == "petrova"
    give_tasks(store, "petrova", 20)
    result = pick(store, reg, "least_loaded", ["ivanov", "petrova"])
    assert result.manager is None
    assert result.reason == (
        "least loaded: everyone is at capacity (ivanov 10 of 10, petrova 20 of 20)"
    )


def test_least_loaded_ties_go_to_fewer_tasks_then_pool_order(tmp_path: Path) -> None:
    reg, store = regulation(tmp_path), MemoryStore()
    give_tasks(store, "ivanov", 1)  # 1 of 10 = 0.1
    give_tasks(store, "petrova", 2)  # 2 of 20 = 0.1: same ratio, more tasks
    assert picked(pick(store, reg, "least_loaded", ["petrova", "ivanov"])) == "ivanov"
    # Nobody has work: the first in the pool.
    empty = MemoryStore()
    assert picked(pick(empty, reg, "least_loaded", ["petrova", "ivanov"])) == "petrova"


def test_least_loaded_unlimited_capacity_still_counts_the_load(tmp_path: Path) -> None:
    reg, store = regulation(tmp_path), MemoryStore()
    give_tasks(store, "sidorov", 1)  # no capacity: 1 / 1_000_000
    # petrova has room and nothing to do: 0 beats any load.
    assert picked(pick(store, reg, "least_loaded", ["sidorov", "petrova"])) == "petrova"
    give_tasks(store, "petrova", 1)  # 1 / 20 is far more loaded than 1 / 1_000_000
    result = pick(store, reg, "least_loaded", ["petrova", "sidorov"])
    assert picked(result) == "sidorov"
    assert result.reason == "least loaded: sidorov (1 open task, no capacity limit)"


# --- by skill ---------------------------------------------------------------------------------


def test_by_skill_takes_managers_with_all_skills_least_loaded_first(tmp_path: Path) -> None:
    reg, store = regulation(tmp_path), MemoryStore()
    give_tasks(store, "ivanov", 1)  # 1 of 10
    give_tasks(store, "petrova", 1)  # 1 of 20: less loaded
    both = pick(store, reg, "by_skill", skills=["b2b"])
    assert picked(both) == "petrova"
    assert both.reason == "by skill [b2b]: petrova (1 of 20 open tasks)"
    only_ivanov = pick(store, reg, "by_skill", skills=["B2B", "Enterprise"])  # any case
    assert picked(only_ivanov) == "ivanov"


def test_by_skill_without_a_match_uses_the_fallback(tmp_path: Path) -> None:
    reg, store = regulation(tmp_path), MemoryStore()
    result = pick(store, reg, "by_skill", skills=["b2b", "logistics"], fallback="ivanov")
    assert picked(result) == "ivanov"
    assert result.reason == "by skill [b2b, logistics]: no active manager has all skills " + (
        "(ivanov lacks logistics; kuznetsova lacks b2b, logistics; petrova lacks logistics; "
        "sidorov lacks b2b, logistics); fallback ivanov"
    )
    nobody = pick(store, reg, "by_skill", skills=["logistics"])
    assert nobody.manager is None
    assert nobody.reason.startswith("by skill [logistics]: no active manager has all skills (")


def test_skills_narrow_round_robin_too(tmp_path: Path) -> None:
    reg, store = regulation(tmp_path), MemoryStore()
    result = pick(store, reg, "round_robin", ["ivanov", "petrova", "sidorov"], skills=["retail"])
    # The counter counts pool positions: ivanov's and petrova's were passed over.
    assert result.reason == "round robin with skills [retail] among sidorov: sidorov (turn 3)"


# --- territory --------------------------------------------------------------------------------


def test_territory_picks_from_the_deepest_territory_by_its_strategy(tmp_path: Path) -> None:
    reg, store = regulation(tmp_path), MemoryStore()
    c = moscow_client("msk", "msk-enterprise")
    first = pick(store, reg, "territory", client=c)
    assert first.reason == "territory msk-enterprise, round robin among ivanov, petrova: " + (
        "ivanov (turn 1)"
    )
    assert picked(pick(store, reg, "territory", client=c)) == "petrova"
    with store.transaction() as tx:
        assert tx.get_rotation("territory:msk-enterprise") == 2
        assert tx.get_rotation("rule:r1:0") == 0


def test_territory_goes_up_to_the_parent_when_the_team_is_away(tmp_path: Path) -> None:
    reg, store = regulation(tmp_path), MemoryStore()
    put_manager(store, "ivanov", active=False)
    put_manager(store, "petrova", active=False)
    give_tasks(store, "sidorov", 5)
    # msk: sidorov (listed) and kuznetsova (names msk herself), least loaded.
    result = pick(store, reg, "territory", client=moscow_client("msk", "msk-enterprise"))
    assert result.reason == (
        "territory msk, least loaded: kuznetsova (0 open tasks, no capacity limit)"
    )


def test_territory_named_in_among(tmp_path: Path) -> None:
    reg, store = regulation(tmp_path), MemoryStore()
    give_tasks(store, "kuznetsova", 2)
    result = pick(store, reg, "territory", "msk", client=moscow_client())
    assert picked(result) == "sidorov"
    assert result.reason.startswith("territory msk, least loaded: sidorov")


def test_territory_without_territories_or_managers(tmp_path: Path) -> None:
    reg, store = regulation(tmp_path), MemoryStore()
    nowhere = pick(store, reg, "territory", client=moscow_client(), fallback="petrova")
    assert picked(nowhere) == "petrova"
    assert nowhere.reason == "territory: the client is in no territory; fallback petrova"
    spb = pick(store, reg, "territory", client=moscow_client("spb"))
    assert spb.manager is None
    assert spb.reason == "territory: no active manager in spb"


# --- fallback and unknown ids -----------------------------------------------------------------


def test_an_inactive_or_unknown_fallback_leaves_nobody(tmp_path: Path) -> None:
    reg, store = regulation(tmp_path), MemoryStore()
    put_manager(store, "ivanov", active=False)
    result = pick(store, reg, "round_robin", ["ivanov"], fallback="ivanov")
    assert result.manager is None
    assert (
        result.reason == "round robin: no active manager among ivanov; fallback ivanov is inactive"
    )
    bare = regulation(tmp_path, "version: 1\n")
    ghost = pick(store, bare, "least_loaded", [], fallback="ghost")
    assert ghost.manager is None
    assert ghost.reason == "least loaded: no managers to choose from; fallback ghost is unknown"


def test_unknown_ids_are_skipped_and_named(tmp_path: Path) -> None:
    # Without managers in the regulation, ids are only checked when assigning.
    reg, store = regulation(tmp_path, "version: 1\n"), MemoryStore()
    put_manager(store, "ivanov", name="Иван Иванов")
    put_manager(store, "petrova", name="Мария Петрова")
    result = pick(store, reg, "round_robin", ["smirnov", "ivanov", "petrova"])
    assert picked(result) == "ivanov"
    assert result.reason == (
        "round robin among ivanov, petrova: ivanov (turn 2); unknown managers skipped: smirnov"
    )
    none = pick(store, reg, "least_loaded", ["smirnov"], fallback="petrova")
    assert picked(none) == "petrova"
    assert none.reason == (
        "least loaded: no active manager among smirnov; unknown managers skipped: smirnov; "
        "fallback petrova"
    )


@pytest.mark.parametrize("strategy", ["round_robin", "least_loaded", "by_skill", "territory"])
def test_the_same_state_gives_the_same_answer(tmp_path: Path, strategy: str) -> None:
    reg = regulation(tmp_path)
    answers = set()
    for _ in range(3):
        store = MemoryStore()
        give_tasks(store, "ivanov", 2)
        result = pick(
            store, reg, strategy, skills=["b2b"], client=moscow_client("msk", "msk-enterprise")
        )
        answers.add((picked(result), result.reason))
    assert len(answers) == 1
