"""Regulation tests: scenario files, the runner, the pytest plugin, the CLI and the Python API."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from crmrules.errors import RegulationError
from crmrules.testing import ScenarioResult, Simulation, load_scenario_file, run_file

pytest_plugins = ["pytester"]

MSK = ZoneInfo("Europe/Moscow")
ROOT = Path(__file__).resolve().parent.parent

REGULATION = """\
version: 1
calendar: {timezone: Europe/Moscow, country: RU, working_hours: "09:00-18:00"}
fields:
  client.segment: {type: enum, values: [A, B, C]}
  client.contract_end: {type: date}
  deal.delivered_at: {type: datetime}
  event.invoice_number: {type: string}
  event.kind: {type: string}
pipelines:
  - id: sales
    stages: [{id: new}, {id: offer}, {id: invoice}, {id: production},
             {id: won, final: true}, {id: lost, final: true}]
    transitions:
      - {from: offer, to: [invoice, lost]}
managers:
  - {id: ivanov, email: ivanov@example.ru}
  - {id: petrova, email: petrova@example.ru}
territories:
  - id: msk
    when: {field: client.region, eq: Москва}
    managers: [ivanov, petrova]
    contact_plan:
      - every: 30 days
        then: [{create_task: {kind: call, title: "Плановый звонок {{ client.name }}"}}]
  - id: spb
    when: {field: client.region, eq: Санкт-Петербург}
    managers: [petrova]
templates:
  reminder:
    subject: "Счёт {{ event.invoice_number }} ожидает оплаты"
    text: "Здравствуйте, {{ client.name }}!"
  feedback:
    subject: "Как вам заказ?"
    text: "Расскажите, всё ли понравилось."
rules:
  - id: invoice-followup
    on: invoice.issued
    if:
      all:
        - {field: client.segment, in: [A, B]}
        - {territory: msk}
    then:
      - create_task: {kind: call, title: "Уточнить оплату счёта {{ event.invoice_number }}",
                      due: 2 business days, assignee: responsible}
      - send_mailing: {template: reminder, to: client}
  - id: payment-received
    on: payment.received
    then:
      - cancel_tasks: {rule: invoice-followup}
      - move_stage: production
  - id: assign-new
    on: client.created
    if: {field: client.responsible, is_empty: true}
    then: [{assign_manager: {strategy: territory, fallback: ivanov}}]
  - id: call-done
    on: task.completed
    if: {field: event.kind, eq: call}
    then: [{create_task: {kind: todo, title: "Записать итог звонка", assignee: responsible}}]
  - id: welcome-territory
    on: territory.entered
    then: [{create_task: {kind: todo, title: "Знакомство: {{ client.name }}"}}]
  - id: feedback
    on: {after: 15 days, since: deal.delivered_at}
    then: [{send_mailing: {template: feedback, to: client}}]
  - id: renewal
    on: {before: 30 days, of: client.contract_end}
    then: [{create_task: {kind: call, title: "Продление: {{ client.name }}",
                          assignee: responsible}}]
"""

HEADER = """\
regulation: reg
now: 2026-03-02T10:00:00+03:00
given:
  clients:
    - {id: c1, name: Ромашка, email: c1@example.ru, region: Москва, segment: A,
       responsible: ivanov, contract_end: 2026-05-01}
    - {id: c2, name: Лютик, email: c2@example.ru, region: Тверь, segment: C,
       responsible: petrova}
  deals:
    - {id: d1, client: c1, pipeline: sales, stage: invoice}
    - {id: d2, client: c1, pipeline: sales, stage: offer}
scenarios:
  - name: s
    steps:
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "reg").mkdir()
    (tmp_path / "reg" / "regulation.yaml").write_text(REGULATION, encoding="utf-8")
    return tmp_path


def write(folder: Path, steps: str, name: str = "case.regulation.yaml") -> Path:
    path = folder / name
    path.write_text(HEADER + textwrap.indent(textwrap.dedent(steps), " " * 6), encoding="utf-8")
    return path


def run_one(folder: Path, steps: str) -> ScenarioResult:
    results = run_file(write(folder, steps))
    assert len(results) == 1
    return results[0]


