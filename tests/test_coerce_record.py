"""A record's values coerced in one pass: the fast path for typed values agrees with ``coerce``.

``FieldRegistry.coerce_record`` keeps a value that already has its field's
type as it is (what a stored record holds) instead of coercing it again.
The oracle is ``coerce`` itself, field by field, on random values of every
type (typed, convertible and wrong), and the defaults filled in afterwards.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmrules.calendar import BusinessCalendar
from crmrules.errors import RecordError
from crmrules.rules.fields import FieldRegistry, FieldSpec, FieldType, coerce

CAL = BusinessCalendar("Europe/Moscow")
SPECS = [
    FieldSpec("client.text", FieldType.STRING),
    FieldSpec("client.level", FieldType.ENUM, ("A", "B")),
    FieldSpec("client.count", FieldType.INTEGER, default=7),
    FieldSpec("client.amount", FieldType.DECIMAL),
    FieldSpec("client.flag", FieldType.BOOLEAN),
    FieldSpec("client.day", FieldType.DATE),
    FieldSpec("client.moment", FieldType.DATETIME),
    FieldSpec("client.labels", FieldType.SET),
]
VALUES = st.one_of(
    st.none(),
    st.text(max_size=3),
    st.sampled_from(["A", "B", "12", "1,5", "2026-03-02", "2026-03-02T10:00:00"]),
    st.integers(-3, 3),
    st.booleans(),
    st.decimals(allow_nan=True, allow_infinity=True, places=2),
    st.floats(allow_nan=False, width=32),
    st.dates(),
    st.datetimes(timezones=st.just(UTC) | st.none()),
    st.frozensets(st.text(max_size=2) | st.integers(0, 2), max_size=3),
    st.lists(st.text(max_size=2), max_size=3),
)


def expected(record: dict[str, Any]) -> dict[str, Any] | None:
    """Field by field with ``coerce``; None where a value is refused."""
    specs = {spec.key: spec for spec in SPECS}
    result: dict[str, Any] = {}
    for key, value in record.items():
        spec = specs.get(key)
        if spec is None or value is None:
            result[key] = value
            continue
        try:
            result[key] = coerce(spec, value, CAL)
        except ValueError:
            return None
    if result.get("count") is None:
        result["count"] = 7
    return result


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(record=st.dictionaries(st.sampled_from([s.key for s in SPECS] + ["other"]), VALUES))
def test_coerce_record_agrees_with_coerce_field_by_field(record: dict[str, Any]) -> None:
    registry = FieldRegistry(SPECS)
    oracle = expected(record)
    if oracle is None:
        with pytest.raises(RecordError):
            registry.coerce_record("client", "c1", record, CAL)
        return
    found = registry.coerce_record("client", "c1", record, CAL)
    assert found == oracle
    assert {k: type(v) for k, v in found.items()} == {k: type(v) for k, v in oracle.items()}
    # a coerced record is what a store keeps: coercing it again changes nothing
    assert registry.coerce_record("client", "c1", found, CAL) == found


def test_typed_values_are_kept_as_they_are() -> None:
    registry = FieldRegistry(SPECS)
    record = {
        "amount": Decimal("1.5"),
        "labels": frozenset({"a"}),
        "day": date(2026, 3, 2),
        "moment": datetime(2026, 3, 2, 10, tzinfo=UTC),
    }
    found = registry.coerce_record("client", "c1", record, CAL)
    assert all(found[key] is value for key, value in record.items())


@pytest.mark.parametrize("value", [Decimal("Infinity"), Decimal("-Infinity"), Decimal("NaN")])
def test_a_decimal_that_is_not_finite_is_refused_for_a_whole_number(value: Decimal) -> None:
    registry = FieldRegistry(SPECS)
    with pytest.raises(RecordError, match=r"count.*expected a whole number"):
        registry.coerce_record("client", "c1", {"count": value}, CAL)
