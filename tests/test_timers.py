"""Time: timers planned by changes, fired once by run_due, kept in step with their anchors."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import ClassVar
from zoneinfo import ZoneInfo

import pytest

from crmrules import Client, Deal, Engine, Event, Result, SimulatedClock
from crmrules.adapters.memory import MemoryStore, MemoryTransaction
from crmrules.rules.regulation import load_regulation
from crmrules.store import Timer, TimerStatus

MSK = ZoneInfo("Europe/Moscow")
BERLIN = ZoneInfo("Europe/Berlin")
START = datetime(2026, 3, 2, 10, 0, tzinfo=MSK)  # a Monday

HEADER = """\
version: 1
calendar: {timezone: Europe/Moscow, country: RU, working_hours: "09:00-18:00"}
fields:
  client.contract_end: {type: date}
  client.segment: {type: enum, values: [A, B, C]}
  deal.delivered_at: {type: datetime}
  deal.replied: {type: boolean, default: false}
pipelines:
  - id: sales
    stages: [{id: new}, {id: offer, deadline: 7 days}, {id: invoice, deadline: 2 business days},
             {id: won, final: true}, {id: lost, final: true}]
    transitions:
      - {from: offer, to: [invoice, new, lost]}
managers:
  - {id: ivanov}
territories:
  - id: msk
    when: {field: client.region, eq: Москва}
    contact_plan:
      - every: 30 days
        then: [{create_task: {kind: call, title: "Плановый звонок {{ client.name }}"}}]
"""


def write(tmp_path: Path, rules: str, header: str = HEADER) -> Path:
    path = tmp_path / "regulation.yaml"
    path.write_text(header + textwrap.dedent(rules), encoding="utf-8")
    return path


def make(tmp_path: Path, rules: str, *, start: datetime = START, header: str = HEADER) -> Engine:
    return Engine.from_path(
        write(tmp_path, rules, header),
        store=MemoryStore(),
        clock=SimulatedClock(start),
        entry_points=False,
    )


def advance(engine: Engine, delta: timedelta) -> list[str]:
    """Move the clock, firing every timer at its own time; the titles of the tasks made."""
    clock = engine.clock
    assert isinstance(clock, SimulatedClock)
    end = clock.now() + delta
    made: list[str] = []
    while True:
        with engine.store.transaction() as tx:
            pending = tx.find_timers(status=TimerStatus.PENDING)
        due = [t.due_at for t in pending if t.due_at <= end]
        if not due:
            break
        clock.set(max(min(due), clock.now()))
        for result in engine.run_due().results:
            made += [e.data["title"] for e in result.effects_of("task_created")]
    clock.set(end)
    return made


def rule_results(results: list[Result]) -> list[Result]:
    """The results of rule timers (a stage deadline may fall due at the same moment)."""
    return [r for r in results if r.event_id.startswith("timer:rule:")]


def pending(engine: Engine) -> list[tuple[str, datetime]]:
    with engine.store.transaction() as tx:
        return [(t.kind, t.due_at) for t in tx.find_timers(status=TimerStatus.PENDING)]


OFFER_RULES = """
rules:
  - id: no-reply
    on: {after: 7 days, since: deal.stage_entered_at}
    if: {all: [{field: deal.stage, eq: offer}, {field: deal.replied, eq: false}]}
    then: [{create_task: {kind: call, title: "Нет ответа на КП"}}]
