"""Timer defects found against independent references; each test failed before its fix."""

from __future__ import annotations

import itertools
import textwrap
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crmrules import Client, Deal, Engine, SimulatedClock
from crmrules.adapters.memory import MemoryStore
from crmrules.calendar import BusinessCalendar, Duration, WorkingHours
from crmrules.errors import RegulationError
from crmrules.rules.regulation import Regulation, load_regulation
from crmrules.rules.triggers import Trigger, parse_cron
from crmrules.store import TimerStatus
from crmrules.testing import Simulation
from crmrules.timers import next_cron, next_schedule, occurrence
from scaled import examples

BERLIN = ZoneInfo("Europe/Berlin")
MSK = ZoneInfo("Europe/Moscow")


def regulation_text(rules: str, timezone: str = "Europe/Moscow", extra: str = "") -> str:
    return (
        "version: 1\n"
        f"calendar: {{timezone: {timezone}}}\n"
        "fields:\n"
        "  client.visit_at: {type: date}\n"
        "  client.segment: {type: enum, values: [A, B]}\n" + extra + textwrap.dedent(rules)
    )


def engine_for(tmp_path: Path, text: str, start: datetime) -> Engine:
    path = tmp_path / "regulation.yaml"
    path.write_text(text, encoding="utf-8")
    return Engine.from_path(
        path, store=MemoryStore(), clock=SimulatedClock(start), entry_points=False
    )


def reload(engine: Engine, tmp_path: Path, text: str) -> None:
    path = tmp_path / "regulation.yaml"
    path.write_text(text, encoding="utf-8")
    engine.reload(load_regulation(path))


def disabled(text: str, rule: str) -> str:
    return text.replace(f"  - id: {rule}\n", f"  - id: {rule}\n    enabled: false\n")


def pending(engine: Engine) -> list[tuple[str | None, datetime]]:
    with engine.store.transaction() as tx:
        return sorted(
            (t.rule, t.due_at.astimezone(UTC)) for t in tx.find_timers(status=TimerStatus.PENDING)
        )


def run_until(engine: Engine, end: datetime) -> list[str]:
    """Fire timers at their own times up to ``end``; the titles of the tasks made."""
    clock = engine.clock
    assert isinstance(clock, SimulatedClock)
    made: list[str] = []
    while True:
        due = [d for _, d in pending(engine) if d <= end]
        if not due:
            break
        clock.set(max(min(due), clock.now()))
        for result in engine.run_due().results:
            made += [e.data["title"] for e in result.effects_of("task_created")]
    clock.set(end)
    return made


VISIT_RULE = """
rules:
  - id: visit-reminder
    on: {after: 1 day, since: client.visit_at}
    then: [{create_task: {kind: call, title: "Напомнить о визите"}}]
"""


DAILY = """
rules:
  - id: morning-call
    on: {every: 1 day, at: "09:00"}
    if: {field: client.segment, eq: A}
    then: [{create_task: {kind: call, title: "Утренний звонок"}}]
"""


# 1. a cancelled timer's key must not block re-planning ------------------------------------


def test_an_anchor_moved_away_and_back_plans_its_timer_again(tmp_path: Path) -> None:
    start = datetime(2026, 3, 1, 10, tzinfo=MSK)
    engine = engine_for(tmp_path, regulation_text(VISIT_RULE), start)
    engine.create_client(Client(id="c1", name="Ромашка", fields={"visit_at": date(2026, 3, 5)}))
    engine.update_client("c1", {"visit_at": date(2026, 3, 6)})
    engine.update_client("c1", {"visit_at": date(2026, 3, 5)})
    assert [due for _, due in pending(engine)] == [datetime(2026, 3, 6, tzinfo=MSK).astimezone(UTC)]
    assert run_until(engine, start + timedelta(days=10)) == ["Напомнить о визите"]