def assert_readable(report: str) -> None:
    assert "Traceback" not in report
    assert 'File "' not in report


# --- steps and expectations: each passes when right and fails readably when wrong ------------

CASES = {
    "event+tasks": (
        """\
        - event: {type: invoice.issued, deal: d1, data: {invoice_number: INV-17}}
        - expect:
            tasks:
              - {kind: call, title: Уточнить оплату счёта INV-17, assignee: ivanov,
                 due: 2026-03-04T10:00:00+03:00, rule: invoice-followup, client: c1, deal: d1,
                 status: open}
        """,
        """\
        - event: {type: invoice.issued, deal: d1, data: {invoice_number: INV-17}}
        - expect:
            tasks: [{kind: call, due: 2026-03-05T10:00:00+03:00}]
        """,
        [
            "due: expected 2026-03-05T10:00:00+03:00, found 2026-03-04T10:00:00+03:00",
            "invoice-followup",
            "✓ invoice-followup: fired",
        ],
    ),
    "event not matched": (
        """\
        - event: {type: invoice.issued, client: c2, data: {invoice_number: INV-18}}
        - expect: {tasks: [], mailings: []}
        """,
        """\
        - event: {type: invoice.issued, client: c2, data: {invoice_number: INV-18}}
        - expect:
            tasks: [{kind: call, rule: invoice-followup}]
        """,
        [
            "expected 1 task created since the previous expect, found 0",
            "not matched: client.segment in [A, B]: actual C → false",
        ],
    ),
    "due as a date": (
        """\
        - event: {type: invoice.issued, deal: d1, data: {invoice_number: INV-1}}
        - expect: {tasks: [{due: 2026-03-04}]}
        """,
        """\
        - event: {type: invoice.issued, deal: d1, data: {invoice_number: INV-1}}
        - expect: {tasks: [{due: 2026-03-03}]}
        """,
        ["due: expected 2026-03-03, found 2026-03-04T10:00:00+03:00"],
    ),
    "mailings": (
        """\
        - event: {type: invoice.issued, deal: d1, data: {invoice_number: INV-17}}
        - expect:
            mailings:
              - {template: reminder, to: c1@example.ru, channel: email,
                 subject: Счёт INV-17 ожидает оплаты, text: "Здравствуйте, Ромашка!",
                 rule: invoice-followup, client: c1}
        """,
        """\
        - event: {type: invoice.issued, deal: d1, data: {invoice_number: INV-17}}
        - expect:
            mailings: [{template: reminder, to: someone@example.ru}]
        """,
        ["to: expected someone@example.ru, found c1@example.ru", "→ mailing reminder"],
    ),
    "open_tasks": (
        """\
        - event: {type: invoice.issued, deal: d1, data: {invoice_number: INV-17}}
        - event: {type: payment.received, deal: d1}
        - expect: {open_tasks: [], deals: {d1: {stage: production}}}
        """,
        """\
        - event: {type: invoice.issued, deal: d1, data: {invoice_number: INV-17}}
        - expect: {open_tasks: []}
        """,
        ["expected 0 open tasks open now, found 1", "✗ not expected:"],
    ),
    "deals": (
        """\
        - update: {deal: d2, set: {stage: invoice, amount: 1500.50}}
        - expect: {deals: {d2: {stage: invoice, amount: 1500.5}}}
        """,
        """\
        - update: {deal: d2, set: {stage: invoice}}
        - expect: {deals: {d2: {stage: won}}}
        """,
        ["deal d2: stage: expected won, found invoice"],
    ),
    "clients+create": (
        """\
        - create:
            clients: [{id: c3, name: Новый, region: Санкт-Петербург}]
            deals: [{id: d3, client: c3, pipeline: sales, stage: new}]
        - expect:
            fired: [assign-new, welcome-territory]
            clients: {c3: {responsible: petrova, territories: [spb]}}
            deals: {d3: {stage: new}}
        """,
        """\
        - create: {clients: [{id: c3, name: Новый, region: Санкт-Петербург}]}
        - expect:
            clients: {c3: {responsible: ivanov, territories: [msk]}}
        """,
        [
            "client c3: responsible: expected ivanov, found petrova",
            "client c3: territories: expected [msk], found [spb]",
            "assign-new",
            "responsible petrova",
        ],
    ),
    "update client": (
        """\
        - update: {client: c2, set: {region: Москва}}
        - expect:
            clients: {c2: {territories: [msk], region: Москва}}
            fired: [welcome-territory]
        """,
        """\
        - update: {client: c2, set: {region: Казань}}
        - expect: {fired: [welcome-territory]}
        """,
        [
            "did not fire since the previous expect: welcome-territory",
            "not considered: it runs on territory.entered",
        ],
    ),
    "complete_task": (
        """\
        - event: {type: invoice.issued, deal: d1, data: {invoice_number: INV-17}}
        - complete_task: {kind: call, deal: d1}
        - expect:
            fired: [call-done]
            open_tasks: [{kind: todo, title: Записать итог звонка}]
        """,
        """\
        - complete_task: {kind: call, deal: d1}
        """,
        ["complete_task {kind: call, deal: d1}: no open task match (open tasks: none)"],
    ),
    "advance": (
        """\
        - advance: 29 days
        - expect: {tasks: []}
        - advance: 1 day
        - expect:
            tasks:
              - {kind: call, title: Плановый звонок Ромашка, rule: msk.contact_plan.0}
              - {kind: call, title: "Продление: Ромашка", rule: renewal}
        """,
        """\
        - advance: 29 days
        - expect:
            tasks: [{title: Плановый звонок Ромашка}]
        """,
        [
            "expected 1 task created since the previous expect, found 0",
            "msk.contact_plan.0",
            "its next timer is due 2026-04-01 10:00",
        ],
    ),
    "at": (
        """\
        - at: 2026-04-01T00:00:00+03:00
        - expect:
            fired: [renewal]
            tasks: [{title: "Продление: Ромашка", assignee: ivanov}]
        """,
        """\
        - at: 2026-03-31T23:59:00+03:00
        - expect: {fired: [renewal]}
        """,
        [
            "did not fire since the previous expect: renewal",
            "its next timer is due 2026-04-01 00:00 (client c1)",
        ],
    ),
    "at goes forward only": (
        """\
        - at: 2026-03-03
        - expect: {tasks: []}
        """,
        """\
        - advance: 2 days
        - at: 2026-03-03T10:00:00+03:00
        """,
        ["the clock cannot go back"],
    ),
    "realign": (
        """\
        - realign: {}
        - expect: {tasks: [], clients: {c1: {territories: [msk]}, c2: {territories: []}}}
        """,
        """\
        - realign: {}
        - expect: {not_fired: [welcome-territory], clients: {c2: {territories: [msk]}}}
        """,
        ["client c2: territories: expected [msk], found []"],
    ),
    "fired / not_fired": (
        """\
        - event: {type: payment.received, deal: d1}
        - expect: {fired: [payment-received], not_fired: [invoice-followup]}
        """,
        """\
        - event: {type: invoice.issued, deal: d1, data: {invoice_number: INV-2}}
        - expect: {not_fired: [invoice-followup]}
        """,
        [
            "fired since the previous expect, but should not have: invoice-followup",
            "on invoice.issued (deal d1): fired",
            "→ task call",
        ],
    ),
    "refused": (
        """\
        - {update: {deal: d2, set: {stage: new}}, refused: true}
        - expect: {deals: {d2: {stage: offer}}}
        """,
        """\
        - {update: {deal: d2, set: {stage: invoice}}, refused: true}
        """,
        ["expected the regulation to refuse this update, but it was accepted"],
    ),
    "refused without refused: true": (
        """\
        - update: {deal: d2, set: {stage: lost}}
        - expect: {deals: {d2: {stage: lost}}}
        """,
        """\
        - update: {deal: d2, set: {stage: new}}
        """,
        [
            "update was refused: deal d2: cannot move from offer to new in pipeline sales "
            "(allowed from offer: invoice, lost)",
            "refused: true",
        ],
    ),
    "duplicate event id": (
        """\
        - event: {type: invoice.issued, id: e1, deal: d1, data: {invoice_number: INV-1}}
        - event: {type: invoice.issued, id: e1, deal: d1, data: {invoice_number: INV-1}}
        - expect: {tasks: [{kind: call}]}
        """,
        """\
        - event: {type: invoice.issued, id: e1, deal: d1, data: {invoice_number: INV-1}}
        - event: {type: invoice.issued, id: e2, deal: d1, data: {invoice_number: INV-1}}
        - expect: {tasks: [{kind: call}]}
        """,
        ["expected 1 task created since the previous expect, found 2"],
    ),
    "time trigger from given": (
        """\
        - update: {deal: d1, set: {delivered_at: 2026-03-02T10:00:00+03:00}}
        - advance: 15 days
        - expect: {mailings: [{template: feedback, client: c1}], fired: [feedback]}
        """,
        """\
        - update: {deal: d1, set: {delivered_at: 2026-03-02T10:00:00+03:00}}
        - advance: 14 days
        - expect: {mailings: [{template: feedback}]}
        """,
        [
            "expected 1 mailing sent since the previous expect, found 0",
            "feedback:",
            "its next timer is due 2026-03-17 10:00",
        ],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_step_passes(folder: Path, case: str) -> None:
    result = run_one(folder, CASES[case][0])
    assert result.passed, result.report()


@pytest.mark.parametrize("case", sorted(CASES))
def test_step_fails_readably(folder: Path, case: str) -> None:
    result = run_one(folder, CASES[case][1])
    assert not result.passed
    report = result.report()
    assert_readable(report)
    assert "case.regulation.yaml:" in report  # the step is located
    for fragment in CASES[case][2]:
        assert fragment in report, f"{fragment!r} not in:\n{report}"


def test_every_scenario_starts_from_given(folder: Path) -> None:
    path = folder / "two.regulation.yaml"
    path.write_text(
        HEADER
        + "      - update: {deal: d2, set: {stage: lost}}\n"
        + "      - expect: {deals: {d2: {stage: lost}}}\n"
        + "  - name: t\n    steps:\n      - expect: {deals: {d2: {stage: offer}}}\n",
        encoding="utf-8",
    )
    results = run_file(path)
    assert [r.passed for r in results] == [True, True]
    assert [r.id for r in results] == [f"{path}::s", f"{path}::t"]


def test_given_raises_no_events(folder: Path) -> None:
    result = run_one(folder, "- expect: {tasks: [], not_fired: [welcome-territory, assign-new]}\n")
    assert result.passed, result.report()


# --- malformed scenario files ----------------------------------------------------------------

MALFORMED = {
    "bad yaml": ("regulation: reg\nnow: [1\n", ":3:1: invalid YAML"),
    "unknown top key": (
        "regulation: reg\nnow: 2026-03-02T10:00:00+03:00\nscenario: []\n",
        ":3:1: unknown key 'scenario' in a scenario file (did you mean 'scenarios'?)",
    ),
    "unknown step": (
        HEADER + "      - advanse: 1 day\n",
        ":15:9: unknown step 'advanse' (did you mean 'advance'?)",
    ),
    "unknown rule": (
        HEADER + "      - expect: {fired: [invoice-folowup]}\n",
        ":15:26: unknown rule 'invoice-folowup' (did you mean 'invoice-followup'?)",
    ),
    "unknown client": (
        HEADER + "      - event: {type: x, client: c9}\n",
        ":15:34: unknown client 'c9'",
    ),
    "unknown deal in expect": (
        HEADER + "      - expect: {deals: {d9: {stage: new}}}\n",
        ":15:26: unknown deal 'd9'",
    ),
    "undeclared custom field": (
        HEADER + "      - create: {clients: [{id: c5, colour: red}]}\n",
        ":15:37: unknown client field 'colour'",
    ),
    "bad field value": (
        HEADER + "      - update: {client: c1, set: {segment: Z}}\n",
        ":15:45: client field 'segment': 'Z' is not one of A, B, C",
    ),
    "unknown manager": (
        HEADER.replace("responsible: petrova", "responsible: sidorov"),
        ":8:21: unknown manager 'sidorov'",
    ),
    "bad duration": (
        HEADER + "      - advance: soon\n",
        ":15:18: advance: 'soon' is not a duration",
    ),
    "bad due": (
        HEADER + "      - expect: {tasks: [{due: tomorrow}]}\n",
        ":15:32: due: tomorrow is not a moment",
    ),
    "two things in one step": (
        HEADER + "      - {advance: 1 day, realign: {}}\n",
        ":15:9: a step does one thing; this one has 2",
    ),
    "missing now": ("regulation: reg\nscenarios: []\n", ":1:1: a scenario file needs 'now'"),
    "regulation not found": (
        "regulation: nowhere\nnow: 2026-03-02T10:00:00+03:00\nscenarios: []\n",
        ":1:13: regulation 'nowhere' not found",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_scenario_file(folder: Path, case: str) -> None:
    text, expected = MALFORMED[case]
    path = folder / "bad.regulation.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RegulationError) as caught:
        load_scenario_file(path)
    shown = str(caught.value)
    assert f"{path}{expected}" in shown, shown
    results = run_file(path)
    assert len(results) == 1 and not results[0].passed
    assert f"{path}{expected}" in results[0].report()


def test_regulation_that_does_not_load(folder: Path) -> None:
    (folder / "reg" / "regulation.yaml").write_text(
        REGULATION.replace("send_mailing: {template: reminder", "send_mailing: {template: remindr"),
        encoding="utf-8",
    )
    path = write(folder, "- expect: {tasks: []}\n")
    report = run_file(path)[0].report()
    assert f"{path}:1:13: the regulation 'reg' does not load" in report
    assert "regulation.yaml:" in report and "remindr" in report
    assert_readable(report)


# --- the pytest plugin -----------------------------------------------------------------------


def test_pytest_plugin_collects_scenarios(pytester: pytest.Pytester, folder: Path) -> None:
    (pytester.path / "reg").mkdir()
    (pytester.path / "reg" / "regulation.yaml").write_text(REGULATION, encoding="utf-8")
    good = "      - event: {type: payment.received, deal: d1}\n"
    good += "      - expect: {fired: [payment-received]}\n"
    bad = "  - name: счёт без звонка\n    steps:\n"
    bad += "      - event: {type: invoice.issued, client: c2, data: {invoice_number: X}}\n"
    bad += "      - expect: {tasks: [{kind: call}]}\n"
    (pytester.path / "sales.regulation.yaml").write_text(HEADER + good + bad, encoding="utf-8")
    result = pytester.runpytest("-v", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*sales.regulation.yaml::s PASSED*",
            "*sales.regulation.yaml::счёт без звонка FAILED*",
            "*expect tasks (sales.regulation.yaml:20:*",
            "*not matched: client.segment in ?A, B?: actual C → false*",
        ]
    )
    assert "Traceback" not in result.stdout.str()


def test_pytest_plugin_malformed_file(pytester: pytest.Pytester) -> None:
    (pytester.path / "reg").mkdir()
    (pytester.path / "reg" / "regulation.yaml").write_text(REGULATION, encoding="utf-8")
    (pytester.path / "broken.regulation.yaml").write_text(
        HEADER + "      - advanse: 1 day\n", encoding="utf-8"
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*broken.regulation.yaml:15:9: unknown step 'advanse' (did you mean 'advance'?)*"]
    )
    assert "Traceback" not in result.stdout.str()


# --- the command line ------------------------------------------------------------------------


def crmrules(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "crmrules", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=False,
    )


def test_cli_test_passing_and_failing(folder: Path) -> None:
    write(folder, "- expect: {tasks: []}\n", "good.regulation.yaml")
    done = crmrules("test", str(folder), cwd=folder)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == "1 passed, 0 failed"
    assert "PASS " in done.stdout and "good.regulation.yaml::s" in done.stdout

    write(folder, "- update: {deal: d2, set: {stage: new}}\n", "bad.regulation.yaml")
    (folder / "broken.regulation.yaml").write_text("regulation: reg\nnow: [\n", encoding="utf-8")
    done = crmrules("test", str(folder), cwd=folder)
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert lines[-1] == "1 passed, 2 failed"
    assert any(line.startswith("FAIL ") and "bad.regulation.yaml::s" in line for line in lines)
    assert "cannot move from offer to new" in done.stdout
    assert "broken.regulation.yaml:3:1: invalid YAML" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_cli_test_no_files(tmp_path: Path) -> None:
    done = crmrules("test", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 1
    assert "no *.regulation.yaml files" in done.stderr


def test_cli_simulate_prints_timeline(folder: Path) -> None:
    write(
        folder,
        """\
        - event: {type: invoice.issued, deal: d1, data: {invoice_number: INV-17}}
        - advance: 3 days
        - expect: {tasks: [{kind: call}]}
        """,
    )
    done = crmrules("simulate", "case.regulation.yaml", "--scenario", "s", cwd=folder)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "2026-03-02 10:00  event invoice.issued (deal d1)" in out
    assert "✓ invoice-followup: fired" in out
    assert "→ task call 'Уточнить оплату счёта INV-17'" in out
    assert "2026-03-04 10:00  timer: task due" in out  # the task falls overdue
    assert "PASS case.regulation.yaml::s" in out
    done = crmrules("simulate", "case.regulation.yaml", "--scenario", "nope", cwd=folder)
    assert done.returncode == 1 and "no scenario 'nope'" in done.stdout


def test_examples_pass() -> None:
    done = crmrules("test", "examples", cwd=ROOT)
    assert done.returncode == 0, done.stdout
    assert done.stdout.splitlines()[-1].endswith("passed, 0 failed")


# --- the Python API --------------------------------------------------------------------------


def test_simulation_api(folder: Path) -> None:
    sim = Simulation.from_path(folder / "reg", now="2026-03-02T10:00:00+03:00")
    sim.given(
        clients=[
            {
                "id": "c1",
                "name": "Ромашка",
                "email": "c1@example.ru",
                "region": "Москва",
                "segment": "A",
                "responsible": "ivanov",
                "contract_end": "2026-05-01",
            }
        ],
        deals=[{"id": "d1", "client": "c1", "pipeline": "sales", "stage": "invoice"}],
    )
    result = sim.emit("invoice.issued", deal="d1", data={"invoice_number": "INV-1"})
    assert result.fired == ["invoice-followup"]
    assert [t.title for t in sim.tasks()] == ["Уточнить оплату счёта INV-1"]
    assert sim.tasks() == []  # only what is new since the last call
    assert [m.template for m in sim.mailings()] == ["reminder"]
    assert sim.fired() == ["invoice-followup"]
    sim.complete_task(kind="call")
    assert sim.fired() == ["call-done"]
    sim.update(deal="d1", set={"stage": "production"})
    deal = sim.deal("d1")
    assert deal is not None and deal.stage == "production"
    sim.advance("29 days")
    assert [t.title for t in sim.tasks()] == ["Записать итог звонка"]
    sim.at(datetime(2026, 4, 1, 12, 0, tzinfo=MSK))
    assert [t.title for t in sim.tasks()] == ["Продление: Ромашка", "Плановый звонок Ромашка"]
    assert sim.now == datetime(2026, 4, 1, 12, 0, tzinfo=MSK)
    assert "invoice.issued" in sim.timeline_text()


# --- a year of daily timers (the time it takes is measured in benchmarks/bench_scenarios.py) --

YEAR_REGULATION = """\
version: 1
calendar: {timezone: Europe/Moscow}
rules:
  - id: daily-check
    on: {every: 1 day, at: "09:00"}
    if: {field: client.tags, contains: hot}
    then: [{create_task: {kind: todo, title: "Ежедневная проверка {{ client.name }}"}}]
"""


def test_a_year_of_daily_timers(tmp_path: Path) -> None:
    (tmp_path / "year").mkdir()
    (tmp_path / "year" / "regulation.yaml").write_text(YEAR_REGULATION, encoding="utf-8")
    path = tmp_path / "year.regulation.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            regulation: year
            now: 2026-01-01T10:00:00+03:00
            given:
              clients:
                - {id: c1, name: Горячий, tags: [hot]}
                - {id: c2, name: Холодный}
            scenarios:
              - name: a year
                steps:
                  - advance: 364 days
                  - expect: {fired: [daily-check]}
                  - advance: 1 day
                  - expect:
                      tasks: [{title: Ежедневная проверка Горячий, client: c1}]
            """
        ),
        encoding="utf-8",
    )
    [result] = run_file(path)
    assert result.passed, result.report()
    assert sum("daily-check: fired" in line for line in result.timeline) == 365
