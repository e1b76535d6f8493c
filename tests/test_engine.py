"""The engine's guarantees: order, policies, cascades, exactly once, all or nothing."""

from __future__ import annotations

import textwrap
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import BaseModel

from crmrules import Client, Deal, Event, Manager, SimulatedClock
from crmrules.adapters.memory import MemoryStore
from crmrules.engine import ActionError, Engine
from crmrules.plugins import ActionPlugin, hookimpl

MSK = ZoneInfo("Europe/Moscow")
START = datetime(2026, 3, 2, 10, 0, tzinfo=MSK)  # a Monday

HEADER = """\
version: 1
calendar: {timezone: Europe/Moscow, working_hours: "09:00-18:00"}
fields:
  client.segment: {type: enum, values: [A, B, C]}
  client.note: {type: string}
  event.number: {type: string}
pipelines:
  - id: sales
    stages: [{id: new}, {id: offer}, {id: invoice}, {id: won, final: true},
             {id: lost, final: true}]
    transitions:
      - {from: offer, to: [invoice, new, lost]}
      - {from: new, to: [offer, lost]}
managers:
  - {id: ivanov, name: Иван Иванов, email: ivanov@example.ru, skills: [b2b, enterprise],
     capacity: 3}
  - {id: petrova, name: Мария Петрова, email: petrova@example.ru, skills: [b2b], capacity: 3}
  - {id: sidorov, name: Пётр Сидоров, skills: [retail]}
territories:
  - {id: msk, when: {field: client.region, eq: Москва}, managers: [ivanov, petrova]}
"""


def make(tmp_path: Path, rules: str, *, plugins: tuple[object, ...] = ()) -> Engine:
    path = tmp_path / "regulation.yaml"
    path.write_text(HEADER + textwrap.dedent(rules), encoding="utf-8")
    return Engine.from_path(
        path,
        store=MemoryStore(),
        clock=SimulatedClock(START),
        plugins=plugins,
        entry_points=False,
    )


def client(engine: Engine, client_id: str = "c1", **fields: Any) -> None:
    data = {"segment": "A", **fields.pop("fields", {})}
    engine.create_client(
        Client(id=client_id, name=f"Клиент {client_id}", region="Москва", fields=data, **fields)
    )


def event(event_type: str, event_id: str, **kwargs: Any) -> Event:
    return Event(id=event_id, type=event_type, occurred_at=START, **kwargs)


def titles(engine: Engine) -> list[str]:
    return sorted(t.title for t in engine.tasks())


def test_rules_run_in_priority_order_and_stop_holds_the_rest(tmp_path: Path) -> None:
    engine = make(
        tmp_path,
        """
        rules:
          - {id: low, on: ping, then: [{create_task: {title: low}}]}
          - {id: high, on: ping, priority: 10, stop: true, then: [{create_task: {title: high}}]}
          - {id: middle, on: ping, priority: 5, then: [{create_task: {title: middle}}]}
        """,
    )
    client(engine)
    result = engine.handle(event("ping", "e1", client="c1"))
    assert result.fired == ["high"]
    assert [(o.rule, o.status, o.reason) for o in result.outcomes] == [
        ("high", "fired", "ping"),
        ("middle", "held", "stopped by rule high (stop: true)"),
        ("low", "held", "stopped by rule high (stop: true)"),
    ]
    assert titles(engine) == ["high"]


def test_not_matched_names_the_failing_condition_with_its_actual_value(tmp_path: Path) -> None:
    engine = make(
        tmp_path,
        """
        rules:
          - id: vip
            on: ping
            if:
              all:
                - {territory: msk}
                - {field: client.segment, in: [A, B]}
            then: [{create_task: {title: vip}}]
        """,
    )
    client(engine, fields={"segment": "C"})
    result = engine.handle(event("ping", "e1", client="c1"))
    (outcome,) = result.outcomes
    assert (
        outcome.status,
        outcome.field,
        outcome.operator,
        outcome.expected,
        outcome.actual,
    ) == ("not_matched", "client.segment", "in", "[A, B]", "C")
    assert outcome.reason == "client.segment in [A, B]: actual C → false"
    assert result.explain().splitlines() == [
        "ping (e1, client c1)",
        "  ✗ vip: not matched: client.segment in [A, B]: actual C → false",
    ]


