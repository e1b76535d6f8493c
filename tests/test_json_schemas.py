"""The JSON Schemas editors use: a whole regulation, one file of a folder, a scenario file.

Every example file must pass the schema it is meant for (a folder's files the
part schema, a single-file regulation the whole one, ``*.regulation.yaml``
the scenario schema), and each schema must still refuse what is wrong.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from crmrules.rules.schema import json_schema
from crmrules.rules.source import Limits, parse_text
from crmrules.testing.schema import scenario_json_schema

EXAMPLES = Path(__file__).parent.parent / "examples"
FOLDERS = sorted(p for p in EXAMPLES.iterdir() if p.is_dir() and list(p.glob("*.yaml")))
PART_FILES = [f for folder in FOLDERS for f in sorted(folder.glob("*.yaml"))]
SCENARIO_FILES = sorted(EXAMPLES.rglob("*.regulation.yaml"))


def _plain(path: Path) -> Any:
    """The file as an editor's YAML 1.2 server sees it (``on:`` is a key, dates are text)."""
    data, _ = parse_text(path.read_text(encoding="utf-8"), str(path), Limits())
    return json.loads(json.dumps(data, default=str))


def _errors(schema: dict[str, Any], data: Any) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(data)]


def _cli_schema(*args: str) -> dict[str, Any]:
    run = subprocess.run(
        [sys.executable, "-m", "crmrules", "schema", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    schema: dict[str, Any] = json.loads(run.stdout)
    return schema


def test_the_schemas_are_valid_json_schemas() -> None:
    for schema in (json_schema(), json_schema(part=True), scenario_json_schema()):
        jsonschema.Draft202012Validator.check_schema(schema)


def test_the_examples_have_part_files_and_scenario_files() -> None:
    assert len(PART_FILES) > len(FOLDERS)  # client-service has several parts
    assert len(SCENARIO_FILES) >= 3


@pytest.mark.parametrize("path", PART_FILES, ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_every_file_of_a_folder_regulation_fits_the_part_schema(path: Path) -> None:
    assert _errors(json_schema(part=True), _plain(path)) == []


def test_a_part_file_without_version_fails_the_whole_regulation_schema() -> None:
    """The reported defect: the whole-regulation schema is wrong for a part file."""
    part = _plain(EXAMPLES / "client-service" / "40-rules.yaml")
    assert any("'version' is a required property" in e for e in _errors(json_schema(), part))


def test_the_part_schema_still_checks_shape() -> None:
    schema = json_schema(part=True)
    assert _errors(schema, {"rules": [{"id": "r", "on": "x.y", "then": [{"nope": {}}]}]})
    assert _errors(schema, {"rule": []})  # unknown section
    assert _errors(schema, {"version": 2})


@pytest.mark.parametrize("path", SCENARIO_FILES, ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_every_example_scenario_file_fits_the_scenario_schema(path: Path) -> None:
    assert _errors(scenario_json_schema(), _plain(path)) == []


def test_the_scenario_schema_still_checks_shape() -> None:
    schema = scenario_json_schema()
    good: dict[str, Any] = {
        "regulation": "r.yaml",
        "now": "2026-03-02T10:00:00+03:00",
        "scenarios": [{"name": "s", "steps": [{"advance": "1 day"}, {"expect": {"fired": []}}]}],
    }
    assert _errors(schema, good) == []
    for wrong in (
        {"evnt": {"type": "x"}},  # unknown step
        {"advance": "1 day", "expect": {}},  # two things in one step
        {"expect": {"taks": []}},  # unknown expectation
        {"complete_task": {"kind": "call", "colour": "red"}},  # unknown task field
        {"event": {"type": "x"}, "refused": "yes"},
    ):
        bad = {**good, "scenarios": [{"name": "s", "steps": [wrong]}]}
        assert _errors(schema, bad), wrong
    assert _errors(schema, {**good, "given": {"client": []}})


def test_the_cli_prints_each_schema() -> None:
    assert _cli_schema() == json.loads(json.dumps(json_schema()))
    assert _cli_schema("--part")["title"] == json_schema(part=True)["title"]
    assert _cli_schema("--scenario")["title"] == scenario_json_schema()["title"]


def test_the_scenario_schema_names_what_the_reader_accepts() -> None:
    from crmrules.testing import scenario as sc
    from crmrules.testing import scenario_expect

    schema = scenario_json_schema()
    defs = schema["$defs"]
    assert set(schema["properties"]) == set(sc.TOP_KEYS)
    assert set(defs["Given"]["properties"]) == set(sc.GIVEN_KEYS)
    assert set(defs["Scenario"]["properties"]) == set(sc.SCENARIO_KEYS)
    assert set(defs["Expect"]["properties"]) == set(scenario_expect.EXPECT_KEYS)
    kinds = {next(iter(v["required"])) for v in defs["Step"]["anyOf"]}
    assert kinds == set(sc.STEP_KINDS)
    refusable = {
        next(iter(v["required"])) for v in defs["Step"]["anyOf"] if "refused" in v["properties"]
    }
    assert refusable == set(sc.REFUSABLE)
