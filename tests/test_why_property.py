"""Lazy explanations against eager ones: the same words, from what the evaluation saw.

The engine no longer explains a rule that did not match while it
evaluates: it keeps a ``Seen`` (the values of the fields the rules read,
the moment, the changes, the regulation version) and rebuilds the
explanation from it when read (``crmrules.rules.why``). The oracle is the
eager explanation the engine wrote before: the short-circuit trace on the
full facts, its deciding leaf's words, field, operator, expected and
actual value. Random conditions and facts come from
test_conditions_property.py; the Seen keeps only what the rule set (or
the condition alone) reads, so a field a leaf reads and ``reads`` forgot
shows up here as a different explanation.
"""

from __future__ import annotations

import copy
import pickle
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from crmrules import Client, Engine, Event, SimulatedClock, load_regulation
from crmrules.adapters import migrate
from crmrules.result import NotMatched, Result, RuleOutcome
from crmrules.rules.conditions import Condition, Facts
from crmrules.rules.ruleset import RuleSet, explain
from crmrules.rules.why import Seen, Shown, Why
from test_conditions_property import compile_raw, conditions, facts
from test_ruleset_property import rule_sets, shared_conditions

NOW = datetime(2026, 12, 1, 9, tzinfo=UTC)


def eager(condition: Condition, facts: Facts) -> Shown:
    """What the engine recorded for a rule that did not match, worked out at once (before)."""
    trace = explain(condition, facts)
    leaf = trace.decided_by
    field, operator, expected = leaf.leaf.parts() if leaf else (None, None, None)
    actual = None if leaf is None else leaf.shown_actual()
    return trace.describe(), field, operator, expected, actual


#: fields a condition may compare with each other ({field: other}), by kind
COMPARABLE = (
    ("client.employees", "manager.capacity", "client.revenue", "deal.amount"),
    ("client.name", "client.region", "deal.stage"),
)


@st.composite
def field_refs(draw: st.DrawFn) -> dict[str, Any]:
    """A leaf comparing two fields: the second is read too, so a Seen must keep it."""
    paths = draw(st.sampled_from(COMPARABLE))
    left, right = draw(st.lists(st.sampled_from(paths), min_size=2, max_size=2, unique=True))
    ops = ["eq", "ne", "lt", "lte", "gt", "gte"] if paths is COMPARABLE[0] else ["eq", "ne"]
    return {"field": left, draw(st.sampled_from(ops)): {"field": right}}


@st.composite
def with_field_refs(draw: st.DrawFn) -> tuple[list[Condition], Facts]:
    """Rules whose first condition compares two fields, both given close values."""
    raws = draw(st.lists(conditions() | shared_conditions(), min_size=1, max_size=4))
    refs = draw(st.lists(field_refs(), min_size=len(raws), max_size=len(raws)))
    mixed = [{"all": [ref, raw]} for ref, raw in zip(refs, raws, strict=True)]
    compiled = [compile_raw(raw)[0] for raw in [*mixed, *raws]]
    assume(all(condition is not None for condition in compiled))
    drawn = draw(facts({"all": raws}))
    records = {ns: None if r is None else dict(r) for ns, r in drawn.records.items()}
    for ref in refs:
        for path in (ref["field"], *(v["field"] for k, v in ref.items() if k != "field")):
            namespace, key = path.split(".", 1)
            record = records.get(namespace)
            if record is None:
                record = records[namespace] = {}
            numbers = path in COMPARABLE[0]
            record[key] = draw(st.integers(0, 2) if numbers else st.sampled_from(["a", "b"]))
    return [c for c in compiled if c is not None], Facts(records, drawn.now, drawn.changes)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=rule_sets() | with_field_refs())
def test_a_lazy_explanation_is_the_eager_one(case: tuple[list[Condition], Facts]) -> None:
    conditions, facts = case
    rule_set = RuleSet(conditions)
    seen = Seen.take(rule_set.reads, facts, "v1")  # once per view, for every rule of the set
    for condition in conditions:
        if condition(facts):
            continue
        expected = eager(condition, facts)
        assert Why(condition, seen).shown() == expected
        alone = Seen.take(condition.reads, facts)  # a rule considered on its own
        assert Why(condition, alone).shown() == expected
        assert Why(condition, seen).trace().result is False
        outcome = NotMatched("r", "e", "t", Why(condition, seen))
        plain = RuleOutcome("r", "e", "t", "not_matched", *expected)
        assert outcome == plain and repr(outcome) == repr(plain)
        assert pickle.loads(pickle.dumps(outcome)) == plain
        assert type(copy.copy(outcome)) is RuleOutcome
        result = Result("e", outcomes=[outcome])
        assert Result.from_dict(result.to_dict()).outcomes == [plain]
        assert result.explain() == Result("e", outcomes=[plain]).explain()


