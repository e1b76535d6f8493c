"""crmrules lint: each finding in a regulation made to contain it, at its exact location."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from crmrules.lint import Finding, exit_code, lint_path

ROOT = Path(__file__).parent.parent

HEAD = """\
version: 1
fields:
  client.segment: {type: enum, values: [A, B, C]}
  client.employees: {type: integer}
  client.status: {type: string}
pipelines:
  - id: works
    stages:
      - {id: new}
      - {id: offer}
      - {id: invoice}
      - {id: won, final: true}
    transitions:
      - {from: new, to: [offer]}
      - {from: offer, to: [invoice, new]}
      - {from: invoice, to: [won]}
"""


def findings(tmp_path: Path, body: str) -> list[Finding]:
    path = tmp_path / "regulation.yaml"
    path.write_text(HEAD + textwrap.dedent(body), encoding="utf-8")
    return lint_path(path)


def where(found: list[Finding], *, fields: bool = False) -> list[tuple[str, int, int]]:
    """(code, line, column) of each finding; HEAD's fields unused are left out unless asked."""
    return [
        (f.code, f.location.line, f.location.column)
        for f in found
        if f.location and (fields or f.code != "unused-field")
    ]


def main(found: list[Finding]) -> list[Finding]:
    return [f for f in found if f.code != "unused-field"]


LINE = HEAD.count("\n")  # the body starts on line LINE + 1


def test_the_examples_have_no_finding() -> None:
    for path in ("client-service", "newsletters", "territories", "host_app/regulation.yaml"):
        assert lint_path(ROOT / "examples" / path) == [], path


def test_a_rule_shadowed_by_a_stopping_rule_is_found_at_the_shadowed_rule(tmp_path: Path) -> None:
    found = findings(
        tmp_path,
        """\
        rules:
          - id: any-a-or-b
            on: client.created
            if: {field: client.segment, in: [A, B]}
            priority: 10
            stop: true
            then: [{set_field: {field: client.status, value: vip}}]
          - id: only-a
            on: client.created
            if:
              all:
                - {field: client.segment, eq: A}
                - {field: client.employees, gt: 10}
            then: [{set_field: {field: client.status, value: big}}]
        """,
    )
    assert where(found) == [("shadowed-rule", LINE + 8, 5)]
    assert "any-a-or-b" in main(found)[0].message and main(found)[0].severity == "warning"


def test_a_rule_not_implied_is_not_shadowed(tmp_path: Path) -> None:
    found = findings(
        tmp_path,
        """\
        rules:
          - id: only-a
            on: client.created
            if: {field: client.segment, eq: A}
            priority: 10
            stop: true
            then: [{set_field: {field: client.status, value: vip}}]
          - id: a-or-b
            on: client.created
            if: {field: client.segment, in: [A, B]}
            then: [{set_field: {field: client.status, value: big}}]
          - id: cooled
            on: client.created
            if: {field: client.segment, in: [A, B]}
            priority: 20
            stop: true
            cooldown: 1 day
            then: [{set_field: {field: client.status, value: x}}]
        """,
    )
    assert where(found) == []