def test_a_rule_disabled_and_enabled_again_keeps_its_clients_timers(tmp_path: Path) -> None:
    start = datetime(2026, 3, 1, 10, tzinfo=MSK)
    text = regulation_text(VISIT_RULE)
    engine = engine_for(tmp_path, text, start)
    engine.create_client(Client(id="c1", name="Ромашка", fields={"visit_at": date(2026, 3, 5)}))
    reload(engine, tmp_path, disabled(text, "visit-reminder"))
    assert pending(engine) == []
    reload(engine, tmp_path, text)
    assert len(pending(engine)) == 1
    reload(engine, tmp_path, regulation_text("rules: []\n"))
    reload(engine, tmp_path, text)
    assert run_until(engine, start + timedelta(days=10)) == ["Напомнить о визите"]


def test_a_schedule_disabled_and_enabled_before_its_time_still_runs(tmp_path: Path) -> None:
    text = regulation_text(DAILY)
    start = datetime(2026, 3, 2, 7, tzinfo=MSK)
    engine = engine_for(tmp_path, text, start)
    engine.create_client(Client(id="c1", name="Ромашка", fields={"segment": "A"}))
    engine.sync_timers()  # as a worker does when it starts
    clock = engine.clock
    assert isinstance(clock, SimulatedClock)
    clock.set(datetime(2026, 3, 2, 8, tzinfo=MSK))
    reload(engine, tmp_path, disabled(text, "morning-call"))
    clock.set(datetime(2026, 3, 2, 8, 30, tzinfo=MSK))
    reload(engine, tmp_path, text)
    assert run_until(engine, datetime(2026, 3, 4, 10, tzinfo=MSK)) == ["Утренний звонок"] * 3


# 2. cron with * in minute or hour runs in both passes of the repeated hour ----------------


def firings(expression: str, start: datetime, end: datetime, tz: str) -> list[datetime]:
    calendar = BusinessCalendar(tz)
    cron = parse_cron(expression)
    found, moment = [], start
    while True:
        moment = next_cron(cron, moment, calendar)
        if moment >= end:
            return found
        found.append(moment.astimezone(UTC))


def test_an_hourly_cron_runs_25_times_on_the_autumn_day() -> None:
    day = datetime(2026, 10, 25, tzinfo=BERLIN)
    got = firings("0 * * * *", day - timedelta(seconds=1), day + timedelta(days=1), "Europe/Berlin")
    assert len(got) == 25
    assert all(b - a == timedelta(hours=1) for a, b in itertools.pairwise(got))


def test_a_fixed_time_cron_in_the_repeated_hour_runs_once() -> None:
    day = datetime(2026, 10, 25, tzinfo=BERLIN)
    end = day + timedelta(days=1)
    got = firings("30 2 * * *", day - timedelta(seconds=1), end, "Europe/Berlin")
    assert got == [datetime(2026, 10, 25, 0, 30, tzinfo=UTC)]  # 02:30 CEST, the first pass


# 3. every: 1 day at 02:30 is back at 02:30 the day after the spring change ----------------


def test_a_daily_at_time_in_the_spring_gap_comes_back_the_next_day(tmp_path: Path) -> None:
    nightly = """
    rules:
      - id: nightly
        on: {every: 1 day, at: "02:30"}
        if: {field: client.segment, eq: A}
        then: [{create_task: {kind: call, title: "Ночной"}}]
    """
    sim = Simulation.from_regulation(
        load_regulation_text(tmp_path, regulation_text(nightly, "Europe/Berlin")),
        now=datetime(2026, 3, 28, 12, tzinfo=BERLIN),
    )
    sim.given(clients=[{"id": "c1", "name": "Ромашка", "segment": "A"}])
    sim.at(datetime(2026, 4, 1, 12, tzinfo=BERLIN))
    times = [t.created_at.astimezone(BERLIN).strftime("%m-%d %H:%M") for t in sim.tasks()]
    assert times == ["03-29 03:30", "03-30 02:30", "03-31 02:30", "04-01 02:30"]