REGULATION = """\
version: 1
calendar: {timezone: Europe/Moscow, working_hours: "09:00-18:00"}
fields:
  client.segment: {type: enum, values: [A, B, C]}
  client.score: {type: integer}
  client.labels: {type: set}
rules:
  - id: big-a
    on: client.updated
    if: {all: [{field: client.segment, eq: A}, {field: client.score, gte: 50}]}
    then: [{create_task: {title: "Позвонить"}}]
  - id: labelled
    on: client.updated
    if: {any: [{field: client.labels, contains: vip}, {field: client.region, in: [Москва, Тверь]}]}
    then: [{create_task: {title: "VIP"}}]
  - id: changed
    on: client.updated
    if: {all: [{field: client.score, changed_to: 7}, {field: client.segment, eq: C}]}
    then: [{create_task: {title: "Семь"}}]
  - id: empty
    on: client.updated
    if: {field: client.email, is_empty: true}
    then: [{create_task: {title: "Нет почты"}}]
"""


@pytest.fixture(params=["memory", "sqlite"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The memory store keeps explanations unexplained until read; SQLite writes the text."""
    if request.param == "memory":
        return "memory://"
    url = f"sqlite:///{tmp_path / 'crm.sqlite3'}"
    migrate.upgrade(url)
    return url


def test_the_engine_shows_and_stores_the_eager_words(tmp_path: Path, url: str) -> None:
    """Result, stored result, duplicate and audit log: each the text eager explaining gave."""
    path = tmp_path / "regulation.yaml"
    path.write_text(textwrap.dedent(REGULATION), encoding="utf-8")
    engine = Engine(load_regulation(path), url, SimulatedClock(NOW), entry_points=False)
    engine.create_client(
        Client(
            id="c1",
            email="a@b.ru",
            region="Казань",
            fields={"segment": "B", "score": 3, "labels": ["x"]},
        )
    )
    event = Event(
        id="u1",
        type="client.updated",
        occurred_at=NOW,
        client="c1",
        before={"score": 3},
        after={"score": 7},
    )
    result = engine.handle(event)
    misses = [o for o in result.outcomes if o.status == "not_matched"]
    assert {o.rule for o in misses} == {"big-a", "labelled", "changed", "empty"}
    with engine.store.transaction() as tx:
        client = tx.get_client("c1")
        assert client is not None
        from crmrules.run import Run

        facts = Run(engine.setting, tx, NOW, Result("x")).facts(event, client, None)
        logged = {e.rule: e.message for e in tx.audit_log(event_id="u1")}
    for outcome in misses:
        rule = engine.rules_by_id[outcome.rule]
        reason, field, operator, expected, actual = eager(rule.condition, facts)
        assert (outcome.reason, outcome.field, outcome.operator) == (reason, field, operator)
        assert (outcome.expected, outcome.actual) == (expected, actual)
        assert logged[outcome.rule] == reason
    again = engine.handle(event)  # the stored result, read back
    assert again.duplicate and again.outcomes == result.outcomes
    assert again.explain().splitlines()[1:] == result.explain().splitlines()
    with engine.store.transaction() as tx:  # read twice, the same words
        assert [(e.kind, e.message) for e in tx.audit_log(event_id="u1")] == [
            (e.kind, e.message) for e in tx.audit_log(event_id="u1")
        ]
    engine.store.close()


def test_a_result_stored_before_lazy_explanations_reads_as_it_did() -> None:
    """Stored results keep plain text (as before), so an older one reads back unchanged."""
    stored = {
        "event_id": "old",
        "duplicate": False,
        "events": [
            {"id": "old", "type": "client.updated", "depth": 0, "client": "c1", "deal": None}
        ],
        "outcomes": [
            {
                "rule": "big-a",
                "event_id": "old",
                "event_type": "client.updated",
                "status": "not_matched",
                "reason": "client.segment eq A: actual B → false",
                "field": "client.segment",
                "operator": "eq",
                "expected": "A",
                "actual": "B",
            }
        ],
        "effects": [],
        "errors": [],
        "regulation": "abc",
    }
    result = Result.from_dict(stored)
    assert result.to_dict() == stored
    assert "✗ big-a: not matched: client.segment eq A: actual B → false" in result.explain()
