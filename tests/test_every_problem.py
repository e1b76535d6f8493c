"""`validate` reports every problem of a rule and of its actions, not just the first.

The oracle is the file itself: each line of the rule below has a good and a
bad variant, and the bad ones are independent of each other. Whatever subset
of lines is bad, the regulation must report exactly one problem per bad line,
located on that line.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from crmrules.errors import RegulationError
from crmrules.rules.regulation import load_regulation

HEAD = """\
version: 1
managers:
  - {id: ivanov}
templates:
  hello: {subject: Hi, text: Hello}
rules:
"""

#: (good line, bad line, part of the expected message for the bad one)
LINES: list[tuple[str, str | None, str]] = [
    ("  - id: r1", "  - id: 'bad id!'", "invalid id 'bad id!'"),
    ("    on: client.created", "    on: deal.stage_chaged", "unknown built-in event"),
    (
        "    if: {field: client.name, eq: x}",
        "    if: {field: client.regoin, eq: x}",
        "unknown field 'client.regoin'",
    ),
    ("    once: per_client", "    once: sometimes", "'sometimes' is not one of"),
    ("    priority: 1", "    priority: high", "valid integer"),
    ("    cooldown: 1 day", "    cooldown: 2 dayz", "'2 dayz' is not a duration"),
    ("    stop: false", "    stop: maybe", "expected true or false"),
    ("    prority_note: x", "    prority: 1", "unknown key 'prority'"),
    ("    then:", None, ""),
    ("      - create_task:", None, ""),
    ("          title: Call", "          title: '{{ client.nme }}'", "unknown field 'client.nme'"),
    ("          kind: call", "          kind: ''", "at least 1 character"),
    ("          priority: normal", "          priority: urgent", "'urgent' is not one of"),
    ("          due: 2 days", "          due: 1 hour 30 minutes", "is not a duration"),
    ("          assignee: ivanov", "          assignee: nobody", "unknown manager 'nobody'"),
    ("      - send_mailing:", None, ""),
    ("          template: hello", "          template: 'bad id!'", "invalid id 'bad id!'"),
    ("          to: client", "          to: nobody", "to: 'nobody' is not a recipient"),
    ("          channel: email", "          channel: [email]", "valid string"),
]
#: Lines that can be made bad (the others are structure).
BREAKABLE = [i for i, (_, bad, _) in enumerate(LINES) if bad is not None]


def _text(bad: set[int]) -> str:
    lines = [(LINES[i][1] if i in bad else LINES[i][0]) for i in range(len(LINES))]
    # The placeholder good line for the unknown-key slot is itself unknown: drop it when good.
    lines = [line for line in lines if "prority_note" not in line]
    return HEAD + "\n".join(lines) + "\n"


def _problems(text: str) -> list[tuple[int, str]]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "r.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            load_regulation(path)
        except RegulationError as error:
            return [(p.location.line if p.location else 0, str(p)) for p in error.problems]
    return []


def test_the_good_rule_loads() -> None:
    assert _problems(_text(set())) == []


@settings(max_examples=60, deadline=None)
@given(st.sets(st.sampled_from(BREAKABLE), min_size=1))
def test_every_independent_problem_is_reported_on_its_line(bad: set[int]) -> None:
    text = _text(bad)
    lines = text.splitlines()
    expected = sorted(
        (lines.index(LINES[i][1]) + 1, LINES[i][2]) for i in bad if LINES[i][1] is not None
    )
    found = _problems(text)
    assert len(found) == len(expected), "\n".join(p for _, p in found)
    for (line, part), (found_line, message) in zip(expected, sorted(found), strict=True):
        assert found_line == line, message
        assert part in message, message


def test_the_issue_example_shows_both_problems_of_one_action() -> None:
    bad = {i for i, (_, line, _) in enumerate(LINES) if line and ("urgent" in line or "30" in line)}
    found = [message for _, message in _problems(_text(bad))]
    assert len(found) == 2, found
    assert "'urgent' is not one of low, normal, high" in found[0]
    assert "'1 hour 30 minutes' is not a duration" in found[1]


def test_a_territory_with_a_bad_key_still_has_its_condition_and_plan_checked() -> None:
    text = """\
version: 1
territories:
  - id: msk
    strategy: round_robbin
    when: {field: client.regoin, eq: Москва}
    contact_plan:
      - every: 14 days
        then: [{create_task: {title: Звонок, due: 1 hour 30 minutes}}]
"""
    found = _problems(text)
    assert [line for line, _ in found] == [4, 5, 8], found
    assert "'round_robbin' is not one of" in found[0][1]
    assert "unknown field 'client.regoin'" in found[1][1]
    assert "'1 hour 30 minutes' is not a duration" in found[2][1]
