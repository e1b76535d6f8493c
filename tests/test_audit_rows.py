"""The SQL store's audit rows: a rule's ``Miss`` written as its explained line, exactly.

The engine hands the SQL store the not_matched lines unexplained (a
``Miss``), and the store writes each explained, without making the
``AuditEntry``. The oracle is the line as it was written before: the
JSON of ``Miss.entry()`` (``json_values.audit_data``), keys in the same
order, on random conditions and facts (test_conditions_property.py).
"""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from crmrules.adapters import audit_rows, json_values
from crmrules.model import Event
from crmrules.rules.conditions import Condition, Facts
from crmrules.rules.why import Miss, Seen, Why
from crmrules.store import AuditEntry
from test_conditions_property import compile_raw, conditions, facts

AT = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)


@st.composite
def misses(draw: st.DrawFn) -> Miss:
    raw = draw(conditions())
    condition = compile_raw(raw)[0]
    assume(isinstance(condition, Condition))
    assert isinstance(condition, Condition)
    seen_facts: Facts = draw(facts(raw))
    assume(not condition(seen_facts))
    client = draw(st.none() | st.sampled_from(["c1", "клиент-2"]))
    kind = draw(st.sampled_from(["visit", "deal.updated"]))
    event = Event(id="e/1", type=kind, occurred_at=AT, client=client)
    seen = Seen.take(condition.reads, seen_facts, "v1")
    regulation = draw(st.none() | st.just("v1"))
    rule = draw(st.sampled_from(["r1", "правило"]))
    return Miss(AT, event, rule, Why(condition, seen), regulation)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(misses())
def test_a_miss_is_written_as_its_entry(miss: Miss) -> None:
    written = audit_rows.row(miss)
    expected = audit_rows.row(miss.entry())
    assert list(written["data"].items()) == list(expected["data"].items())
    assert written == expected
    assert written["data"] == json_values.dump(miss.entry())
    assert AuditEntry.model_validate(written["data"]) == miss.entry()
