"""Compiling regulations: what loads, what is refused, and where errors point."""

from __future__ import annotations

import json
import textwrap
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import jsonschema
import pytest

from crmrules.errors import RegulationError
from crmrules.rules.conditions import Facts
from crmrules.rules.regulation import Regulation, load_regulation
from crmrules.rules.schema import CreateTask, json_schema
from crmrules.rules.source import load_document

EXAMPLES = Path(__file__).parent.parent / "examples"
MSK = ZoneInfo("Europe/Moscow")


def load(tmp_path: Path, text: str, name: str = "r.yaml") -> Regulation:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return load_regulation(path)


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(RegulationError) as caught:
        load(tmp_path, text)
    # Drop the file name so expectations read as "line:col: message".
    return [str(p).split(":", 1)[1] for p in caught.value.problems]


def test_the_client_service_example_loads_completely() -> None:
    regulation = load_regulation(EXAMPLES / "client-service")
    assert [rule.id for rule in regulation.rules] == [
        "assign-new-client",
        "measurement-accepted",
        "measurement-rejected",
        "offer-no-reply",
        "invoice-followup",
        "payment-received",
        "feedback-after-delivery",
        "refusal-reason",
    ]
    followup = next(r for r in regulation.rules if r.id == "invoice-followup")
    assert followup.priority == 100
    assert followup.trigger.events == ("invoice.issued",)
    assert followup.location is not None
    assert (followup.location.file, followup.location.line) == (
        str(EXAMPLES / "client-service" / "40-rules.yaml"),
        38,
    )
    task = followup.actions[0]
    assert isinstance(task.params, CreateTask)
    assert task.params.due == "2 business days"
    rendered = task.templates["title"].render({"event": {"invoice_number": "INV-17"}})
    assert rendered == "Уточнить оплату счёта INV-17"
    works = regulation.pipelines["works"]
    assert works.allowed_moves("measurement") == ("design", "measurement", "refused")
    assert works.allowed_moves("offer") == ("invoice", "won", "refused")
    assert works.allowed_moves("won") == ()
    assert regulation.territories["msk-enterprise"].parent == "msk"
    assert regulation.calendar.tz == MSK
    assert regulation.summary() == (
        "5 files: 8 rules, 1 pipeline, 3 territories, 2 templates, 3 managers, 9 custom fields"
    )


def test_the_territory_condition_sees_children() -> None:
    regulation = load_regulation(EXAMPLES / "client-service")
    followup = next(r for r in regulation.rules if r.id == "invoice-followup")
    now = datetime(2026, 3, 2, 10, tzinfo=MSK)
    in_child = Facts(
        {"client": {"segment": "A", "territories": frozenset({"msk-enterprise"})}}, now
    )
    elsewhere = Facts({"client": {"segment": "A", "territories": frozenset({"regions"})}}, now)
    assert followup.condition(in_child)
    assert not followup.condition(elsewhere)
    trace = followup.condition.trace(elsewhere)
    assert trace.decided_by is not None
    assert trace.describe() == "in territory msk: actual [regions] → false"


def test_examples_match_the_json_schema() -> None:
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    data = load_document([EXAMPLES / "client-service"]).data
    plain = json.loads(json.dumps(data, default=float))
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(plain)) == []
    assert "create_task" in json.dumps(schema["$defs"]["Action"])


def test_values_are_coerced_to_field_types_at_load(tmp_path: Path) -> None:
    regulation = load(
        tmp_path,
        """
        version: 1
        calendar: {timezone: Europe/Moscow}
        fields:
          client.employees: {type: integer}
          client.revenue: {type: decimal}
          client.contract_end: {type: date}
        rules:
          - id: r
            on: x.y
            if:
              all:
                - {field: client.employees, gte: "250"}
                - {field: client.revenue, lt: 1000000.50}
                - {field: client.contract_end, before: 2027-01-01}
                - {field: client.created_at, after: 2026-01-01}
                - {field: client.id, eq: 123}
            then: [{create_task: {title: t}}]
        """,
    )
    leaves = regulation.rules[0].condition.tree.items  # type: ignore[union-attr]
    assert [leaf.value for leaf in leaves[:3]] == [
        250,
        Decimal("1000000.50"),
        date(2027, 1, 1),
    ]
    assert str(leaves[3].value) == "2026-01-01"  # the whole day in Moscow
    assert leaves[3].value.end == datetime(2026, 1, 2, tzinfo=MSK)
    assert leaves[4].value == "123"


