"""Directions, scoped writes, absences and deputies, working hours, the client summary.

Refusals name the manager, the record and the field; each is checked on the
memory store and on SQLite (the property test in test_scoped_property.py
covers reads on PostgreSQL too).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import jsonschema
import pytest

from crmrules import (
    Absence,
    Client,
    Contact,
    ContactRole,
    Deal,
    Engine,
    Event,
    Interaction,
    Manager,
    RefusedError,
    RegulationError,
    TaskStatus,
)
from crmrules.access import OutOfScopeError
from crmrules.adapters.memory import MemoryStore
from crmrules.adapters.sqlalchemy import SQLAlchemyStore
from crmrules.cli import main
from crmrules.clock import SimulatedClock
from crmrules.rules.regulation import load_regulation
from crmrules.rules.schema import json_schema
from crmrules.rules.source import Limits, parse_text
from crmrules.store import Store
from databases import open_database

MSK = ZoneInfo("Europe/Moscow")
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=MSK)  # a Monday

REGULATION = """\
version: 1
calendar:
  timezone: Europe/Moscow
  working_hours: "09:00-18:00"
fields:
  client.inn: {type: string}
pipelines:
  - id: sales
    stages: [{id: lead}, {id: offer}, {id: won, final: true}]
territories:
  - id: north
    when: {field: client.region, eq: north}
directions:
  - id: wholesale
    name: Wholesale in the north
    when: {territory: north}
  - id: retail
    when: {field: client.industry, eq: retail}
managers:
  - id: anna
    directions: [wholesale]
    working_hours: "12:00-20:00"
  - id: boris
    directions: [retail]
  - id: vera
    directions: [wholesale, retail]
    absent:
      - {from: 2026-03-02, to: 2026-03-06, deputy: anna, reason: holiday}
rules:
  - id: follow-up
    on: deal.created
    then:
      - create_task: {title: "Call {{ client.name }}", due: 1 business days, assignee: vera}
  - id: assign-new
    on: client.created
    then:
      - assign_manager: {strategy: round_robin, among: [vera, boris]}
