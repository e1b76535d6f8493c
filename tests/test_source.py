"""Reading YAML and JSON with positions, limits and refusals."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from crmrules.errors import Location, RegulationError
from crmrules.rules.regulation import load_regulation
from crmrules.rules.source import Limits, load_document, parse_text


def problems_of(text: str, name: str = "r.yaml", limits: Limits | None = None) -> list[str]:
    with pytest.raises(RegulationError) as caught:
        parse_text(text, name, limits)
    return [str(p) for p in caught.value.problems]


def test_yaml_values_and_keys_keep_their_positions() -> None:
    data, source = parse_text("version: 1\nrules:\n  - id: a\n    on: x.y\n", "r.yaml")
    assert data == {"version": 1, "rules": [{"id": "a", "on": "x.y"}]}
    assert source.locate(("rules", 0, "on")) == Location("r.yaml", 4, 9)
    assert source.locate(("rules", 0, "on"), key=True) == Location("r.yaml", 4, 5)
    # A path below a recorded value falls back to its nearest ancestor.
    assert source.locate(("rules", 0, "on", "deeper")) == Location("r.yaml", 4, 9)


def test_json_values_and_keys_keep_their_positions() -> None:
    text = '{\n  "version": 1,\n  "rules": [\n    {"id": "a", "on": "x.y"}\n  ]\n}\n'
    data, source = parse_text(text, "r.json")
    assert data == {"version": 1, "rules": [{"id": "a", "on": "x.y"}]}
    assert source.locate(("rules", 0, "on")) == Location("r.json", 4, 23)
    assert source.locate(("rules", 0, "on"), key=True) == Location("r.json", 4, 17)


def test_yaml_scalars_follow_the_core_schema() -> None:
    data, _ = parse_text(
        "country: NO\nanswer: yes\non: x\namount: 1.10\nday: 2026-01-01\nnothing: ~\n"
        "flag: true\nquoted: '12'\nbig: 12345678901234567890\n",
        "r.yaml",
    )
    assert data == {
        "country": "NO",
        "answer": "yes",
        "on": "x",
        "amount": Decimal("1.10"),
        "day": "2026-01-01",
        "nothing": None,
        "flag": True,
        "quoted": "12",
        "big": 12345678901234567890,
    }


@pytest.mark.parametrize(
    ("text", "name", "expected"),
    [
        (
            "a: 1\nb: 2\na: 3\n",
            "r.yaml",
            "r.yaml:3:1: key 'a' is defined twice (first at r.yaml:1:1)",
        ),
        ('{"a": 1, "a": 2}', "r.json", "r.json:1:10: key 'a' is defined twice"),
        ("a: &x 1\nb: *x\n", "r.yaml", "r.yaml:1:4: YAML anchors and aliases"),
        ("a: !!str 1\n", "r.yaml", "r.yaml:1:4: YAML tag '!!str' is not allowed"),
        ("a: !custom 1\n", "r.yaml", "YAML tag '!custom' is not allowed"),
        ("a: 1\n---\nb: 2\n", "r.yaml", "r.yaml:2:1: a file may hold only one YAML document"),
        ("? [a, b]\n: 1\n", "r.yaml", "r.yaml:1:3: a mapping key must be plain text"),
        ("a: [1, 2\n", "r.yaml", "r.yaml:2:1: invalid YAML"),
        ("a:\tb: c\n", "r.yaml", "invalid YAML"),
        ('{"a": [1, 2,]}', "r.json", "r.json:1:13: invalid JSON: trailing comma"),
        ('{"a" 1}', "r.json", "r.json:1:6: invalid JSON: expected ':'"),
        ("{'a': 1}", "r.json", "r.json:1:2: invalid JSON: expected a key in double quotes"),
        ('{"a": NaN}', "r.json", "r.json:1:7: invalid JSON: expected a value"),
        ('{"a": "x\ny"}', "r.json", "invalid JSON: invalid control character"),
        ("", "r.json", "r.json:1:1: invalid JSON: expected a value, found the end of the file"),
        ('{"a": 1} {"b": 2}', "r.json", "r.json:1:10: invalid JSON: extra data"),
        (
            "n: " + "9" * 50 + "\n",
            "r.yaml",
            "r.yaml:1:4: number 99999999999999999999... is too long",
        ),
        ('{"n": 1e999999}', "r.json", "r.json:1:7: number 1e999999 is out of range"),
    ],
)
def test_bad_documents_are_refused_with_a_location(text: str, name: str, expected: str) -> None:
    problems = problems_of(text, name)
    assert len(problems) == 1
    assert expected in problems[0]


def test_alias_bomb_is_refused_at_the_first_anchor() -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
    problems = problems_of("\n".join(lines))
    assert problems == [
        "r.yaml:1:4: YAML anchors and aliases (&name, *name) are not allowed "
        "(write the value out in full)"
    ]


def test_a_300_deep_condition_is_refused_without_recursion_error(tmp_path: Path) -> None:
    condition = "{field: client.region, eq: Москва}"
    for _ in range(300):
        condition = "{not: " + condition + "}"
    path = tmp_path / "deep.yaml"
    path.write_text(
        f"version: 1\nrules:\n  - id: deep\n    on: x.y\n    if: {condition}\n"
        "    then: [{create_task: {title: t}}]\n",
        encoding="utf-8",
    )
    with pytest.raises(RegulationError) as caught:
        load_regulation(path)
    (problem,) = caught.value.problems
    assert "nesting is too deep (more than 48 levels)" in str(problem)
    assert problem.location is not None and problem.location.line == 5


@pytest.mark.parametrize("name", ["deep.json", "deep.yaml"])
def test_very_deep_brackets_are_refused(name: str) -> None:
    problems = problems_of("[" * 100_000 + "]" * 100_000, name)
    assert "nesting is too deep" in problems[0]


def test_limits_on_lists_strings_and_nodes() -> None:
    limits = Limits(max_list_length=3, max_string_length=5, max_nodes=10)
    assert (
        "list is too long (more than 3 items)" in problems_of("[1, 2, 3, 4]", "r.yaml", limits)[0]
    )
    assert "text is too long (6 characters)" in problems_of('"abcdef"', "r.json", limits)[0]
    assert (
        "document is too large (more than 10 values)"
        in problems_of("{" + ", ".join(f"k{i}: {i}" for i in range(10)) + "}", "r.yaml", limits)[0]
    )


def test_file_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("version: 1\n" + "# padding\n" * 100, encoding="utf-8")
    with pytest.raises(RegulationError) as caught:
        load_document([path], Limits(max_file_bytes=100))
    assert "file is too large" in str(caught.value)


def test_non_utf8_and_missing_files(tmp_path: Path) -> None:
    path = tmp_path / "latin.yaml"
    path.write_bytes("version: 1\nname: caf\xe9\n".encode("latin-1"))
    with pytest.raises(RegulationError, match="not UTF-8 text"):
        load_document([path])
    with pytest.raises(RegulationError, match="no such file or folder"):
        load_document([tmp_path / "missing.yaml"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RegulationError, match=r"has no \.yaml, \.yml or \.json files"):
        load_document([empty])


def test_a_folder_is_merged_in_name_order_with_positions_per_file(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "version: 1\nfields:\n  client.segment: {type: string}\nrules:\n  - id: first\n",
        encoding="utf-8",
    )
    (tmp_path / "b.json").write_text(
        '{"rules": [{"id": "second"}], "fields": {"deal.kind": {"type": "string"}}}',
        encoding="utf-8",
    )
    (tmp_path / "tests.regulation.yaml").write_text("scenarios: []\n", encoding="utf-8")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "x.yaml").write_text("junk: [", encoding="utf-8")
    document = load_document([tmp_path])
    assert [r["id"] for r in document.data["rules"]] == ["first", "second"]
    assert set(document.data["fields"]) == {"client.segment", "deal.kind"}
    assert document.source.locate(("rules", 1, "id")) == Location(str(tmp_path / "b.json"), 1, 19)
    assert document.source.locate(("rules", 0, "id")) == Location(str(tmp_path / "a.yaml"), 5, 9)
    assert document.files == [str(tmp_path / "a.yaml"), str(tmp_path / "b.json")]


def test_merge_clashes_name_both_places(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "version: 1\ncalendar: {timezone: UTC}\ntemplates:\n  hi: {text: a}\n", encoding="utf-8"
    )
    (tmp_path / "b.yaml").write_text(
        "version: 1\ncalendar: {timezone: UTC}\ntemplates:\n  hi: {text: b}\n", encoding="utf-8"
    )
    with pytest.raises(RegulationError) as caught:
        load_document([tmp_path])
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    assert [str(p) for p in caught.value.problems] == [
        f"{b}:2:1: section 'calendar' is defined twice (first at {a}:2:1) (keep it in one file)",
        f"{b}:4:3: templates.hi is defined twice (first at {a}:4:3) (keep one definition)",
    ]