def test_a_date_alone_means_the_whole_day_for_datetime_fields(tmp_path: Path) -> None:
    regulation = load(
        tmp_path,
        """
        version: 1
        calendar: {timezone: Europe/Moscow}
        rules:
          - {id: on-day, on: x.y, if: {field: client.created_at, eq: 2026-03-02},
             then: [{create_task: {title: t}}]}
          - {id: after-day, on: x.y, if: {field: client.created_at, after: 2026-03-02},
             then: [{create_task: {title: t}}]}
        """,
    )
    on_day, after_day = (rule.condition for rule in regulation.rules)
    now = datetime(2026, 4, 1, tzinfo=MSK)

    def facts(moment: datetime) -> Facts:
        return Facts({"client": {"created_at": moment}}, now)

    evening = datetime(2026, 3, 2, 23, 59, tzinfo=MSK)
    next_morning = datetime(2026, 3, 3, 0, 0, tzinfo=MSK)
    assert on_day(facts(evening)) and not on_day(facts(next_morning))
    assert not after_day(facts(evening)) and after_day(facts(next_morning))


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("versio: 1\nversion: 1\n", ["1:1: unknown section 'versio' (did you mean version?)"]),
        ("version: 2\n", ["1:10: unsupported version 2 (this is version 1)"]),
        (
            "version: 1\nfields:\n  client.region: {type: string}\n",
            ["3:3: client.region is a built-in field (pick another name)"],
        ),
        (
            "version: 1\nfields:\n  client.size: {type: enum}\n",
            ["3:16: enum field client.size needs values: [...]"],
        ),
        (
            "version: 1\nfields:\n  client.size: {type: number}\n",
            [
                "3:23: 'number' is not one of string, integer, decimal, boolean, date, "
                "datetime, enum, set"
            ],
        ),
        (
            "version: 1\nfields:\n  client.vip: {type: boolean, default: yes}\n",
            ["3:40: default: expected true or false, got 'yes'"],
        ),
        (
            "version: 1\ncalendar: {timezone: Europe/Moskow}\n",
            ["2:22: unknown time zone 'Europe/Moskow'; did you mean 'Europe/Moscow'?"],
        ),
        (
            "version: 1\ncalendar: {weekend: [sat, sunday, funday]}\n",
            ["2:35: 'funday' is not a day of the week (did you mean sunday?)"],
        ),
        (
            "version: 1\ncalendar: {working_hours: 9-18}\n",
            ["2:27: '9-18' is not working hours; write e.g. '09:00-18:00'"],
        ),
        (
            "version: 1\npipelines:\n  - id: p\n    stages: [{id: a}, {id: b}]\n"
            "    transitions:\n      - {from: c, to: [a, d]}\n",
            [
                "6:16: unknown stage 'c' (no stage with that id in stages)",
                "6:27: unknown stage 'd' (no stage with that id in stages)",
            ],
        ),
        (
            "version: 1\npipelines:\n  - id: p\n    stages: []\n",
            ["4:13: list should have at least 1 item after validation, not 0"],
        ),
        (
            "version: 1\nterritories:\n  - {id: t, when: {field: deal.amount, gt: 5}}\n",
            ["3:44: a territory condition reads client fields only, not deal.amount"],
        ),
        (
            "version: 1\nrules:\n"
            "  - {id: r, on: x.y, max_lateness: 1 day, then: [{emit: {type: a}}]}\n",
            ["3:22: max_lateness applies to time triggers only"],
        ),
        (
            "version: 1\nrules:\n  - {id: r, on: x.y, once: per_dael, then: [{emit: {type: a}}]}\n",
            [
                "3:28: 'per_dael' is not one of per_event, per_client, per_deal, "
                "per_stage_entry, always (did you mean per_deal?)"
            ],
        ),
        (
            "version: 1\nrules:\n  - {id: 'bad id!', on: x.y, then: [{emit: {type: a}}]}\n",
            ["3:10: invalid id 'bad id!' (ids use letters, digits, '_', '.' and '-', up to 100"],
        ),
        (
            "version: 1\nrules:\n  - {id: r, on: x.y, then: [{cancel_tasks: {rule: nope}}]}\n",
            ["3:51: unknown rule 'nope' (no rule with that id in rules)"],
        ),
        (
            "version: 1\nrules:\n  - {id: r, on: x.y, then: [{cancel_tasks: {}}]}\n",
            ["3:44: cancel_tasks needs kind, rule or title_contains"],
        ),
        (
            "version: 1\nrules:\n"
            "  - {id: r, on: x.y, then: [{set_field: {field: deal.stage, value: a}}]}\n",
            ["3:49: deal.stage cannot be set by a rule (use move_stage)"],
        ),
        (
            "version: 1\nfields:\n  client.size: {type: integer}\nrules:\n"
            "  - {id: r, on: x.y, then: [{set_field: {field: client.size, value: big}}]}\n",
            ["5:69: value for client.size: expected a whole number, got 'big'"],
        ),
        (
            "version: 1\nrules:\n"
            "  - {id: r, on: x.y, then: [{assign_manager: {strategy: by_skill}}]}\n",
            ["3:46: by_skill needs skills: [...] (list the skills the manager must have)"],
        ),
        (
            "version: 1\nrules:\n"
            "  - {id: r, on: x.y, then: [{send_mailing: {template: t, to: boss}}]}\n",
            [
                "3:55: unknown template 't' (no template with that id in templates)",
                "3:62: to: 'boss' is not a recipient",
            ],
        ),
        (
            "version: 1\nrules:\n  - {id: r, on: {after: 7 days, since: client.name}, "
            "then: [{emit: {type: a}}]}\n",
            ["3:40: since: client.name is not a date or datetime field of the client or deal"],
        ),
        (
            "version: 1\nrules:\n"
            "  - {id: r, on: {every: 1 month, at: '25:00'}, then: [{emit: {type: a}}]}\n",
            ["3:38: '25:00' is not a time of day; write HH:MM, e.g. 09:00"],
        ),
        (
            "version: 1\nrules:\n"
            "  - {id: r, on: {every: 1 month, when: x}, then: [{emit: {type: a}}]}\n",
            ["3:34: unexpected key 'when' in the trigger"],
        ),
        (
            "version: 1\nrules:\n  - {id: r, on: x.y, if: {field: client.tags, contains_all: vip},"
            " then: [{emit: {type: a}}]}\n",
            ["3:61: contains_all takes a list of values"],
        ),
        (
            "version: 1\nrules:\n  - {id: r, on: x.y, if: {field: client.name, eq: a, ne: b},"
            " then: [{emit: {type: a}}]}\n",
            ["3:54: a condition takes exactly one operator; found eq, ne"],
        ),
        (
            "version: 1\nrules:\n  - {id: r, on: x.y, if: {field: client.name, equals: a},"
            " then: [{emit: {type: a}}]}\n",
            ["3:47: unknown operator 'equals' (did you mean eq?)"],
        ),
        (
            "version: 1\nrules:\n  - {id: r, on: x.y, if: {field: deal.amount, between: [10, 5]},"
            " then: [{emit: {type: a}}]}\n",
            ["3:56: between: 10 is greater than 5"],
        ),
        (
            "version: 1\nrules:\n"
            "  - {id: r, on: x.y, if: {field: deal.amount, eq: a, ignore_case: true},"
            " then: [{emit: {type: a}}]}\n",
            ["3:54: ignore_case does not apply to eq on decimal"],
        ),
        (
            "version: 1\nrules:\n"
            "  - {id: r, on: x.y, if: {field: deal.amount, gt: {field: client.name}},"
            " then: [{emit: {type: a}}]}\n",
            ["3:51: cannot compare deal.amount (decimal) with client.name (string)"],
        ),
    ],
)
def test_problems_name_their_place(tmp_path: Path, body: str, expected: list[str]) -> None:
    found = problems(tmp_path, body)
    assert len(found) == len(expected), found
    for text, prefix in zip(found, expected, strict=True):
        assert text.startswith(prefix), (text, prefix)


def test_all_problems_of_a_load_are_reported_together(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
        version: 1
        rules:
          - id: a
            on: x.y
            prority: 1
            if: {field: client.regoin, eq: x}
            then: [{create_tsak: {}}]
          - id: b
            on: deal.stage_chnged
            then: [{move_stage: nowhere}]
        """,
    )
    assert [text.split(":", 2)[0:2] for text in found] == [
        ["6", "5"],
        ["7", "17"],
        ["8", "13"],
        ["10", "9"],
        ["11", "25"],
    ]