@pytest.mark.parametrize(
    ("once", "fires"),
    [
        # two events for the same client and deal, then a new stage entry, then another deal
        ("per_event", [True, True, True, True]),
        ("per_client", [True, False, False, False]),
        ("per_deal", [True, False, False, True]),
        ("per_stage_entry", [True, False, True, True]),
        ("always", [True, True, True, True]),
    ],
)
def test_once_policies(tmp_path: Path, once: str, fires: list[bool]) -> None:
    engine = make(
        tmp_path,
        f"""
        rules:
          - {{id: r, on: ping, once: {once}, then: [{{create_task: {{title: t}}}}]}}
        """,
    )
    client(engine)
    engine.create_deal(Deal(id="d1", client="c1", pipeline="sales", stage="new"))
    engine.create_deal(Deal(id="d2", client="c1", pipeline="sales", stage="new"))
    outcomes = [engine.handle(event("ping", "e1", deal="d1")).fired == ["r"]]
    outcomes.append(engine.handle(event("ping", "e2", deal="d1")).fired == ["r"])
    engine.move_stage("d1", "offer")
    outcomes.append(engine.handle(event("ping", "e3", deal="d1")).fired == ["r"])
    outcomes.append(engine.handle(event("ping", "e4", deal="d2")).fired == ["r"])
    assert outcomes == fires


def test_cooldown_holds_a_rule_for_the_same_client(tmp_path: Path) -> None:
    engine = make(
        tmp_path,
        """
        rules:
          - {id: r, on: ping, cooldown: 30 days, then: [{create_task: {title: t}}]}
        """,
    )
    client(engine)
    client(engine, "c2")
    clock = engine.clock
    assert isinstance(clock, SimulatedClock)
    assert engine.handle(event("ping", "e1", client="c1")).fired == ["r"]
    clock.advance(timedelta(days=29))
    held = engine.handle(event("ping", "e2", client="c1"))
    assert held.fired == []
    assert held.outcomes[0].reason.startswith("cooldown 30 days: fired for client c1 at 2026-03-02")
    assert engine.handle(event("ping", "e3", client="c2")).fired == ["r"]
    clock.advance(timedelta(days=1))
    assert engine.handle(event("ping", "e4", client="c1")).fired == ["r"]


def test_disabled_rules_are_held(tmp_path: Path) -> None:
    engine = make(
        tmp_path,
        """
        rules:
          - {id: r, on: ping, enabled: false, then: [{create_task: {title: t}}]}
        """,
    )
    client(engine)
    result = engine.handle(event("ping", "e1", client="c1"))
    assert [(o.status, o.reason) for o in result.outcomes] == [
        ("held", "disabled (enabled: false)")
    ]


def test_two_rules_moving_a_stage_back_and_forth_stop_after_one_round(tmp_path: Path) -> None:
    engine = make(
        tmp_path,
        """
        rules:
          - id: forward
            on: deal.stage_changed
            if: {field: deal.stage, changed_to: new}
            then: [{move_stage: offer}]
          - id: back
            on: deal.stage_changed
            if: {field: deal.stage, changed_to: offer}
            then: [{move_stage: new}]
        """,
    )
    client(engine)
    engine.create_deal(Deal(id="d1", client="c1", pipeline="sales", stage="new"))
    result = engine.move_stage("d1", "offer")
    assert result.fired == ["back", "forward"]
    held = [o for o in result.outcomes if o.status == "held"]
    assert [(o.rule, o.reason) for o in held] == [
        ("back", "already fired for deal:d1 in this cascade")
    ]
    # host: new → offer; back: offer → new; forward: new → offer; back is held.
    deal = engine.get_deal("d1")
    assert deal is not None and deal.stage == "offer"


def test_a_cascade_past_the_depth_limit_stops_with_an_error_in_the_audit_log(
    tmp_path: Path,
) -> None:
    chain = "\n".join(
        f"  - {{id: step{i}, on: e{i}, then: [{{emit: {{type: e{i + 1}}}}}]}}" for i in range(15)
    )
    engine = make(tmp_path, "rules:\n" + chain + "\n")
    client(engine)
    result = engine.handle(event("e0", "start", client="c1"))
    assert result.fired == [f"step{i}" for i in range(11)]
    assert result.errors == [
        "cascade stopped: e11 (start/e1:step0:0/e2:step1:0/e3:step2:0/e4:step3:0/e5:step4:0/"
        "e6:step5:0/e7:step6:0/e8:step7:0/e9:step8:0/e10:step9:0/e11:step10:0) is 11 events "
        "deep (limit 10); check rules that trigger each other"
    ]
    with engine.store.transaction() as tx:
        errors = [e for e in tx.audit_log(event_id=None) if e.kind == "error"]
    assert [e.message for e in errors] == result.errors