"""


def offer_engine(tmp_path: Path) -> Engine:
    engine = make(tmp_path, OFFER_RULES)
    engine.create_client(Client(id="c1", name="ООО Ромашка", region="Казань"))
    engine.create_deal(Deal(id="d1", client="c1", pipeline="sales", stage="new"))
    return engine


def test_a_time_trigger_fires_once_at_its_time(tmp_path: Path) -> None:
    engine = offer_engine(tmp_path)
    engine.move_stage("d1", "offer")
    assert advance(engine, timedelta(days=6, hours=23)) == []
    assert advance(engine, timedelta(hours=2)) == ["Нет ответа на КП"]
    assert advance(engine, timedelta(days=30)) == []
    assert engine.run_due(START + timedelta(days=60)).fired == 0


def test_the_condition_is_checked_when_the_timer_falls_due(tmp_path: Path) -> None:
    engine = offer_engine(tmp_path)
    engine.move_stage("d1", "offer")
    engine.update_deal("d1", {"replied": True})
    clock = engine.clock
    assert isinstance(clock, SimulatedClock)
    clock.advance(timedelta(days=7))
    (result,) = rule_results(engine.run_due().results)
    assert result.fired == []
    (outcome,) = result.outcomes
    assert outcome.status == "not_matched"
    assert outcome.reason == "deal.replied eq false: actual true → false"
    assert engine.tasks() == []


def test_an_anchor_change_replans_and_a_clear_drops(tmp_path: Path) -> None:
    engine = make(
        tmp_path,
        """
        rules:
          - id: feedback
            on: {after: 15 days, since: deal.delivered_at}
            then: [{create_task: {title: Попросить отзыв}}]
        """,
    )
    engine.create_client(Client(id="c1", name="ООО Ромашка"))
    engine.create_deal(Deal(id="d1", client="c1", pipeline="sales", stage="new"))
    engine.update_deal("d1", {"delivered_at": START})
    assert pending(engine) == [("rule", START + timedelta(days=15))]
    engine.update_deal("d1", {"delivered_at": START + timedelta(days=3)})
    assert pending(engine) == [("rule", START + timedelta(days=18))]
    with engine.store.transaction() as tx:
        cancelled = tx.find_timers(status=TimerStatus.CANCELLED)
    assert [t.due_at for t in cancelled] == [START + timedelta(days=15)]
    engine.update_deal("d1", {"delivered_at": None})
    assert pending(engine) == []
    assert advance(engine, timedelta(days=40)) == []


def test_the_same_event_twice_plans_one_timer(tmp_path: Path) -> None:
    engine = make(
        tmp_path,
        """
        rules:
          - id: renewal
            on: {before: 30 days, of: client.contract_end}
            then: [{create_task: {title: Продлить договор}}]
          - id: set-end
            on: contract.signed
            then: [{set_field: {field: client.contract_end, value: "2026-12-31"}}]
        """,
    )
    engine.create_client(Client(id="c1", name="ООО Ромашка"))
    event = Event(id="sign-1", type="contract.signed", occurred_at=START, client="c1")
    engine.handle(event)
    engine.handle(event)
    # 31 December at midnight in Moscow, minus 30 days.
    assert pending(engine) == [("rule", datetime(2026, 12, 1, 0, 0, tzinfo=MSK))]


def test_leaving_the_stage_cancels_its_deadline(tmp_path: Path) -> None:
    engine = make(
        tmp_path,
        """
        rules:
          - id: overdue
            on: deal.stage_overdue
            then: [{create_task: {title: "Сделка зависла на {{ event.stage }}"}}]
        """,
        header=HEADER.replace("fields:\n", "fields:\n  event.stage: {type: string}\n"),
    )
    engine.create_client(Client(id="c1", name="ООО Ромашка"))
    engine.create_deal(Deal(id="d1", client="c1", pipeline="sales", stage="new"))
    engine.move_stage("d1", "offer")
    assert [kind for kind, _ in pending(engine)] == ["stage"]
    engine.move_stage("d1", "invoice")
    # The offer deadline is cancelled; the invoice one (2 business days) is planned.
    assert pending(engine) == [("stage", datetime(2026, 3, 4, 10, 0, tzinfo=MSK))]
    assert advance(engine, timedelta(days=10)) == ["Сделка зависла на invoice"]


def test_a_late_timer_fires_late_and_says_how_late(tmp_path: Path) -> None:
    engine = offer_engine(tmp_path)
    engine.move_stage("d1", "offer")
    (result,) = rule_results(engine.run_due(START + timedelta(days=9)).results)
    assert result.fired == ["no-reply"]
    with engine.store.transaction() as tx:
        (late,) = [e for e in tx.audit_log() if e.kind == "late" and e.rule == "no-reply"]
    assert late.message == "fired 2 days, 0:00:00 late (due 2026-03-09T10:00:00+03:00)"


def test_max_lateness_drops_a_timer_that_is_too_late(tmp_path: Path) -> None:
    engine = make(tmp_path, OFFER_RULES.replace("    then:", "    max_lateness: 1 day\n    then:"))
    engine.create_client(Client(id="c1", name="ООО Ромашка"))
    engine.create_deal(Deal(id="d1", client="c1", pipeline="sales", stage="offer"))
    (result,) = rule_results(engine.run_due(START + timedelta(days=9)).results)
    assert result.fired == []
    assert result.outcomes[0].reason.startswith(
        "dropped: due 2026-03-09T10:00:00+03:00, 2 days, 0:00:00 late, more than max_lateness"
    )
    with engine.store.transaction() as tx:
        assert [t.status for t in tx.find_timers(kind="rule")] == [TimerStatus.DROPPED]
    assert engine.tasks() == []


def test_days_keep_the_wall_clock_time_across_dst_in_berlin(tmp_path: Path) -> None:
    header = HEADER.replace(
        "{timezone: Europe/Moscow, country: RU,", "{timezone: Europe/Berlin, country: DE,"
    )
    start = datetime(2026, 3, 25, 10, 0, tzinfo=BERLIN)  # DST starts on 29 March
    engine = make(tmp_path, OFFER_RULES, start=start, header=header)
    engine.create_client(Client(id="c1", name="Blumen GmbH"))
    engine.create_deal(Deal(id="d1", client="c1", pipeline="sales", stage="offer"))
    ((_, due), (_, rule_due)) = pending(engine)[:2]
    assert rule_due == datetime(2026, 4, 1, 10, 0, tzinfo=BERLIN)
    assert rule_due.utcoffset() == timedelta(hours=2)
    assert due == rule_due  # the 7-day stage deadline lands on the same moment


def test_business_day_timers_that_start_outside_working_hours(tmp_path: Path) -> None:
    saturday = datetime(2026, 3, 7, 15, 0, tzinfo=MSK)
    engine = make(tmp_path, "rules: []\n", start=saturday)
    engine.create_client(Client(id="c1", name="ООО Ромашка"))
    engine.create_deal(Deal(id="d1", client="c1", pipeline="sales", stage="new"))
    engine.move_stage("d1", "offer")
    engine.move_stage("d1", "invoice")
    # Counted from Tuesday 09:00 (Monday 9 March is a holiday): Thursday 09:00.
    assert pending(engine) == [("stage", datetime(2026, 3, 12, 9, 0, tzinfo=MSK))]


def test_task_overdue(tmp_path: Path) -> None:
    engine = make(
        tmp_path,
        """
        rules:
          - id: call
            on: invoice.issued
            then: [{create_task: {kind: call, title: Позвонить, due: 2 hours}}]
          - id: escalate
            on: task.overdue
            then: [{create_task: {title: "Просрочено: {{ event.title }}"}}]
        """,
        header=HEADER.replace("fields:\n", "fields:\n  event.title: {type: string}\n"),
    )
    engine.create_client(Client(id="c1", name="ООО Ромашка"))
    engine.handle(Event(id="i1", type="invoice.issued", occurred_at=START, client="c1"))
    engine.handle(Event(id="i2", type="invoice.issued", occurred_at=START, client="c1"))
    done = next(t for t in engine.tasks() if t.rule == "call")
    engine.complete_task(done.id)
    assert advance(engine, timedelta(hours=3)) == ["Просрочено: Позвонить"]


def test_contact_plan_every_period_while_the_client_stays(tmp_path: Path) -> None:
    engine = make(tmp_path, "rules: []\n")
    engine.create_client(Client(id="c1", name="ООО Ромашка", region="Москва"))
    assert advance(engine, timedelta(days=29)) == []
    assert advance(engine, timedelta(days=2)) == ["Плановый звонок ООО Ромашка"]
    assert advance(engine, timedelta(days=30)) == ["Плановый звонок ООО Ромашка"]
    engine.update_client("c1", {"region": "Казань"})
    assert pending(engine) == []
    assert advance(engine, timedelta(days=90)) == []


@pytest.mark.parametrize(
    ("trigger", "expected"),
    [
        ("{every: 1 week, at: '09:00'}", ["2026-03-03 09:00", "2026-03-10 09:00"]),
        ("{cron: '0 9 1 * *'}", ["2026-04-01 09:00"]),
        ("{cron: '30 8 * * mon-fri'}", ["2026-03-03 08:30", "2026-03-04 08:30"]),
    ],
)
def test_schedules_fire_for_the_clients_that_qualify_then(
    tmp_path: Path, trigger: str, expected: list[str]
) -> None:
    engine = make(
        tmp_path,
        f"""
        rules:
          - id: digest
            on: {trigger}
            if: {{field: client.segment, eq: A}}
            then: [{{create_task: {{title: "Сводка {{{{ client.name }}}}"}}}}]
        """,
    )
    engine.create_client(Client(id="a", name="Альфа", fields={"segment": "A"}))
    engine.create_client(Client(id="b", name="Бета", fields={"segment": "B"}))
    engine.sync_timers()
    fired_at: list[str] = []
    clock = engine.clock
    assert isinstance(clock, SimulatedClock)
    for _ in expected:
        (_kind, due), *_ = [p for p in pending(engine) if p[0] == "schedule"]
        clock.set(due)
        (result,) = engine.run_due().results
        assert result.fired == ["digest"]
        fired_at.append(due.astimezone(MSK).strftime("%Y-%m-%d %H:%M"))
    assert fired_at == expected
    assert sorted(t.title for t in engine.tasks()) == ["Сводка Альфа"] * len(expected)


def test_reloading_cancels_removed_rules_and_replans_changed_ones(tmp_path: Path) -> None:
    engine = offer_engine(tmp_path)
    engine.move_stage("d1", "offer")
    rule_due = [d for k, d in pending(engine) if k == "rule"]
    assert rule_due == [START + timedelta(days=7)]
    engine.reload(load_regulation(write(tmp_path, OFFER_RULES.replace("7 days", "10 days"))))
    assert [d for k, d in pending(engine) if k == "rule"] == [START + timedelta(days=10)]
    engine.reload(load_regulation(write(tmp_path, "rules: []\n")))
    assert [k for k, _ in pending(engine)] == ["stage"]


def test_contact_plans_start_for_clients_already_in_the_territory(tmp_path: Path) -> None:
    header = HEADER.replace(
        "    contact_plan:\n      - every: 30 days\n"
        '        then: [{create_task: {kind: call, title: "Плановый звонок {{ client.name }}"}}]\n',
        "",
    )
    engine = make(tmp_path, "rules: []\n", header=header)
    engine.create_client(Client(id="c1", name="ООО Ромашка", region="Москва"))
    assert pending(engine) == []
    clock = engine.clock
    assert isinstance(clock, SimulatedClock)
    clock.advance(timedelta(days=5))
    engine.reload(load_regulation(write(tmp_path, "rules: []\n")))
    assert pending(engine) == [("plan", START + timedelta(days=35))]


class _Interleaved(MemoryStore):
    """A store that lets a worker fire timers right after sync_timers has listed them."""

    between: ClassVar[list[object]] = []

    @contextmanager
    def transaction(self) -> Iterator[MemoryTransaction]:
        with super().transaction() as tx:
            listed = tx.find_timers

            def find_timers(**filters: object) -> list[Timer]:
                found = listed(**filters)  # type: ignore[arg-type]
                if self.between:
                    step = self.between.pop()
                    step()  # type: ignore[operator]
                return found

            tx.find_timers = find_timers  # type: ignore[method-assign]
            yield tx


def test_a_reload_never_undoes_a_timer_a_worker_fired_meanwhile(tmp_path: Path) -> None:
    store = _Interleaved()
    clock = SimulatedClock(START)
    rules = """
    rules:
      - id: welcome
        on: {after: 1 day, since: client.created_at}
        then: [{create_task: {title: Приветственный звонок}}]
    """
    worker = Engine.from_path(write(tmp_path, rules), store=store, clock=clock, entry_points=False)
    worker.create_client(Client(id="c1", name="ООО Ромашка", created_at=START - timedelta(days=3)))
    admin = Engine.from_path(write(tmp_path, rules), store=store, clock=clock, entry_points=False)
    store.between.append(lambda: worker.run_due())
    admin.reload(load_regulation(write(tmp_path, rules.replace("1 day", "2 days"))))
    with store.transaction() as tx:
        assert [t.status for t in tx.find_timers(kind="rule")] == [TimerStatus.FIRED]
    assert worker.run_due(START + timedelta(days=30)).fired == 0
    assert [t.title for t in worker.tasks()] == ["Приветственный звонок"]
