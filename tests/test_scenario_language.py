"""The scenario language covers what regulations do: contacts, interactions, host tasks,
notifications, pending timers, and a scenario's own ``given``.

Each addition passes when right, fails readably (no traceback, the step located)
when wrong, and malformed input is refused with file:line:col.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from crmrules.errors import RegulationError
from crmrules.testing import ScenarioResult, load_scenario_file, run_file

REGULATION = """\
version: 1
calendar: {timezone: Europe/Moscow}
fields:
  event.kind: {type: string}
  event.outcome: {type: string}
managers:
  - {id: ivanov, email: ivanov@example.ru}
  - {id: petrova, email: petrova@example.ru}
templates:
  invoice: {subject: "Счёт для {{ client.name }}", text: "Счёт во вложении."}
rules:
  - id: invoice-to-accountant
    on: invoice.issued
    then: [{send_mailing: {template: invoice, to: "contact:accountant"}}]
  - id: call-logged
    on: interaction.logged
    if: {field: event.outcome, eq: no_answer}
    then:
      - create_task: {kind: call, title: "Перезвонить {{ client.name }}", assignee: responsible}
      - notify: {to: responsible, message: "{{ client.name }} не ответил"}
  - id: no-contact
    on: {after: 7 days, since: client.last_contact_at}
    then: [{create_task: {kind: call, title: "Давно не звонили: {{ client.name }}"}}]
"""

HEADER = """\
regulation: reg.yaml
now: 2026-03-02T10:00:00+03:00
given:
  clients:
    - {id: c1, name: Ромашка, responsible: ivanov, last_contact_at: 2026-03-01T10:00:00+03:00}
  contacts:
    - {id: p1, name: Ольга Петрова, email: buh@romashka.ru, client: c1, role: accountant}
  tasks:
    - {id: t1, kind: call, title: Позвонить, client: c1, assignee: ivanov,
       due: 2026-03-03T10:00:00+03:00}
scenarios:
  - name: s
    steps:
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "reg.yaml").write_text(REGULATION, encoding="utf-8")
    return tmp_path