def test_the_same_event_twice_acts_once(tmp_path: Path) -> None:
    engine = make(
        tmp_path,
        """
        rules:
          - {id: r, on: ping, then: [{create_task: {title: t}}, {notify: {to: ivanov, message: m}}]}
        """,
    )
    client(engine)
    first = engine.handle(event("ping", "e1", client="c1"))
    again = engine.handle(event("ping", "e1", client="c1"))
    assert not first.duplicate and again.duplicate
    assert again.fired == first.fired == ["r"]
    assert len(engine.tasks()) == 1
    assert again.explain().startswith("event e1 was handled before; nothing done again")


def test_ten_thousand_events_delivered_twice_make_each_task_and_mailing_once(
    tmp_path: Path,
) -> None:
    engine = make(
        tmp_path,
        """
        templates:
          hello: {subject: "Счёт {{ event.number }}", text: "Здравствуйте, {{ client.name }}!"}
        rules:
          - id: r
            on: invoice.issued
            then:
              - create_task: {title: "Счёт {{ event.number }}", assignee: responsible}
              - send_mailing: {template: hello}
        """,
    )
    for index in range(100):
        client(engine, f"c{index}", email=f"c{index}@example.ru", responsible="ivanov")
    for round_ in range(2):
        for index in range(10_000):
            result = engine.handle(
                event(
                    "invoice.issued",
                    f"inv-{index}",
                    client=f"c{index % 100}",
                    data={"number": str(index)},
                )
            )
            assert result.duplicate == (round_ == 1)
    tasks = engine.tasks()
    assert len(tasks) == 10_000
    assert len({t.title for t in tasks}) == 10_000
    with engine.store.transaction() as tx:
        assert len(tx.find_mailings()) == 10_000
        assert len(tx.due_messages(START, 20_000)) == 10_000


class ExplodeParams(BaseModel):
    model_config = {"extra": "forbid"}
    message: str = "boom"


class Explode:
    """A plugin action that fails, to prove an event is all or nothing."""

    failures: list[str]

    def __init__(self) -> None:
        self.failures = []

    @hookimpl
    def register_actions(self, register: Any) -> None:
        def explode(params: ExplodeParams, context: Any) -> None:
            raise RuntimeError(params.message)

        register(ActionPlugin("explode", ExplodeParams, explode))

    @hookimpl
    def action_failed(self, action: str, rule: str, event: Event, error: BaseException) -> None:
        self.failures.append(f"{rule}/{action}: {error}")


@pytest.mark.parametrize("on_error", ["continue", "refuse"])
def test_an_exception_mid_actions_undoes_the_rule_or_refuses_the_call(
    tmp_path: Path, on_error: str
) -> None:
    plugin = Explode()
    engine = make(
        tmp_path,
        f"""
        rules:
          - id: r
            on: ping
            on_error: {on_error}
            then:
              - create_task: {{title: first}}
              - set_field: {{field: client.note, value: changed}}
              - move_stage: offer
              - explode: {{message: "сбой"}}
              - create_task: {{title: never}}
        """,
        plugins=(plugin,),
    )
    client(engine)
    engine.create_deal(Deal(id="d1", client="c1", pipeline="sales", stage="new"))
    with engine.store.transaction() as tx:
        audit_before = len(tx.audit_log())
    reason = "action 4 (explode): the action's code failed: сбой"
    if on_error == "refuse":
        with pytest.raises(ActionError) as caught:
            engine.handle(event("ping", "e1", deal="d1"))
        assert reason in caught.value.reason
        assert "RuntimeError" not in caught.value.reason
    else:
        result = engine.handle(event("ping", "e1", deal="d1"))
        assert result.failed == ["r"]
        assert result.outcomes[-1].reason.startswith(reason)
    assert plugin.failures == ["r/explode: сбой"]
    assert engine.tasks() == []
    deal, stored = engine.get_deal("d1"), engine.get_client("c1")
    assert deal is not None and deal.stage == "new"
    assert stored is not None and "note" not in stored.fields
    with engine.store.transaction() as tx:
        assert tx.due_messages(START + timedelta(days=1), 10) == []
        if on_error == "refuse":
            assert tx.event_result("e1") is None
            assert len(tx.audit_log()) == audit_before
        else:
            kinds = [e.kind for e in tx.audit_log(event_id="e1")]
            assert kinds == ["failed"]