"""


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    with (
        open_database("sqlite", tmp_path) as db,
        SQLAlchemyStore(db.url, schema=db.schema) as opened,
    ):
        yield opened


def write(tmp_path: Path, text: str = REGULATION) -> Path:
    path = tmp_path / "regulation.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def crm(tmp_path: Path, store: Store) -> Engine:
    engine = Engine(
        load_regulation(write(tmp_path)), store, SimulatedClock(NOW), entry_points=False
    )
    engine.create_client(Client(id="n1", name="Север", region="north"))
    engine.create_client(Client(id="r1", name="Розница", industry="retail"))
    engine.create_client(Client(id="s1", name="Юг", region="south"))
    return engine


# -- directions


def test_a_scoped_view_reads_only_its_directions(tmp_path: Path, store: Store) -> None:
    engine = crm(tmp_path, store)
    anna, vera = engine.scoped("anna"), engine.scoped("vera")
    assert list(anna.client_ids()) == ["n1"]
    assert list(vera.client_ids()) == ["n1", "r1"]
    assert anna.get_client("r1") is None and anna.get_client("n1") is not None
    assert list(anna.select(condition={"field": "client.name", "starts_with": "Р"})) == []
    assert list(vera.select(condition={"field": "client.name", "starts_with": "Р"})) == ["r1"]


def test_writes_outside_the_directions_are_refused_naming_the_record(
    tmp_path: Path, store: Store
) -> None:
    engine = crm(tmp_path, store)
    engine.create_deal(Deal(id="d-r1", client="r1", pipeline="sales", stage="lead"))
    anna = engine.scoped("anna")
    refusals = {
        "update_client": lambda: anna.update_client("r1", {"name": "x"}),
        "move_stage": lambda: anna.move_stage("d-r1", "offer"),
        "create_deal": lambda: anna.create_deal(
            Deal(id="d2", client="s1", pipeline="sales", stage="lead")
        ),
        "create_client": lambda: anna.create_client(Client(id="s2", region="south")),
        "log_interaction": lambda: anna.log_interaction(
            Interaction(id="i1", kind="call", client="r1", occurred_at=NOW)
        ),
        "put_contact": lambda: anna.put_contact(
            Contact(id="p1", name="P", roles=[ContactRole(client="r1", role="buyer")])
        ),
        "handle": lambda: anna.handle(
            Event(id="e1", type="lead.received", occurred_at=NOW, deal="d-r1")
        ),
    }
    messages = {}
    for name, call in refusals.items():
        with pytest.raises(OutOfScopeError) as refused:
            call()
        messages[name] = str(refused.value)
    assert messages["update_client"] == (
        "manager anna cannot change client r1: it is outside their directions (wholesale)"
    )
    assert messages["move_stage"].startswith("manager anna cannot change deal d-r1:")
    assert "client s1 (of new deal d2)" in messages["create_deal"]
    assert "client s2" in messages["create_client"]
    assert "client r1 (of interaction i1)" in messages["log_interaction"]
    assert "client r1 (of contact p1)" in messages["put_contact"]
    assert messages["handle"].startswith("manager anna cannot change deal d-r1:")
    with pytest.raises(RefusedError, match="event e2 names no client or deal"):
        anna.handle(Event(id="e2", type="lead.received", occurred_at=NOW))
    # nothing changed
    assert engine.get_client("r1").name == "Розница"  # type: ignore[union-attr]
    assert engine.get_deal("d-r1").stage == "lead"  # type: ignore[union-attr]
    assert engine.get_deal("d2") is None and engine.get_client("s2") is None
    assert engine.interactions("r1") == [] and engine.get_contact("p1") is None
    # inside the directions the same calls go through
    anna.update_client("n1", {"name": "Север-2"})
    anna.create_client(Client(id="n2", region="north"))
    assert engine.get_client("n2") is not None


def test_a_manager_naming_an_unknown_direction_is_refused(tmp_path: Path, store: Store) -> None:
    engine = crm(tmp_path, store)
    with pytest.raises(RefusedError) as refused:
        engine.put_manager(Manager(id="gleb", directions=frozenset({"wholesail"})))
    assert str(refused.value) == (
        "manager gleb: field 'directions': unknown direction wholesail "
        "(the regulation declares: retail, wholesale)"
    )
    with pytest.raises(RefusedError) as refused:
        engine.put_manager(Manager(id="gleb", working_hours="9-18"))
    assert str(refused.value).startswith("manager gleb: field 'working_hours': '9-18' is not")
    with pytest.raises(RefusedError, match="no manager 'nobody' to scope to"):
        engine.scoped("nobody")


def test_unknown_directions_in_the_regulation_are_reported_with_their_place(
    tmp_path: Path,
) -> None:
    text = REGULATION.replace("directions: [retail]", "directions: [retial]").replace(
        "{field: client.industry, eq: retail}", "{field: deal.amount, gt: 1}"
    )
    with pytest.raises(RegulationError) as error:
        load_regulation(write(tmp_path, text))
    lines = [str(p).replace(str(tmp_path) + "/", "") for p in error.value.problems]
    assert lines == [
        "regulation.yaml:18:36: a direction condition reads client fields only, not deal.amount",
        "regulation.yaml:24:18: unknown direction 'retial' (did you mean retail?)",
    ]


# -- absences and deputies


def test_assignment_skips_an_absent_manager(tmp_path: Path, store: Store) -> None:
    engine = crm(tmp_path, store)
    # vera is away all week: round robin among vera and boris gives every client to boris
    assert {engine.get_client(c).responsible for c in ("n1", "r1", "s1")} == {"boris"}  # type: ignore[union-attr]


def test_a_task_falling_due_in_an_absence_goes_to_the_deputy_with_a_note(
    tmp_path: Path, store: Store
) -> None:
    engine = crm(tmp_path, store)
    engine.create_deal(Deal(id="d1", client="n1", pipeline="sales", stage="lead"))
    [task] = engine.tasks(deal="d1")
    assert task.assignee == "anna"
    assert task.note == "vera is away 2026-03-02 to 2026-03-06 (holiday): deputy anna"


def test_marking_an_absence_hands_open_tasks_over(tmp_path: Path, store: Store) -> None:
    engine = crm(tmp_path, store)
    engine.create_deal(Deal(id="d1", client="n1", pipeline="sales", stage="lead"))
    [task] = engine.tasks(deal="d1")
    away = Absence(start=date(2026, 3, 3), end=date(2026, 3, 10), deputy="boris")
    moved = engine.mark_absent("anna", away)
    assert [t.id for t in moved] == [task.id]
    [again] = engine.tasks(deal="d1")
    assert again.assignee == "boris" and again.status is TaskStatus.OPEN
    assert again.note is not None and again.note.startswith(
        "anna is away 2026-03-03 to 2026-03-10: deputy boris"
    )


def test_absences_that_cannot_be_are_refused(tmp_path: Path, store: Store) -> None:
    engine = crm(tmp_path, store)
    with pytest.raises(RefusedError) as refused:
        engine.mark_absent(
            "anna", Absence(start=date(2026, 3, 3), end=date(2026, 3, 4), deputy="anna")
        )
    assert str(refused.value) == (
        "manager anna: field 'absent' entry 1: a manager cannot be their own deputy"
    )
    with pytest.raises(RefusedError, match="unknown deputy 'gleb'"):
        engine.mark_absent(
            "anna", Absence(start=date(2026, 3, 3), end=date(2026, 3, 4), deputy="gleb")
        )
    with pytest.raises(ValueError, match="an absence must end after it starts"):
        Absence(start=date(2026, 3, 5), end=date(2026, 3, 4))
    with pytest.raises(RefusedError, match="no manager 'gleb'"):
        engine.mark_absent("gleb", Absence(start=date(2026, 3, 3), end=date(2026, 3, 4)))


def test_bad_absences_in_the_regulation_are_reported_with_their_place(tmp_path: Path) -> None:
    text = REGULATION.replace(
        "{from: 2026-03-02, to: 2026-03-06, deputy: anna, reason: holiday}",
        "{from: 2026-03-06, to: 2026-03-02, deputy: vera}",
    )
    with pytest.raises(RegulationError) as error:
        load_regulation(write(tmp_path, text))
    lines = [str(p).replace(str(tmp_path) + "/", "") for p in error.value.problems]
    assert lines == [
        "regulation.yaml:28:32: an absence must end after it starts "
        "(from 2026-03-06 to 2026-03-02)",
        "regulation.yaml:28:52: manager vera cannot be their own deputy",
    ]


# -- working hours


def test_a_task_due_in_business_days_follows_the_assignees_hours(tmp_path: Path) -> None:
    text = REGULATION.replace("assignee: vera}", "assignee: anna}")
    early = NOW.replace(hour=10)  # the office is open (09:00-18:00), anna starts at 12:00
    engine = Engine(load_regulation(write(tmp_path, text)), MemoryStore(), SimulatedClock(early))
    engine.create_client(Client(id="n1", region="north"))
    engine.create_deal(Deal(id="d1", client="n1", pipeline="sales", stage="lead"))
    [task] = engine.tasks(deal="d1")
    # from anna's next start (12:00), one working day on: Tuesday 12:00, not 10:00
    assert task.assignee == "anna" and task.due == early.replace(day=3, hour=12)


# -- reading


def test_interactions_and_contacts_are_read_and_listed(tmp_path: Path, store: Store) -> None:
    engine = crm(tmp_path, store)
    engine.create_deal(Deal(id="d1", client="n1", pipeline="sales", stage="lead"))
    for n, client in enumerate(["n1", "r1", "n1"]):
        engine.log_interaction(
            Interaction(
                id=f"i{n}",
                kind="call",
                client=client,
                deal="d1" if n == 2 else None,
                manager="anna" if n else "boris",
                occurred_at=NOW - timedelta(hours=n),
            )
        )
    engine.put_contact(
        Contact(
            id="p1",
            name="Пётр",
            roles=[
                ContactRole(client="n1", role="director"),
                ContactRole(client="r1", role="buyer"),
            ],
        )
    )
    engine.put_contact(Contact(id="p2", name="Ольга", roles=[ContactRole(client="r1", role="cfo")]))
    assert [i.id for i in engine.interactions()] == ["i2", "i1", "i0"]
    assert [i.id for i in engine.interactions("n1")] == ["i2", "i0"]
    assert [i.id for i in engine.interactions(manager="anna")] == ["i2", "i1"]
    assert [i.id for i in engine.interactions(deal="d1")] == ["i2"]
    assert engine.get_interaction("i1").client == "r1"  # type: ignore[union-attr]
    assert [c.id for c in engine.contacts()] == ["p1", "p2"]
    assert [c.id for c in engine.contacts("r1")] == ["p1", "p2"]
    anna = engine.scoped("anna")
    [seen] = anna.contacts()
    assert seen.id == "p1" and [r.client for r in seen.roles] == ["n1"]  # r1 is not anna's
    assert anna.get_interaction("i1") is None and anna.get_contact("p2") is None
    assert [i.id for i in anna.interactions()] == ["i2", "i0"]
    assert [i.id for i in anna.interactions(manager="anna")] == ["i2"]
    assert [i.id for i in anna.interactions(deal="d1")] == ["i2"]
    assert anna.interactions("r1") == []


def test_the_client_summary_has_everything_about_the_client(tmp_path: Path, store: Store) -> None:
    engine = crm(tmp_path, store)
    engine.create_deal(Deal(id="d1", client="n1", pipeline="sales", stage="lead"))
    engine.log_interaction(Interaction(id="i1", kind="meeting", client="n1", occurred_at=NOW))
    engine.put_contact(
        Contact(
            id="p1",
            name="Пётр",
            roles=[
                ContactRole(client="n1", role="director"),
                ContactRole(client="r1", role="buyer"),
            ],
        )
    )
    summary = engine.client_summary("n1")
    assert summary.client.id == "n1" and summary.territories == ["north"]
    assert [d.deal.stage for d in summary.deals] == ["lead"]
    assert [t.title for t in summary.open_tasks] == ["Call Север"]
    assert [i.id for i in summary.interactions] == ["i1"]
    assert [(r.client, r.role) for r in summary.contacts[0].roles] == [
        ("n1", "director"),
        ("r1", "buyer"),
    ]
    assert {t.kind for t in summary.timers} == {"task"}
    data = summary.to_dict()
    assert data["client"]["id"] == "n1" and data["deals"][0]["stage"] == "lead"
    # the scoped summary hides the contact's role in a client outside the directions
    scoped = engine.scoped("anna").client_summary("n1")
    assert [r.client for r in scoped.contacts[0].roles] == ["n1"]
    with pytest.raises(OutOfScopeError, match="manager anna cannot see client r1"):
        engine.scoped("anna").client_summary("r1")
    with pytest.raises(RefusedError, match="no client 'zz'"):
        engine.client_summary("zz")


def test_crmrules_client_prints_the_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with open_database("sqlite", tmp_path) as db:
        with SQLAlchemyStore(db.url) as opened:
            engine = crm(tmp_path, opened)
            engine.create_deal(Deal(id="d1", client="n1", pipeline="sales", stage="lead"))
        path = str(write(tmp_path))
        assert main(["client", "n1", "--regulation", path, "--store", db.url, "--json"]) == 0
        data = json.loads(capsys.readouterr().out)
        assert data["client"]["name"] == "Север" and data["deals"][0]["id"] == "d1"
        assert main(["client", "n1", "--store", db.url]) == 0
        text = capsys.readouterr().out
        assert text.startswith("client n1: Север (company)\n") and "d1 sales: lead" in text
        assert main(["client", "zz", "--store", db.url]) == 1
        assert capsys.readouterr().err == "error: no client 'zz'\n"


def test_the_json_schema_takes_directions_absences_and_requirements() -> None:
    text = REGULATION.replace(
        "[{id: lead}, {id: offer},", "[{id: lead}, {id: offer, requires: [deal.amount]},"
    )
    data, _ = parse_text(text, "regulation.yaml", Limits())
    plain = json.loads(json.dumps(data, default=str))
    validator = jsonschema.Draft202012Validator(json_schema())
    assert [e.message for e in validator.iter_errors(plain)] == []
    del plain["managers"][2]["absent"][0]["to"]
    plain["directions"][0]["when"] = {"field": "client.region"}
    assert len(list(validator.iter_errors(plain))) == 2


def test_scoped_reports_and_explanations_keep_to_the_directions(tmp_path: Path) -> None:
    from crmrules.reports import Span

    with (
        open_database("sqlite", tmp_path) as db,
        SQLAlchemyStore(db.url, schema=db.schema) as sql_store,
    ):
        engine = crm(tmp_path, sql_store)
        deals = {"n1": 2, "r1": 1, "s1": 3}
        for client, count in deals.items():
            for n in range(count):
                engine.create_deal(
                    Deal(id=f"d-{client}-{n}", client=client, pipeline="sales", stage="lead")
                )
        engine.move_stage("d-n1-0", "offer")
        span = Span(date(2026, 3, 1), date(2026, 3, 31), "month", MSK)
        # the oracle: the deals of the clients each manager's directions take, counted here
        for manager, visible in {"anna": {"n1"}, "boris": {"r1"}, "vera": {"n1", "r1"}}.items():
            made = engine.scoped(manager).report("funnel", span)
            rows = {row.stage: row.deals for row in made.tables["funnel"]}
            assert rows["lead"] == sum(deals[c] for c in visible), manager
            assert rows.get("offer", 0) == (1 if "n1" in visible else 0), (manager, made.tables)
        anna = engine.scoped("anna")
        assert anna.explain("n1").client == "n1"
        for refused in (
            lambda: anna.explain("r1"),
            lambda: anna.rule_history("s1"),
        ):
            with pytest.raises(OutOfScopeError) as raised:
                refused()
            assert "anna" in str(raised.value)
