"""Random YAML/JSON fed to the loader: only RegulationError may come out, and quickly."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmrules.errors import RegulationError
from crmrules.rules.regulation import compile_regulation
from crmrules.rules.source import Document, parse_text

KEYS = [
    "version",
    "rules",
    "id",
    "on",
    "if",
    "then",
    "field",
    "eq",
    "in",
    "all",
    "any",
    "not",
    "territory",
    "territories",
    "when",
    "parent",
    "pipelines",
    "stages",
    "transitions",
    "from",
    "to",
    "templates",
    "text",
    "html",
    "subject",
    "fields",
    "type",
    "values",
    "calendar",
    "timezone",
    "create_task",
    "title",
    "due",
    "send_mailing",
    "template",
    "move_stage",
    "assign_manager",
    "strategy",
    "managers",
    "contact_plan",
    "every",
    "after",
    "since",
    "cron",
    "between",
    "matches",
    "older_than",
    "is_empty",
    "changed_to",
    "set_field",
    "value",
]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.sampled_from(
        [
            "client.region",
            "client.segment",
            "deal.stage",
            "Москва",
            "2 days",
            "2 business days",
            "invoice.issued",
            "client.created",
            "{{ client.name }}",
            "{{ client.__class__ }}",
            "2026-03-02",
            "09:00-18:00",
            "Europe/Moscow",
            "sales",
            "round_robin",
            "0 9 * * 1",
            "integer",
            "enum",
            "",
            "1",
        ]
    ),
    st.text(max_size=20),
)


def _values() -> st.SearchStrategy[Any]:
    return st.recursive(
        SCALARS,
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(
                st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), children, max_size=5
            ),
        ),
        max_leaves=30,
    )


def _documents() -> st.SearchStrategy[Any]:
    return st.one_of(
        _values(),
        st.fixed_dictionaries(
            {"version": st.sampled_from([1, 2, "1"])},
            optional={
                k: _values()
                for k in (
                    "rules",
                    "fields",
                    "pipelines",
                    "templates",
                    "territories",
                    "calendar",
                    "managers",
                )
            },
        ),
    )


def _check(text: str, name: str) -> None:
    started = time.perf_counter()
    try:
        data, source = parse_text(text, name)
        compile_regulation(Document(data, source, [name]))
    except RegulationError as error:
        assert error.problems
        assert all(str(p) for p in error.problems)
    assert time.perf_counter() - started < 1.0


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_documents())
def test_random_yaml_structures(document: Any) -> None:
    _check(yaml.safe_dump(document, allow_unicode=True, default_flow_style=False), "fuzz.yaml")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_documents())
def test_random_json_structures(document: Any) -> None:
    _check(json.dumps(document, ensure_ascii=False, indent=1), "fuzz.json")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_random_text(text: str) -> None:
    _check(text, "fuzz.yaml")
    _check(text, "fuzz.json")


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_in_a_file(tmp_path_factory: Any, data: bytes) -> None:
    from crmrules.rules.regulation import load_regulation

    path = Path(tmp_path_factory.mktemp("fuzz")) / "bytes.yaml"
    path.write_bytes(data)
    try:
        load_regulation(path)
    except RegulationError as error:
        assert error.problems