def test_changed_from_and_changed_to_see_the_update(tmp_path: Path) -> None:
    engine = make(
        tmp_path,
        """
        rules:
          - id: downgraded
            on: client.updated
            if:
              all:
                - {field: client.segment, changed_from: A}
                - {field: client.segment, changed_to: C}
            then: [{create_task: {title: "Сегмент понижен"}}]
          - id: any-change
            on: client.updated
            if: {field: client.segment, changed: true}
            then: [{create_task: {title: "Сегмент изменён"}}]
        """,
    )
    client(engine)
    assert engine.update_client("c1", {"segment": "B"}).fired == ["any-change"]
    assert engine.update_client("c1", {"segment": "C"}).fired == ["any-change"]
    engine.update_client("c1", {"segment": "A"})
    assert engine.update_client("c1", {"segment": "C"}).fired == ["downgraded", "any-change"]
    assert engine.update_client("c1", {"name": "Другое имя"}).fired == []


def test_assignment_round_robin_and_by_skill(tmp_path: Path) -> None:
    engine = make(
        tmp_path,
        """
        rules:
          - id: assign
            on: client.created
            if: {field: client.segment, eq: A}
            then: [{assign_manager: {strategy: round_robin, among: [ivanov, petrova]}}]
          - id: enterprise
            on: client.created
            if: {field: client.segment, eq: B}
            then: [{assign_manager: {strategy: by_skill, skills: [enterprise], fallback: sidorov}}]
        """,
    )
    for index in range(4):
        client(engine, f"a{index}")
    client(engine, "b1", fields={"segment": "B"})
    responsible = [engine.get_client(f"a{i}").responsible for i in range(4)]  # type: ignore[union-attr]
    assert responsible == ["ivanov", "petrova", "ivanov", "petrova"]
    assert engine.get_client("b1").responsible == "ivanov"  # type: ignore[union-attr]
    engine.put_manager(Manager(id="ivanov", skills=frozenset({"enterprise"}), active=False))
    client(engine, "b2", fields={"segment": "B"})
    assert engine.get_client("b2").responsible == "sidorov"  # type: ignore[union-attr]


def test_territory_events_and_manual_overrides(tmp_path: Path) -> None:
    header = HEADER.replace(
        "territories:\n",
        "territories:\n  - {id: spb, when: {field: client.region, eq: Санкт-Петербург}}\n",
    ).replace("fields:\n", "fields:\n  event.territory: {type: string}\n")
    path = tmp_path / "regulation.yaml"
    path.write_text(
        header
        + textwrap.dedent(
            """
            rules:
              - id: welcome
                on: territory.entered
                then: [{create_task: {title: "Вход в {{ event.territory }}"}}]
              - id: bye
                on: territory.left
                then: [{create_task: {title: "Выход из {{ event.territory }}"}}]
              - {id: pin, on: pin, then: [{add_to_territory: spb}]}
            """
        ),
        encoding="utf-8",
    )
    engine = Engine.from_path(
        path, store=MemoryStore(), clock=SimulatedClock(START), entry_points=False
    )
    client(engine)
    assert titles(engine) == ["Вход в msk"]
    engine.update_client("c1", {"region": "Санкт-Петербург"})
    assert titles(engine) == ["Вход в msk", "Вход в spb", "Выход из msk"]
    engine.update_client("c1", {"region": "Казань"})
    engine.handle(event("pin", "p1", client="c1"))
    stored = engine.get_client("c1")
    assert stored is not None and stored.territories == frozenset({"spb"})
    # The manual override outlives a regulation without the territory...
    plain = tmp_path / "plain.yaml"
    plain.write_text(HEADER, encoding="utf-8")
    other = Engine.from_path(plain, store=engine.store, clock=engine.clock, entry_points=False)
    other.update_client("c1", {"name": "Новое имя"})
    assert other.get_client("c1").territories == frozenset()  # type: ignore[union-attr]
    # ...and applies again when the territory comes back.
    engine.update_client("c1", {"name": "Ещё имя"})
    assert engine.get_client("c1").territories == frozenset({"spb"})  # type: ignore[union-attr]