def load_regulation_text(tmp_path: Path, text: str) -> Regulation:
    path = tmp_path / "regulation.yaml"
    path.write_text(text, encoding="utf-8")
    return load_regulation(path)


# 4. every: 1 month from the 31st is n months after the anchor, clamped --------------------


def test_a_monthly_schedule_from_the_31st_stays_on_the_months_last_day(tmp_path: Path) -> None:
    monthly = """
    rules:
      - id: month-end
        on: {every: 1 month, at: "10:00"}
        if: {field: client.segment, eq: A}
        then: [{create_task: {kind: call, title: "Итоги месяца"}}]
    """
    sim = Simulation.from_regulation(
        load_regulation_text(tmp_path, regulation_text(monthly)),
        now=datetime(2026, 1, 31, 9, tzinfo=MSK),
    )
    sim.given(clients=[{"id": "c1", "name": "Ромашка", "segment": "A"}])
    sim.at(datetime(2026, 6, 1, tzinfo=MSK))
    days = [t.created_at.astimezone(MSK).strftime("%m-%d") for t in sim.tasks()]
    assert days == ["01-31", "02-28", "03-31", "04-30", "05-31"]


def test_a_monthly_contact_plan_from_the_31st_does_not_drift(tmp_path: Path) -> None:
    plan = """
    territories:
      - id: msk
        when: {field: client.region, eq: Москва}
        contact_plan:
          - every: 1 month
            then: [{create_task: {kind: call, title: "Плановый звонок"}}]
    rules: []
    """
    sim = Simulation.from_regulation(
        load_regulation_text(tmp_path, regulation_text(plan)),
        now=datetime(2026, 1, 31, 10, tzinfo=MSK),
    )
    sim.create(clients=[{"id": "c1", "name": "Ромашка", "region": "Москва"}])
    sim.at(datetime(2026, 6, 1, tzinfo=MSK))
    days = [t.created_at.astimezone(MSK).strftime("%m-%d") for t in sim.tasks()]
    assert days == ["02-28", "03-31", "04-30", "05-31"]


# 5. impossible and malformed cron expressions are refused at load -------------------------


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("0 0 31 2 *", "never"),
        ("0 0 30 2 *", "never"),
        ("*/ * * * *", "step"),
        ("0 0 1-31/ * *", "step"),
        ("0 0 * * 1-", "range"),
        ("0 0 ,1 * *", "empty"),
    ],
)
def test_validate_refuses_impossible_and_malformed_crons(
    tmp_path: Path, expression: str, message: str
) -> None:
    rules = f"""
    rules:
      - id: never
        on: {{cron: "{expression}"}}
        then: [{{create_task: {{kind: call, title: "x"}}}}]
    """
    path = tmp_path / "regulation.yaml"
    path.write_text(regulation_text(rules), encoding="utf-8")
    with pytest.raises(RegulationError) as caught:
        load_regulation(path)
    text = str(caught.value)
    assert message in text
    assert "regulation.yaml:9:" in text  # the line of the cron, with its column


def test_feb_29_is_possible() -> None:
    parse_cron("0 0 29 2 *")  # leap years have it


# 6. day of month with day of week: the Vixie rule ------------------------------------------


def test_a_stepped_star_day_of_month_is_not_a_restriction() -> None:
    # */2 in day-of-month starts with '*': the days must match both fields.
    cron = parse_cron("0 9 */2 * mon")
    calendar = BusinessCalendar("UTC")
    got = next_cron(cron, datetime(2026, 3, 1, tzinfo=UTC), calendar)
    # Mondays of March 2026: 2, 9, 16, 23, 30; odd days (1, 3, 5, ...) with */2: the 9th.
    assert got == datetime(2026, 3, 9, 9, tzinfo=UTC)