def test_two_rules_moving_a_stage_back_and_forth_are_a_cycle(tmp_path: Path) -> None:
    found = findings(
        tmp_path,
        """\
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
    assert where(found) == [("rule-cycle", LINE + 2, 5)]
    assert main(found)[0].severity == "error"


def test_a_cycle_is_found_from_the_stage_the_change_leaves_the_deal_in(tmp_path: Path) -> None:
    body = """\
        rules:
          - id: forward
            on: deal.updated
            if: {field: deal.stage, eq: new}
            then: [{move_stage: offer}]
          - id: back
            on: deal.updated
            if: {field: deal.stage, eq: offer}
            then: [{move_stage: new}]
        """
    assert where(findings(tmp_path, body)) == [("rule-cycle", LINE + 2, 5)]
    # Moving back only from invoice: the deal "forward" leaves in offer never fires "back".
    one_way = body.replace(
        "if: {field: deal.stage, eq: offer}", "if: {field: deal.stage, eq: invoice}"
    )
    assert [w for w in where(findings(tmp_path, one_way)) if w[0] == "rule-cycle"] == []


def test_a_field_set_and_reset_is_a_cycle_unless_a_condition_stops_it(tmp_path: Path) -> None:
    body = """\
        rules:
          - id: set-vip
            on: client.updated
            if: {field: client.employees, gt: 100}
            then: [{set_field: {field: client.status, value: vip}}]
          - id: reset
            on: client.updated
            if: {field: client.segment, eq: C}
            then: [{set_field: {field: client.status, value: normal}}]
        """
    assert where(findings(tmp_path, body)) == [("rule-cycle", LINE + 2, 5)]
    guarded = body.replace(
        "if: {field: client.segment, eq: C}",
        "if: {all: [{field: client.segment, eq: C}, {field: client.status, ne: vip}]}",
    )
    assert where(findings(tmp_path, guarded)) == []


def test_overlapping_exclusive_siblings_with_equal_priority(tmp_path: Path) -> None:
    found = findings(
        tmp_path,
        """\
        territories:
          - {id: ru, when: {field: client.region, is_empty: false}}
          - {id: big, parent: ru, exclusive: true, when: {field: client.employees, gte: 100}}
          - {id: a, parent: ru, exclusive: true, when: {field: client.segment, eq: A}}
          - {id: c, parent: ru, exclusive: true, priority: 5, when: {field: client.segment, eq: C}}
        """,
    )
    assert where(found) == [("territory-overlap", LINE + 4, 5)]


def test_a_child_territory_that_never_takes_a_client_of_its_parent(tmp_path: Path) -> None:
    found = findings(
        tmp_path,
        """\
        territories:
          - {id: small, when: {field: client.employees, lt: 50}}
          - {id: huge, parent: small, when: {field: client.employees, gt: 1000}}
        """,
    )
    assert where(found) == [("territory-unreachable", LINE + 3, 5)]
    assert main(found)[0].severity == "error"


@pytest.mark.parametrize(
    ("condition", "column"),
    [
        ("{all: [{field: client.employees, gt: 10}, {field: client.employees, lt: 5}]}", 46),
        ("{all: [{field: client.status, eq: x}, {field: client.status, eq: y}]}", 43),
        ("{field: client.segment, in: []}", 5),
    ],
)
def test_a_condition_that_never_holds(tmp_path: Path, condition: str, column: int) -> None:
    found = findings(
        tmp_path,
        f"""\
        rules:
          - id: never
            on: client.created
            if: {condition}
            then: [{{set_field: {{field: client.status, value: x}}}}]
        """,
    )
    assert where(found) == [("never-holds", LINE + 4, column)]
    assert main(found)[0].severity == "error"


def test_a_condition_that_always_holds(tmp_path: Path) -> None:
    found = findings(
        tmp_path,
        """\
        rules:
          - id: always
            on: client.created
            if:
              any:
                - {field: client.employees, gte: 10}
                - {not: {field: client.employees, gte: 10}}
            then: [{set_field: {field: client.status, value: x}}]
        """,
    )
    assert where(found) == [("always-holds", LINE + 4, 5)]
    assert main(found)[0].severity == "warning"


def test_a_move_stage_the_transitions_never_allow(tmp_path: Path) -> None:
    found = findings(
        tmp_path,
        """\
        rules:
          - id: skip-to-won
            on: deal.stage_changed
            if: {field: deal.stage, changed_to: offer}
            then: [{move_stage: won}]
          - id: allowed
            on: deal.stage_changed
            if: {field: deal.stage, changed_to: invoice}
            then: [{move_stage: won}]
        """,
    )
    assert where(found) == [("impossible-move", LINE + 5, 12)]
    assert "offer" in main(found)[0].message


def test_templates_fields_and_segments_never_used(tmp_path: Path) -> None:
    found = findings(
        tmp_path,
        """\
        segments:
          - {id: big, when: {field: client.employees, gte: 100}}
        templates:
          hello: {subject: "Hello {{ client.name }}", text: hi}
        rules:
          - id: status
            on: client.created
            if: {field: client.segment, eq: A}
            then: [{set_field: {field: client.status, value: a}}]
        """,
    )
    assert where(found, fields=True) == [
        ("unused-segment", LINE + 2, 5),
        ("unused-template", LINE + 4, 3),
    ]


def test_fields_never_used(tmp_path: Path) -> None:
    found = findings(
        tmp_path,
        """        rules:
          - id: only-segment
            on: client.created
            if: {field: client.segment, eq: A}
            then: [{create_task: {kind: call, title: "Call {{ client.name }}"}}]
        """,
    )
    assert where(found, fields=True) == [("unused-field", 4, 3), ("unused-field", 5, 3)]
    assert "client.employees" in found[0].message


def test_a_mailing_on_an_every_trigger_without_cooldown_or_once(tmp_path: Path) -> None:
    body = """\
        templates:
          hello: {subject: "Hello {{ client.name }} {{ client.employees }}", text: hi}
        rules:
          - id: weekly
            on: {every: 7 days, at: "10:00"}
            if: {field: client.segment, eq: A}
            then:
              - send_mailing: {template: hello}
              - set_field: {field: client.status, value: mailed}
        """
    assert where(findings(tmp_path, body)) == [("repeated-mailing", LINE + 8, 9)]
    cooled = body.replace('at: "10:00"}', 'at: "10:00"}\n            cooldown: 30 days')
    assert where(findings(tmp_path, cooled)) == []


def test_errors_exit_1_warnings_exit_0_unless_strict(tmp_path: Path) -> None:
    warning = Finding("unused-template", "warning", "m", None)
    error = Finding("never-holds", "error", "m", None)
    assert exit_code([warning]) == 0
    assert exit_code([warning], strict=True) == 1
    assert exit_code([warning, error]) == 1
    assert exit_code([]) == 0


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "crmrules", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def test_the_command_prints_located_findings(tmp_path: Path) -> None:
    path = tmp_path / "regulation.yaml"
    path.write_text(
        HEAD
        + textwrap.dedent(
            """\
            templates:
              hello: {subject: "Hello {{ client.segment }} {{ client.employees }}", text: hi}
            rules:
              - id: s
                on: client.created
                then: [{set_field: {field: client.status, value: a}}]
            """
        ),
        encoding="utf-8",
    )
    run = run_cli("lint", str(path))
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [
        f"{path}:{LINE + 2}:3: warning: template hello is declared and never used "
        "(send it from a rule (send_mailing) or remove it) [unused-template]",
        f"{path}: 0 errors, 1 warning",
    ]
    assert run_cli("lint", "--strict", str(path)).returncode == 1
    ok = run_cli("lint", "examples/client-service")
    assert (ok.returncode, ok.stdout) == (0, "examples/client-service: 0 errors, 0 warnings\n")
