"""Each invalid regulation under tests/invalid/ is refused with exact locations.

The expected problems are written here, not read from the files, so a change
in where errors point is a visible test failure.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from crmrules.errors import RegulationError
from crmrules.rules.regulation import load_regulation

INVALID = Path(__file__).parent / "invalid"

#: file -> [(line, column, part of the message or hint)]
EXPECTED: dict[str, list[tuple[int, int, str]]] = {
    "unknown_rule_key.yaml": [(5, 5, "unknown key 'prority' (did you mean priority?)")],
    "unknown_field.yaml": [
        (
            5,
            17,
            "unknown field 'client.regoin' (did you mean client.region? Or declare it",
        )
    ],
    "unknown_field.json": [(7, 23, "unknown field 'client.segmnt'")],
    "operator_type.yaml": [(8, 32, "operator 'gt' does not fit client.name, which is string")],
    "value_type.yaml": [(7, 40, "expected a whole number, got 'many'")],
    "enum_value.yaml": [(7, 41, "'D' is not one of A, B, C for client.segment")],
    "bad_duration.yaml": [(8, 16, "'2 dayz' is not a duration")],
    "unknown_stage.yaml": [(9, 21, "unknown stage 'desing' (did you mean design?)")],
    "unknown_references.yaml": [
        (11, 21, "unknown territory 'mks' (did you mean msk?)"),
        (13, 34, "unknown template 'helo' (did you mean hello?)"),
        (14, 51, "unknown manager 'ivanof' (did you mean ivanov?)"),
    ],
    "territory_cycle.yaml": [
        (3, 25, "territory parents form a cycle: north → south → north"),
        (4, 25, "territory parents form a cycle: south → north → south"),
    ],
    "template_unknown_field.yaml": [(8, 1, "unknown field 'client.invoce'")],
    "template_escape.yaml": [(6, 30, "'__mro__'")],
    "yaml_alias.yaml": [(3, 5, "YAML anchors and aliases (&name, *name) are not allowed")],
    "yaml_tag.yaml": [(2, 8, "YAML tag '!!python/object/apply:os.system' is not allowed")],
    "empty_all.yaml": [(5, 15, "all with an empty list")],
    "no_version.yaml": [(1, 1, "the regulation has no version (add 'version: 1'")],
    "bad_regex.yaml": [(5, 40, "invalid pattern: missing ): (\\+7")],
    "bad_cron.yaml": [(4, 16, "hour '25' is out of range 0-23")],
    "builtin_event_typo.yaml": [
        (4, 26, "unknown built-in event 'deal.stage_chaged'; did you mean deal.stage_changed?")
    ],
    "unknown_action.yaml": [(6, 9, "unknown action 'create_tsak' (did you mean create_task?)")],
    "trailing_comma.json": [(5, 3, "invalid JSON: trailing comma")],
    "duplicate_rule": [
        (5, 9, "rule id 'call' is defined twice (first at {dir}/duplicate_rule/a.yaml:3:9)")
    ],
}


def test_every_invalid_file_has_expectations() -> None:
    assert sorted(p.name for p in INVALID.iterdir()) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_invalid_regulation_is_refused_with_locations(name: str) -> None:
    path = INVALID / name
    with pytest.raises(RegulationError) as caught:
        load_regulation(path)
    problems = caught.value.problems
    expected = EXPECTED[name]
    assert len(problems) == len(expected), "\n".join(map(str, problems))
    for problem, (line, column, text) in zip(problems, expected, strict=True):
        assert problem.location is not None
        assert (problem.location.line, problem.location.column) == (line, column), str(problem)
        assert text.format(dir=INVALID) in str(problem)
        if name != "duplicate_rule":
            assert problem.location.file == str(path)