def test_both_restricted_day_fields_match_either() -> None:
    cron = parse_cron("0 9 15 * mon")
    calendar = BusinessCalendar("UTC")
    got = next_cron(cron, datetime(2026, 3, 10, tzinfo=UTC), calendar)
    assert got == datetime(2026, 3, 15, 9, tzinfo=UTC)  # the 15th (a Sunday) or a Monday


# 7. simulated time agrees with a real clock in the repeated hour ---------------------------


def test_an_hourly_schedule_runs_25_times_in_the_simulation_on_the_autumn_day(
    tmp_path: Path,
) -> None:
    hourly = """
    rules:
      - id: hourly
        on: {every: 1 hour}
        if: {field: client.segment, eq: A}
        then: [{create_task: {kind: call, title: "Каждый час"}}]
    """
    sim = Simulation.from_regulation(
        load_regulation_text(tmp_path, regulation_text(hourly, "Europe/Berlin")),
        now=datetime(2026, 10, 24, 23, 30, tzinfo=BERLIN),
    )
    sim.given(clients=[{"id": "c1", "name": "Ромашка", "segment": "A"}])
    sim.at(datetime(2026, 10, 25, 23, 30, tzinfo=BERLIN))
    assert len(sim.tasks()) == 25


def test_an_hour_after_in_the_repeated_hour_is_sixty_elapsed_minutes(tmp_path: Path) -> None:
    rule = """
    rules:
      - id: after-an-hour
        on: {after: 1 hour, since: client.seen_at}
        then: [{create_task: {kind: call, title: "Через час"}}]
    """
    text = regulation_text(rule, "Europe/Berlin", extra="  client.seen_at: {type: datetime}\n")
    seen = datetime(2026, 10, 25, 0, 15, tzinfo=UTC).astimezone(BERLIN)  # 02:15 CEST
    sim = Simulation.from_regulation(load_regulation_text(tmp_path, text), now=seen)
    sim.given(clients=[{"id": "c1", "name": "Ромашка", "seen_at": seen.isoformat()}])
    sim.advance("1 minute")  # 02:16 CEST; due 02:15 CET, one hour later
    assert sim.tasks() == []
    sim.advance("58 minutes")
    assert sim.tasks() == []
    sim.advance("2 minutes")
    assert len(sim.tasks()) == 1


# 9. shortened pre-holiday days ------------------------------------------------------------


def test_russia_closes_an_hour_early_before_a_public_holiday() -> None:
    calendar = BusinessCalendar(
        "Europe/Moscow", country="RU", working_hours=WorkingHours(time(9), time(18))
    )
    for day in (date(2026, 4, 30), date(2026, 5, 8), date(2026, 6, 11), date(2026, 11, 3)):
        assert calendar.is_working_time(datetime.combine(day, time(16, 59), MSK))
        assert not calendar.is_working_time(datetime.combine(day, time(17, 30), MSK)), day
    # A Friday before a Monday holiday is not "immediately before" it (Labour Code art. 95).
    assert calendar.is_working_time(datetime(2026, 2, 20, 17, 30, tzinfo=MSK))
    # After the short day's close, the next opening is after the holiday.
    assert calendar.next_opening(datetime(2026, 11, 3, 17, 30, tzinfo=MSK)) == datetime(
        2026, 11, 5, 9, tzinfo=MSK
    )
    # One business day from 17:30 lands on the short day: at its close, not after it.
    got = calendar.add(datetime(2026, 11, 2, 17, 30, tzinfo=MSK), Duration.parse("1 business day"))
    assert got == datetime(2026, 11, 3, 17, tzinfo=MSK)
    one = Duration.parse("1 business day")
    back = calendar.subtract(datetime(2026, 11, 5, 17, 30, tzinfo=MSK), one)
    assert back == datetime(2026, 11, 3, 17, tzinfo=MSK)
    plain = BusinessCalendar(
        "Europe/Moscow",
        country="RU",
        working_hours=WorkingHours(time(9), time(18)),
        short_pre_holidays=False,
    )
    assert plain.is_working_time(datetime(2026, 11, 3, 17, 30, tzinfo=MSK))