def write(folder: Path, text: str, name: str = "case.regulation.yaml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def run_steps(folder: Path, steps: str) -> ScenarioResult:
    body = textwrap.indent(textwrap.dedent(steps), " " * 6)
    [result] = run_file(write(folder, HEADER + body))
    return result


CASES = {
    "given.contacts and to: contact:<role>": (
        """\
        - event: {type: invoice.issued, client: c1}
        - expect:
            mailings: [{template: invoice, to: buh@romashka.ru, rule: invoice-to-accountant}]
        """,
        """\
        - event: {type: invoice.issued, client: c1}
        - expect: {mailings: [{to: director@romashka.ru}]}
        """,
        ["to: expected director@romashka.ru, found buh@romashka.ru"],
    ),
    "log_interaction": (
        """\
        - log_interaction: {client: c1, kind: call, outcome: no_answer, contact: p1}
        - expect:
            fired: [call-logged]
            tasks: [{kind: call, title: Перезвонить Ромашка, assignee: ivanov}]
            clients: {c1: {last_contact_at: 2026-03-02T10:00:00+03:00}}
        - log_interaction: {client: c1, kind: meeting, occurred_at: 2026-03-02T12:00:00+03:00}
        - expect:
            not_fired: [call-logged]
            clients: {c1: {last_contact_at: 2026-03-02T12:00:00+03:00}}
        """,
        """\
        - log_interaction: {client: c1, kind: call, outcome: reached}
        - expect: {fired: [call-logged]}
        """,
        [
            "did not fire since the previous expect: call-logged",
            "not matched: event.outcome eq no_answer: actual reached",
        ],
    ),
    "expect notifications": (
        """\
        - log_interaction: {client: c1, kind: call, outcome: no_answer}
        - expect:
            notifications:
              - {to: ivanov@example.ru, channel: log, text: Ромашка не ответил,
                 rule: call-logged, client: c1}
        - advance: 1 hour
        - expect: {notifications: []}
        """,
        """\
        - log_interaction: {client: c1, kind: call, outcome: no_answer}
        - expect: {notifications: [{to: petrova@example.ru}]}
        """,
        [
            "expect notifications (",
            "to: expected petrova@example.ru, found ivanov@example.ru",
            "call-logged:",
        ],
    ),
    "expect timers": (
        """\
        - expect:
            timers: [{rule: no-contact, due: 2026-03-08T10:00:00+03:00, client: c1}]
        - log_interaction: {client: c1, kind: email, direction: in}
        - expect:
            timers: [{rule: no-contact, due: 2026-03-09T10:00:00+03:00}]
        - advance: 7 days
        - expect:
            fired: [no-contact]
            timers: []
        """,
        """\
        - expect: {timers: [{rule: no-contact, due: 2026-03-10}]}
        """,
        [
            "expected 1 timer pending now, found 1",
            "due: expected 2026-03-10, found 2026-03-08T10:00:00+03:00",
        ],
    ),
    "complete_task by id": (
        """\
        - complete_task: {id: t1}
        - expect: {open_tasks: []}
        - {complete_task: {id: t1}, refused: true}
        """,
        """\
        - complete_task: {id: t9}
        """,
        ["complete_task: no task 't9' (open tasks: t1 (call 'Позвонить'))"],
    ),
    "cancel_task by id": (
        """\
        - cancel_task: {id: t1}
        - expect:
            open_tasks: []
            timers: [{rule: no-contact}]
        - {cancel_task: {id: t1}, refused: true}
        - advance: 2 days
        - expect: {fired: []}
        """,
        """\
        - cancel_task: {id: t1}
        - cancel_task: {id: t1}
        """,
        ["cancel_task was refused: task t1 is already cancelled"],
    ),
    "cancel_task by fields": (
        """\
        - cancel_task: {kind: call, client: c1}
        - expect: {open_tasks: []}
        """,
        """\
        - cancel_task: {kind: meeting}
        """,
        ["cancel_task {kind: meeting}: no open task match"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_step_passes(folder: Path, case: str) -> None:
    result = run_steps(folder, CASES[case][0])
    assert result.passed, result.report()


@pytest.mark.parametrize("case", sorted(CASES))
def test_step_fails_readably(folder: Path, case: str) -> None:
    result = run_steps(folder, CASES[case][1])
    assert not result.passed
    report = result.report()
    assert "Traceback" not in report and 'File "' not in report
    assert "case.regulation.yaml:" in report  # the step is located
    for fragment in CASES[case][2]:
        assert fragment in report, f"{fragment!r} not in:\n{report}"


# --- a scenario's own given, on top of the file's ----------------------------------------------

OWN_GIVEN = (
    HEADER
    + """\
      - event: {type: invoice.issued, client: c1}
      - expect: {mailings: [{to: buh@romashka.ru}]}
  - name: own
    given:
      clients:
        - {id: c1, name: Ромашка, responsible: petrova}
        - {id: c2, name: Лютик, responsible: ivanov}
      contacts:
        - {id: p2, name: Иван Лютиков, email: buh@lutik.ru,
           roles: [{client: c2, role: accountant}, {client: c1, role: director}]}
    steps:
      - event: {type: invoice.issued, client: c2}
      - log_interaction: {client: c1, kind: call, outcome: no_answer}
      - expect:
          mailings: [{to: buh@lutik.ru, client: c2}]
          tasks: [{title: Перезвонить Ромашка, assignee: petrova}]
          open_tasks: [{title: Позвонить}, {title: Перезвонить Ромашка}]
  - name: back to the file's given
    steps:
      - expect: {clients: {c1: {responsible: ivanov}}}
"""
)


def test_a_scenario_given_adds_to_and_replaces_the_files(folder: Path) -> None:
    results = run_file(write(folder, OWN_GIVEN))
    assert [(r.name, r.passed) for r in results] == [
        ("s", True),
        ("own", True),
        ("back to the file's given", True),
    ], "\n\n".join(r.report() for r in results)


def test_records_of_a_scenario_given_are_known_in_that_scenario_only(folder: Path) -> None:
    text = OWN_GIVEN + "      - event: {type: invoice.issued, client: c2}\n"
    path = write(folder, text)
    with pytest.raises(RegulationError) as caught:
        load_scenario_file(path)
    [problem] = caught.value.problems
    assert "unknown client 'c2'" in str(problem)
    assert problem.location is not None and problem.location.line == text.count("\n")


# --- malformed input: every problem with file:line:col -----------------------------------------

#: (the text, a unique marker where the problem is, the message)
MALFORMED = {
    "contact at an unknown client": (
        HEADER.replace("client: c1, role: accountant", "client: c9, role: accountant"),
        "c9, role",
        "unknown client 'c9'",
    ),
    "contact without a name": (
        HEADER.replace("{id: p1, name: Ольга Петрова, ", "{id: p1, "),
        "{id: p1",
        "a contact needs 'name'",
    ),
    "contact role without client": (
        HEADER.replace("client: c1, role: accountant", "role: accountant"),
        "{id: p1",
        "a contact's place of work needs both client and role",
    ),
    "given task with a bad due": (
        HEADER.replace("due: 2026-03-03T10:00:00+03:00}", "due: soon}"),
        "soon",
        "soon",
    ),
    "log_interaction: unknown key": (
        HEADER + "      - log_interaction: {client: c1, kind: call, result: x}\n",
        "result",
        "unknown key 'result' in log_interaction (known: client, contact,",
    ),
    "log_interaction: bad kind": (
        HEADER + "      - log_interaction: {client: c1, kind: visit}\n",
        "kind: visit",
        "interaction kind: Input should be 'call', 'meeting' or 'email'",
    ),
    "log_interaction: unknown contact": (
        HEADER + "      - log_interaction: {client: c1, kind: call, contact: p7}\n",
        "p7",
        "unknown contact 'p7'",
    ),
    "log_interaction: no client": (
        HEADER + "      - log_interaction: {kind: call}\n",
        "{kind: call}",
        "log_interaction needs 'client'",
    ),
    "complete_task: id and fields": (
        HEADER + "      - complete_task: {id: t1, kind: call}\n",
        "complete_task: {id: t1, kind",
        "complete_task picks a task by id or by its fields, not both",
    ),
    "cancel_task: nothing to pick": (
        HEADER + "      - cancel_task: {}\n",
        "{}",
        "cancel_task needs the id of a task or fields that pick one open task",
    ),
    "expect timers: unknown rule": (
        HEADER + "      - expect: {timers: [{rule: no-contct}]}\n",
        "no-contct",
        "unknown rule 'no-contct' (did you mean 'no-contact'?)",
    ),
    "expect notifications: unknown field": (
        HEADER + "      - expect: {notifications: [{message: x}]}\n",
        "message",
        "unknown key 'message' in an expected notification",
    ),
    "scenario given: unknown key": (
        HEADER.replace("  - name: s\n", "  - name: s\n    given: {client: []}\n"),
        "client: []",
        "unknown key 'client' in given (did you mean 'clients'?)",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_input_is_located(folder: Path, case: str) -> None:
    text, marker, message = MALFORMED[case]
    if text.endswith("steps:\n"):
        text += "      - expect: {fired: []}\n"
    path = write(folder, text, "bad.regulation.yaml")
    lines = text.splitlines()
    line = next(i for i, row in enumerate(lines, 1) if marker in row)
    with pytest.raises(RegulationError) as caught:
        load_scenario_file(path)
    shown = [str(p) for p in caught.value.problems]
    located = [p for p in shown if message in p]
    assert located, "\n".join(shown)
    assert located[0].startswith(f"{path}:{line}:"), (located[0], line)
    [result] = run_file(path)
    assert not result.passed and message in result.report()
    assert "Traceback" not in result.report()