# 5b. a timer that cannot be planned is recorded against its rule; the rest goes on ---------


def test_a_timer_that_cannot_be_planned_never_stops_the_others(tmp_path: Path) -> None:
    start = datetime(2026, 3, 1, 10, tzinfo=MSK)
    engine = engine_for(tmp_path, regulation_text("rules: []\n"), start)
    engine.create_client(Client(id="c1", name="Вечный", fields={"visit_at": date(9999, 12, 31)}))
    engine.create_client(Client(id="c2", name="Ромашка", fields={"visit_at": date(2026, 3, 5)}))
    reload(engine, tmp_path, regulation_text(VISIT_RULE))  # would raise out of sync_timers
    assert [rule for rule, _ in pending(engine)] == ["visit-reminder"]
    engine.update_client("c1", {"name": "Вечный клиент"})  # the host's call goes through
    with engine.store.transaction() as tx:
        errors = [e for e in tx.audit_log() if e.kind == "error"]
    assert errors
    assert all(e.rule == "visit-reminder" for e in errors)
    assert "c1" in errors[0].message and "out of range" in errors[0].message
    assert run_until(engine, start + timedelta(days=10)) == ["Напомнить о визите"]


def test_a_worker_restarted_after_an_outage_fires_the_missed_occurrence_once(
    tmp_path: Path,
) -> None:
    engine = engine_for(tmp_path, regulation_text(DAILY), datetime(2026, 3, 2, 7, tzinfo=MSK))
    engine.create_client(Client(id="c1", name="Ромашка", fields={"segment": "A"}))
    engine.sync_timers()
    clock = engine.clock
    assert isinstance(clock, SimulatedClock)
    clock.set(datetime(2026, 3, 2, 11, tzinfo=MSK))  # the worker was down at 09:00
    engine.sync_timers()  # it starts again
    assert run_until(engine, datetime(2026, 3, 2, 12, tzinfo=MSK)) == ["Утренний звонок"]
    assert [due for _, due in pending(engine)] == [datetime(2026, 3, 3, 6, tzinfo=UTC)]


# 10. a reload that changes a contact plan's period or a stage's deadline re-plans --------

PLANS = """\
version: 1
calendar: {timezone: Europe/Moscow, country: RU, working_hours: "09:00-18:00"}
pipelines:
  - id: sales
    stages: [{id: new}, {id: offer, deadline: OFFER}, {id: won, final: true}]
territories:
  - id: msk
    when: {field: client.region, eq: Москва}
    contact_plan:
      - every: EVERY
        then: [{create_task: {kind: call, title: "Плановый звонок"}}]
rules: []
"""


START_PLANS = datetime(2026, 3, 2, 10, tzinfo=MSK)  # a Monday


def plans(every: str = "30 days", offer: str = "7 days") -> str:
    text = PLANS.replace("EVERY", every)
    if offer == "none":
        return text.replace(", deadline: OFFER", "")
    return text.replace("OFFER", offer)


def pending_of(engine: Engine, kind: str) -> list[tuple[datetime, dict[str, object]]]:
    with engine.store.transaction() as tx:
        found = tx.find_timers(kind=kind, status=TimerStatus.PENDING)
        return [(t.due_at.astimezone(MSK), dict(t.data)) for t in found]


@pytest.fixture(params=["memory", "sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/crm.sqlite3"


def plans_engine(tmp_path: Path, store_url: str, start: datetime) -> Engine:
    path = tmp_path / "regulation.yaml"
    path.write_text(plans(), encoding="utf-8")
    return Engine.from_path(path, store=store_url, clock=SimulatedClock(start), entry_points=False)


def advance_to(engine: Engine, moment: datetime) -> None:
    clock = engine.clock
    assert isinstance(clock, SimulatedClock)
    clock.set(moment)


def visited_then_reloaded(tmp_path: Path, store_url: str, days: int, every: str) -> Engine:
    """A client in msk since START_PLANS (30 days a visit), the plan `every` after `days`."""
    engine = plans_engine(tmp_path, store_url, START_PLANS)
    engine.create_client(Client(id="c1", name="Ромашка", region="Москва"))
    assert [due for due, _ in pending_of(engine, "plan")] == [START_PLANS + timedelta(days=30)]
    advance_to(engine, START_PLANS + timedelta(days=days))
    reload(engine, tmp_path, plans(every=every))
    return engine


def test_a_contact_plan_with_a_new_period_re_plans_the_next_visit(
    tmp_path: Path, store_url: str
) -> None:
    engine = visited_then_reloaded(tmp_path, store_url, 5, "14 days")
    # Counted from the day the client entered, as a plan started under the new period.
    ((due, data),) = pending_of(engine, "plan")
    assert due == START_PLANS + timedelta(days=14)
    assert data["every"] == "14 days"
    assert run_until(engine, START_PLANS + timedelta(days=29)) == ["Плановый звонок"] * 2


def test_a_re_planned_visit_never_takes_the_key_of_a_later_one(
    tmp_path: Path, store_url: str
) -> None:
    # Halved: the re-planned first visit falls on day 15, the second on day 30, the
    # day the old first visit's key names; updating that timer in place would mark
    # day 30 fired already and lose the second visit.
    engine = visited_then_reloaded(tmp_path, store_url, 1, "15 days")
    assert run_until(engine, START_PLANS + timedelta(days=31)) == ["Плановый звонок"] * 2
    assert [due for due, _ in pending_of(engine, "plan")] == [START_PLANS + timedelta(days=45)]


def test_a_period_shortened_below_the_time_elapsed_makes_the_visit_due_now(
    tmp_path: Path, store_url: str
) -> None:
    engine = visited_then_reloaded(tmp_path, store_url, 5, "3 days")
    # The visit the new period wanted on day 3 is overdue: it fires once, then the
    # series resumes from now (day 6), as after a worker that was down.
    assert [due for due, _ in pending_of(engine, "plan")] == [START_PLANS + timedelta(days=3)]
    assert run_until(engine, START_PLANS + timedelta(days=5)) == ["Плановый звонок"]
    assert [due for due, _ in pending_of(engine, "plan")] == [START_PLANS + timedelta(days=6)]


def test_a_stage_deadline_changed_re_plans_the_deals_in_the_stage(
    tmp_path: Path, store_url: str
) -> None:
    start = datetime(2026, 3, 2, 10, tzinfo=MSK)  # a Monday
    engine = plans_engine(tmp_path, store_url, start)
    engine.create_client(Client(id="c1", name="Ромашка"))
    engine.create_deal(Deal(id="d1", client="c1", pipeline="sales", stage="new"))
    engine.move_stage("d1", "offer")
    assert [due for due, _ in pending_of(engine, "stage")] == [start + timedelta(days=7)]
    advance_to(engine, start + timedelta(days=1))
    reload(engine, tmp_path, plans(offer="3 days"))
    ((due, data),) = pending_of(engine, "stage")
    assert due == start + timedelta(days=3)
    assert data["deadline"] == "3 days"
    reload(engine, tmp_path, plans(offer="2 business days"))
    assert [due for due, _ in pending_of(engine, "stage")] == [start + timedelta(days=2)]
    advance_to(engine, start + timedelta(days=3))
    (result,) = engine.run_due().results
    assert [e.type for e in result.events] == ["deal.stage_overdue"]


def test_a_stage_deadline_removed_cancels_the_pending_timers(
    tmp_path: Path, store_url: str
) -> None:
    start = datetime(2026, 3, 2, 10, tzinfo=MSK)
    engine = plans_engine(tmp_path, store_url, start)
    engine.create_client(Client(id="c1", name="Ромашка"))
    engine.create_deal(Deal(id="d1", client="c1", pipeline="sales", stage="offer"))
    assert len(pending_of(engine, "stage")) == 1
    reload(engine, tmp_path, plans(offer="none"))
    assert pending_of(engine, "stage") == []
    with engine.store.transaction() as tx:
        (timer,) = tx.find_timers(kind="stage")
    assert timer.status is TimerStatus.CANCELLED
    assert timer.note == "the stage has no deadline any more"


def test_a_second_contact_plan_starts_for_the_clients_already_there(
    tmp_path: Path, store_url: str
) -> None:
    engine = plans_engine(tmp_path, store_url, START_PLANS)
    engine.create_client(Client(id="c1", name="Ромашка", region="Москва"))
    advance_to(engine, START_PLANS + timedelta(days=5))
    second = (
        '      - every: 7 days\n        then: [{create_task: {kind: email, title: "Письмо"}}]\n'
    )
    reload(engine, tmp_path, plans().replace("rules: []\n", "") + second + "rules: []\n")
    visits = sorted((data["index"], due) for due, data in pending_of(engine, "plan"))
    # The first keeps its time; the second starts one period after the reload.
    assert visits == [(0, START_PLANS + timedelta(days=30)), (1, START_PLANS + timedelta(days=12))]


# 11. {every: N business days, at: HH:MM} runs on working days only, none skipped -----------


def working_days_after(calendar: BusinessCalendar, after: datetime, at: time, count: int) -> list:
    """The reference: each working day (by the calendar's own day rule) whose ``at`` is
    after ``after``, walking the dates one by one."""
    found: list[datetime] = []
    day = calendar.local(after).date()
    while len(found) < count:
        moment = calendar.combine(day, at)
        if calendar.is_working_day(day) and moment > after:
            found.append(moment.astimezone(UTC))
        day += timedelta(days=1)
    return found


@settings(max_examples=examples(150), deadline=None)
@given(
    start=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2026, 12, 20)),
    at=st.sampled_from([time(0, 0), time(8, 0), time(9, 0), time(13, 30), time(19, 45)]),
    n=st.integers(min_value=1, max_value=3),
    hours=st.sampled_from([None, WorkingHours(time(9), time(18))]),
)
def test_a_business_day_schedule_runs_on_every_nth_working_day(
    start: datetime, at: time, n: int, hours: WorkingHours | None
) -> None:
    calendar = BusinessCalendar("Europe/Moscow", country="RU", working_hours=hours)
    after = start.replace(tzinfo=MSK)
    trigger = Trigger(kind="schedule", every=Duration(business_days=n), at=at)
    first = next_schedule(trigger, after, calendar)
    got = [occurrence(trigger.every, at, first, k, calendar) for k in range(8)]  # type: ignore[arg-type]
    assert got == working_days_after(calendar, after, at, 1 + 7 * n)[::n]


def test_every_business_day_at_nine_from_a_friday(tmp_path: Path) -> None:
    rules = """
    rules:
      - id: morning-call
        on: {every: 1 business day, at: "09:00"}
        if: {field: client.segment, eq: A}
        then: [{create_task: {kind: call, title: "Утренний звонок"}}]
    """
    start = datetime(2026, 3, 6, 12, tzinfo=MSK)  # a Friday; Monday 03-09 is a holiday
    russian = regulation_text(rules).replace(
        "{timezone: Europe/Moscow}", "{timezone: Europe/Moscow, country: RU}"
    )
    engine = engine_for(tmp_path, russian, start)
    engine.create_client(Client(id="c1", name="Ромашка", fields={"segment": "A"}))
    engine.sync_timers()
    days: list[str] = []
    clock = engine.clock
    assert isinstance(clock, SimulatedClock)
    while len(days) < 4:
        ((_, due),) = pending(engine)
        clock.set(due)
        engine.run_due()
        days.append(due.astimezone(MSK).strftime("%a %d %H:%M"))
    assert days == ["Tue 10 09:00", "Wed 11 09:00", "Thu 12 09:00", "Fri 13 09:00"]
